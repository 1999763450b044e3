"""The Messages door at the ASGI level: byte-faithful passthrough, errors, fallback, disconnects.

The conformance table (`conformance/test_conformance_messages.py`) checks what the `anthropic` SDK
makes of each answer; these tests check the bytes: what an Anthropic upstream receives, what
the client receives from a recorded upstream, every error in Anthropic's envelope, the commit
point, a fallback from an Anthropic route to an OpenAI one, and what a disconnect releases.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import orjson
import pytest
from conformance.fake_anthropic import FakeAnthropic
from fakes import (
    API_KEY,
    AsgiDriver,
    FakeByteStream,
    FakeOpenAI,
    Step,
    answer_error,
    answer_json,
    answer_sse,
    drive,
    recording,
    wait_for,
)

from routemw import Gateway

ANTHROPIC_KEY = "sk-ant-provider-key-0001"
CLIENT_KEY = "sk-client-key-for-the-door"
CLAUDE = "claude-sonnet-4-5"
SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds+ECsTheSignatureBytes=="
PDF = "JVBERi0xLjEKJcKlwrHDqwoKMSAwIG9iago8PC9UeXBlL0NhdGFsb2c+PgplbmRvYmoKdHJhaWxlcgo8PC9Sb290IDEgMCBSPj4KJSVFT0Y="
BETAS = "interleaved-thinking-2025-05-14,extended-cache-ttl-2025-04-11"
HELLO = {"model": "m", "max_tokens": 256, "messages": [{"role": "user", "content": "Say hi"}]}


class Anthropic:
    """An Anthropic upstream: the validating conformance fake, or scripted `Step`s replayed as is."""

    def __init__(self, *steps: Step) -> None:
        self.fake = FakeAnthropic(ANTHROPIC_KEY)
        self.steps: deque[Step] = deque(steps)
        self.requests: list[httpx.Request] = []
        self.raw: list[bytes] = []
        self.streams: list[FakeByteStream] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.raw.append(await request.aread())
        self.requests.append(request)
        if not self.steps:
            response = self.fake(request)
            self.streams += [s for s in self.fake.streams if s not in self.streams]
            return response
        step = self.steps.popleft()
        if step.parts is None:
            return httpx.Response(step.status, headers=step.headers, content=step.body)
        stream = FakeByteStream(step.parts)
        self.streams.append(stream)
        return httpx.Response(step.status, headers=step.headers, stream=stream)


def gateway(
    claude: Anthropic | None = None,
    openai: FakeOpenAI | None = None,
    *,
    models: Mapping[str, Any] | None = None,
    keys: bool = False,
) -> Gateway:
    providers: dict[str, Any] = {}
    hosts: dict[str, Any] = {}
    if claude is not None:
        providers["claude"] = {"type": "anthropic", "base_url": "https://anthropic.test", "api_key": ANTHROPIC_KEY}
        hosts["anthropic.test"] = claude
    if openai is not None:
        providers["gpt"] = {"type": "openai", "base_url": "https://upstream.test/v1", "api_key": API_KEY}
        hosts["upstream.test"] = openai
    if models is None:
        provider, model = ("claude", CLAUDE) if claude is not None else ("gpt", "gpt-4o")
        models = {"m": {"routes": [{"provider": provider, "model": model}]}}
    document: dict[str, Any] = {"providers": providers, "models": dict(models), "retry": {"attempts": 1}}
    if keys:
        document["keys"] = [{"name": "team", "key": CLIENT_KEY, "models": ["m"]}]
        document["auth"] = {"mode": "keys"}

    async def handler(request: httpx.Request) -> httpx.Response:
        response: httpx.Response = await hosts[request.url.host](request)
        return response

    return Gateway.from_config(document, environ={}, transport=httpx.MockTransport(handler))


async def post(app: Gateway, body: Any, *, headers: list[tuple[str, str]] | None = None, **kwargs: Any) -> AsgiDriver:
    driver = await drive(app, path=kwargs.pop("path", "/v1/messages"), json=body, headers=headers or [], **kwargs)
    for secret in (ANTHROPIC_KEY, API_KEY):
        assert secret.encode() not in driver.raw_output()
    return driver


def anthropic_error(driver: AsgiDriver) -> dict[str, Any]:
    body = driver.json()
    assert body["type"] == "error" and sorted(body["error"]) == ["message", "type"]
    assert body["request_id"] == driver.header("request-id") == driver.header("x-request-id")
    error: dict[str, Any] = body["error"]
    return error


def spliced(raw: bytes, upstream_model: str, public_model: str) -> bytes:
    needle = b'"model":"' + upstream_model.encode() + b'"'
    assert raw.count(needle) == 1
    return raw.replace(needle, b'"model":"' + public_model.encode() + b'"')


# -- passthrough, byte for byte -------------------------------------------------------------------


def rich_request(model: str) -> dict[str, Any]:
    """What Claude Code-like clients send: signed thinking, cache_control, a document, betas."""
    return {
        "model": model,
        "max_tokens": 4096,
        "system": [
            {"type": "text", "text": "You are a careful assistant."},
            {"type": "text", "text": "Long context.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
                    {
                        "type": "text",
                        "text": "Read it, then look up the weather.",
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "The user wants the weather.", "signature": SIGNATURE},
                    {"type": "tool_use", "id": "toolu_01Xy", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01Xy", "content": "18C"}]},
        ],
        "tools": [
            {
                "name": "get_weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "metadata": {"user_id": "u-4821"},
    }


async def test_a_rich_request_reaches_anthropic_byte_for_byte_with_its_headers() -> None:
    claude = Anthropic()
    app = gateway(claude, models={CLAUDE: {"routes": [{"provider": "claude", "model": CLAUDE}]}})
    body = orjson.dumps(rich_request(CLAUDE))
    headers = [("anthropic-version", "2023-06-01"), ("anthropic-beta", BETAS), ("x-api-key", "client-secret")]
    driver = await drive(app, path="/v1/messages", body=body, headers=[("content-type", "application/json"), *headers])
    assert driver.status == 200, driver.body
    assert claude.raw == [body]  # the public id is the upstream's: not one byte changes
    sent = claude.requests[0].headers
    assert sent["anthropic-beta"] == BETAS and sent["anthropic-version"] == "2023-06-01"
    assert sent["x-api-key"] == ANTHROPIC_KEY  # the provider's credentials, never the client's
    assert claude.fake.rejections == []
    assert driver.header("x-routemw-dropped-params") is None  # nothing was left out


async def test_only_the_model_changes_when_the_route_model_differs() -> None:
    claude = Anthropic()
    request = rich_request("m")
    driver = await post(gateway(claude), request)
    assert driver.status == 200
    assert orjson.loads(claude.raw[0]) == {**request, "model": CLAUDE}
    assert "anthropic-beta" not in claude.requests[0].headers  # none sent, none configured


@pytest.mark.parametrize("name", ["stream-text.sse", "stream-thinking.sse", "stream-tool-use.sse"])
async def test_recorded_streams_come_back_unchanged_but_for_the_public_model(name: str) -> None:
    sse = recording(f"anthropic/{name}")
    upstream_model = orjson.loads(sse.split(b"data: ", 1)[1].split(b"\n", 1)[0])["message"]["model"]
    claude = Anthropic(answer_sse(sse))
    driver = await post(gateway(claude), {**HELLO, "stream": True})
    assert driver.status == 200
    assert driver.header("content-type") == "text/event-stream; charset=utf-8"
    assert driver.body == spliced(sse, upstream_model, "m")


async def test_a_recorded_message_comes_back_unchanged_but_for_the_public_model() -> None:
    raw = recording("anthropic/message-parallel-tool-use.json")
    claude = Anthropic(answer_json(raw))
    driver = await post(gateway(claude), HELLO)
    assert driver.status == 200
    assert driver.body == spliced(raw, orjson.loads(raw)["model"], "m")
    assert driver.header("request-id") == driver.header("x-request-id")


# -- translated: what was left out is disclosed ----------------------------------------------------


async def test_a_translated_answer_discloses_what_the_translation_left_out() -> None:
    openai = FakeOpenAI(api_key=API_KEY)
    driver = await post(gateway(openai=openai), {**rich_request("m"), "thinking": {"type": "disabled"}})
    assert driver.status == 200, driver.body
    assert driver.header("x-routemw-dropped-params") == "cache_control, thinking"
    sent = openai.requests[0].body
    assert sent["messages"][0] == {"role": "system", "content": "You are a careful assistant.\n\nLong context."}
    assert sent["messages"][2]["tool_calls"][0]["id"] == "call_01Xy"
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "call_01Xy", "content": "18C"}
    assert sent["user"] == "u-4821"
    message = driver.json()
    assert message["type"] == "message" and message["model"] == "m"


# -- errors in Anthropic's envelope ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind", "text"),
    [
        (HELLO, [], 401, "authentication_error", "didn't provide an API key"),
        (HELLO, [("x-api-key", "sk-wrong-key-000000")], 401, "authentication_error", "Incorrect API key"),
        ({**HELLO, "model": "gpt-secret"}, None, 404, "not_found_error", "does not exist"),
        ({"model": "m", "messages": []}, None, 400, "invalid_request_error", "max_tokens: Field required"),
        ({**HELLO, "messages": [{"role": "system", "content": "x"}]}, None, 400, "invalid_request_error", "role"),
        (
            {**HELLO, "tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            None,
            400,
            "invalid_request_error",
            "cannot express it outside anthropic",
        ),
    ],
    ids=["no-key", "bad-key", "unknown-model", "no-max-tokens", "bad-role", "server-tool-on-openai"],
)
async def test_routemw_refusals_use_anthropics_envelope_and_statuses(
    body: dict[str, Any], headers: list[tuple[str, str]] | None, status: int, kind: str, text: str
) -> None:
    openai = FakeOpenAI(api_key=API_KEY)
    auth = [("authorization", f"Bearer {CLIENT_KEY}")] if headers is None else headers
    driver = await post(gateway(openai=openai, keys=True), body, headers=auth)
    assert driver.status == status
    error = anthropic_error(driver)
    assert error["type"] == kind and text in error["message"]
    assert openai.requests == []


async def test_the_wrong_method_and_bad_json_are_anthropic_errors() -> None:
    app = gateway(openai=FakeOpenAI(api_key=API_KEY))
    driver = await drive(app, method="GET", path="/v1/messages")
    assert (driver.status, anthropic_error(driver)["type"]) == (405, "invalid_request_error")
    driver = await drive(app, path="/v1/messages", body=b"{not json")
    assert (driver.status, anthropic_error(driver)["type"]) == (400, "invalid_request_error")


@pytest.mark.parametrize(
    ("step", "status", "kind"),
    [
        (answer_error(429, headers={"retry-after": "7"}, code="rate_limit_exceeded"), 429, "rate_limit_error"),
        (answer_error(500), 502, "api_error"),
        (answer_error(503, code="server_is_overloaded"), 529, "overloaded_error"),
    ],
    ids=["rate-limited", "server-error", "unavailable"],
)
async def test_upstream_failures_map_to_anthropic_types(step: Step, status: int, kind: str) -> None:
    openai = FakeOpenAI(api_key=API_KEY).queue(step)
    driver = await post(gateway(openai=openai), HELLO)
    assert driver.status == status
    assert anthropic_error(driver)["type"] == kind
    if status == 429:
        assert driver.header("retry-after") == "7"


async def test_an_anthropic_overload_is_an_overloaded_error_for_anthropic_clients() -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    claude = Anthropic(answer_json(overloaded, status=529, headers={"x-should-retry": "false"}))
    driver = await post(gateway(claude), HELLO)
    assert driver.status == 529  # the SDK raises OverloadedError for it, as from Anthropic itself
    assert anthropic_error(driver)["type"] == "overloaded_error"


async def test_an_error_after_the_commit_point_is_an_error_event_and_nothing_after_it() -> None:
    openai = FakeOpenAI(api_key=API_KEY).queue(answer_sse(recording("openai/stream-text.sse"), error_after=3))
    driver = await post(gateway(openai=openai), {**HELLO, "stream": True})
    assert driver.status == 200 and driver.complete
    events = [e for e in driver.body.split(b"\n\n") if e]
    assert events[0].startswith(b"event: message_start\n")
    assert events[-1].startswith(b"event: error\ndata: ")
    error = orjson.loads(events[-1].split(b"data: ", 1)[1])
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert b"message_stop" not in driver.body


async def test_an_anthropic_error_event_mid_stream_reaches_the_client_as_one() -> None:
    events = recording("anthropic/stream-text.sse").split(b"\n\n")
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    claude = Anthropic(answer_sse(b"\n\n".join([*events[:5], error]) + b"\n\n"))
    driver = await post(gateway(claude), {**HELLO, "stream": True})
    assert driver.status == 200
    assert driver.body.startswith(b"event: message_start\n") and b"text_delta" in driver.body
    tail = driver.body.rsplit(b"\n\n", 2)[-2]
    assert tail.startswith(b"event: error\n") and b'"overloaded_error"' in tail


# -- fallback across protocols ---------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_an_anthropic_route_that_fails_falls_back_to_an_openai_route_translated_afresh(stream: bool) -> None:
    refused = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    claude = Anthropic(answer_json(refused, status=401))
    openai = FakeOpenAI(api_key=API_KEY)
    if stream:
        openai.queue(answer_sse(recording("openai/stream-text.sse")))
    routes = [{"provider": "claude", "model": CLAUDE}, {"provider": "gpt", "model": "gpt-4o"}]
    app = gateway(claude, openai, models={"m": {"routes": routes}})
    request = {**rich_request("m"), "stream": stream, "thinking": {"type": "disabled"}}
    driver = await post(app, request)
    assert driver.status == 200, driver.body
    assert driver.header("x-routemw-provider") == "gpt" and driver.header("x-routemw-attempts") == "2"
    assert orjson.loads(claude.raw[0])["messages"] == request["messages"]  # the first try: untouched
    sent = openai.requests[0].body
    assert sent["messages"][2]["tool_calls"][0]["id"] == "call_01Xy"  # the second: translated
    assert driver.header("x-routemw-dropped-params") == "cache_control, thinking"
    if stream:
        assert b"event: message_stop" in driver.body and b"text_delta" in driver.body
    else:
        assert driver.json()["content"][0]["type"] == "text"


# -- disconnects -----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["anthropic", "openai"])
async def test_a_client_that_leaves_mid_stream_releases_the_upstream(route: str) -> None:
    if route == "anthropic":
        claude: Anthropic | None = Anthropic(answer_sse(recording("anthropic/stream-text.sse"), pause_after={6: 30.0}))
        openai: FakeOpenAI | None = None
    else:
        claude = None
        openai = FakeOpenAI(api_key=API_KEY).queue(
            answer_sse(recording("openai/stream-text.sse"), pause_after={4: 30.0})
        )
    driver = AsgiDriver(gateway(claude, openai), path="/v1/messages", body=orjson.dumps({**HELLO, "stream": True}))
    async with anyio.create_task_group() as tg:
        tg.start_soon(driver.run)
        await anyio.lowlevel.checkpoint()
        await wait_for(lambda: b"text_delta" in driver.body)
        driver.disconnect()
        left = time.monotonic()
    (stream,) = claude.streams if claude is not None else openai.streams  # type: ignore[union-attr]
    assert stream.cancelled and stream.closed
    assert stream.closed_at is not None and stream.closed_at - left < 1.0
    assert b"message_stop" not in driver.body


# -- count_tokens ----------------------------------------------------------------------------------


async def test_count_tokens_asks_an_anthropic_route_for_its_own_count() -> None:
    claude = Anthropic(answer_json({"input_tokens": 42}))
    body = {"model": "m", "messages": [{"role": "user", "content": "How many?"}]}
    headers = [("anthropic-beta", BETAS)]
    driver = await post(gateway(claude), body, path="/v1/messages/count_tokens", headers=headers)
    assert (driver.status, driver.json()) == (200, {"input_tokens": 42})
    assert driver.header("x-routemw-token-count") == "upstream"
    (request,) = claude.requests
    assert request.url.path == "/v1/messages/count_tokens"
    assert request.headers["anthropic-beta"] == BETAS
    assert orjson.loads(claude.raw[0]) == {**body, "model": CLAUDE}


async def test_count_tokens_estimates_where_no_route_can_count() -> None:
    openai = FakeOpenAI(api_key=API_KEY)
    body = {"model": "m", "system": "x" * 400, "messages": [{"role": "user", "content": "y" * 800}]}
    driver = await post(gateway(openai=openai), body, path="/v1/messages/count_tokens")
    assert driver.status == 200 and driver.header("x-routemw-token-count") == "estimate"
    assert driver.json() == {"input_tokens": 300 + 4}  # 1,200 characters / 4, plus one message's framing
    assert openai.requests == []


async def test_count_tokens_estimates_when_the_anthropic_route_fails() -> None:
    claude = Anthropic(answer_error(500))
    body = {"model": "m", "messages": [{"role": "user", "content": "abcd"}]}
    driver = await post(gateway(claude), body, path="/v1/messages/count_tokens")
    assert driver.status == 200 and driver.header("x-routemw-token-count") == "estimate"
    assert driver.json() == {"input_tokens": 1 + 4}


async def test_count_tokens_knows_the_same_models_as_the_messages_door() -> None:
    driver = await post(
        gateway(openai=FakeOpenAI(api_key=API_KEY), keys=True),
        {"model": "elsewhere", "messages": []},
        path="/v1/messages/count_tokens",
        headers=[("x-api-key", CLIENT_KEY)],
    )
    assert driver.status == 404 and anthropic_error(driver)["type"] == "not_found_error"
