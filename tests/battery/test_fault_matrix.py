"""What the client gets for each way an upstream can fail, through the real transport.

The first route is a fault server on loopback that misbehaves one way per row; the second is a
healthy one. Each row names the client's outcome:

- `backup`: the fault is the upstream's, and the answer comes from the second route (200);
- `relayed`: the fault is the caller's (a 400), relayed as it is, without trying elsewhere;
- `in_band`: the stream had already committed (content sent), so the client gets the error
  event and no `[DONE]`, never a silent end or a fake `finish_reason`.

Whatever the row, the answer is never a 500 of the gateway's own, and never a hang.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
import pytest
from fakes import data_payloads, drive, recording
from fault_upstream import Fault, chunk_event, fault_server, gzip_bytes, http_response, sse_response

from routemw import Gateway

Outcome = Literal["backup", "relayed", "in_band"]

GOOD_JSON: Final = http_response(200, recording("openai/completion-text.json"))
GOOD_SSE: Final = sse_response([recording("openai/stream-text.sse")])
OPENAI_500: Final = orjson.dumps({"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
OPENAI_400: Final = orjson.dumps(
    {"error": {"message": "bad value", "type": "invalid_request_error", "param": "temperature", "code": "bad"}}
)
MiB: Final = 1024 * 1024


def _completion(choices: Any) -> bytes:
    return orjson.dumps(
        {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m", "choices": choices}
    )


@dataclass(frozen=True)
class Row:
    name: str
    script: Sequence[bytes | float]
    outcome: Outcome
    stream: bool = False
    hang: bool = False


ROWS: Final = [
    Row("500", [http_response(500, OPENAI_500)], "backup"),
    Row("503 with retry-after", [http_response(503, OPENAI_500, headers=[("retry-after", "0")])], "backup"),
    Row("429", [http_response(429, OPENAI_500, headers=[("retry-after", "0")])], "backup"),
    Row("401 (our key is wrong)", [http_response(401, OPENAI_500)], "backup"),
    Row("404 model", [http_response(404, OPENAI_500)], "backup"),
    Row("400 caller's fault", [http_response(400, OPENAI_400)], "relayed"),
    Row("stall before the status line", [], "backup", hang=True),
    Row("closed before the status line", [], "backup"),
    Row("closed inside the headers", [b"HTTP/1.1 200 OK\r\ncontent-ty"], "backup"),
    Row("body shorter than content-length", [http_response(200, b'{"id": "x", "cho', content_length=500)], "backup"),
    Row("body not JSON", [http_response(200, b"<html>gateway timeout</html>", content_type="text/html")], "backup"),
    Row("choices empty", [http_response(200, _completion([]))], "backup"),
    Row("choices not objects", [http_response(200, _completion([1, "a", None]))], "backup"),
    Row("choice without message", [http_response(200, _completion([{"index": 0, "finish_reason": "stop"}]))], "backup"),
    Row(
        "marked gzip, not gzip",
        [http_response(200, b"this is not gzip at all", headers=[("content-encoding", "gzip")])],
        "backup",
    ),
    Row(
        "gzip bomb",
        [http_response(200, gzip_bytes(b"{" + b" " * (64 * MiB)), headers=[("content-encoding", "gzip")])],
        "backup",
    ),
    Row("plain body over the limit", [http_response(200, b'{"x": "' + b"a" * (40 * MiB) + b'"}')], "backup"),
    # Streams.
    Row("stream: 500 before the first byte", [http_response(500, OPENAI_500)], "backup", stream=True),
    Row("stream: closed before any event", sse_response([]), "backup", stream=True),
    Row("stream: data null first", sse_response([b"data: null\n\n"]), "backup", stream=True),
    Row("stream: junk chunk first", sse_response([b'data: {"choices": 5}\n\n']), "backup", stream=True),
    Row("stream: not JSON first", sse_response([b"data: {nope\n\n"]), "backup", stream=True),
    Row("stream: one line over the limit", sse_response([b"data: " + b"x" * (12 * MiB)]), "backup", stream=True),
    Row("stream: stall before the first event", sse_response([]), "backup", stream=True, hang=True),
    Row(
        "stream: cut after content",
        sse_response([chunk_event("Hello"), chunk_event(" wor")]),
        "in_band",
        stream=True,
    ),
    Row(
        "stream: junk after content",
        sse_response([chunk_event("Hello"), b'data: {"choices": "no"}\n\n']),
        "in_band",
        stream=True,
    ),
]


def _config(primary: str, backup: str) -> dict[str, Any]:
    def provider(url: str) -> dict[str, Any]:
        return {"type": "openai", "base_url": url, "api_key": "sk-fault-test", "timeout": 1}

    return {
        "providers": {"primary": provider(primary), "backup": provider(backup)},
        "models": {
            "gpt-4o": {
                "routes": [{"provider": "primary", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o"}]
            }
        },
        "retry": {"attempts": 1, "timeout": 10, "first_token_timeout": 1},
    }


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
async def test_fault(row: Row) -> None:
    good = GOOD_SSE if row.stream else [GOOD_JSON]
    async with fault_server(Fault(row.script, hang=row.hang)) as primary, fault_server(Fault(good)) as backup:
        gateway = Gateway.from_config(_config(primary.base_url, backup.base_url), environ={})
        try:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": row.stream}
            driver = await drive(gateway, json=body, seconds=15)
        finally:
            await gateway.aclose()
    assert driver.complete, "the response never ended"
    answered_by = driver.header("x-routemw-provider")
    if row.outcome == "backup":
        assert driver.status == 200, driver.body[:300]
        assert answered_by == "backup"
        assert len(backup.requests) == 1
        if row.stream:
            assert data_payloads(driver.body)[-1] == b"[DONE]"
        else:
            assert driver.json()["choices"][0]["message"]["content"]
    elif row.outcome == "relayed":
        assert driver.status == 400
        assert driver.json()["error"]["param"] == "temperature"
        assert answered_by == "primary"
        assert backup.requests == []
    else:
        assert driver.status == 200
        payloads = data_payloads(driver.body)
        assert b"[DONE]" not in payloads
        error = orjson.loads(payloads[-1])["error"]
        assert error["code"] and error["message"]
        assert backup.requests == []
