"""End to end: the official `openai` SDK against the gateway on uvicorn, whose first provider is a
real local server that answers 500 to everything and whose second is a real local server that
answers with a recorded OpenAI completion. The SDK's own retries are off (`max_retries=0`), so
what is measured is the gateway's retry and fallback, over real sockets on 127.0.0.1 only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from fakes import data_payloads, recording
from openai import OpenAI
from servers import LiveServer, read_request, serve

from routemw import Gateway

CLIENT_KEY = "sk-client-e2e-fallback"
BROKEN_KEY = "sk-broken-upstream-key-1111"
GOOD_KEY = "sk-good-upstream-key-2222"
GOOD_MODEL = "gpt-4o-2024-08-06"
ATTEMPTS = 2
MESSAGES: list[Any] = [{"role": "user", "content": "What's the weather like in SF?"}]


class Upstream:
    """A raw ASGI upstream that records every request (from uvicorn's thread) before answering."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_request(scope, receive, send)
        if body is None:
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        payload = orjson.loads(body)
        with self._lock:
            self.requests.append((headers, payload))
        await self.answer(scope, payload, send)

    async def answer(self, scope: dict[str, Any], payload: dict[str, Any], send: Any) -> None:
        raise NotImplementedError


class AlwaysFails(Upstream):
    async def answer(self, scope: dict[str, Any], payload: dict[str, Any], send: Any) -> None:
        error = {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}
        await _respond(send, 500, b"application/json", orjson.dumps(error))


class Recorded(Upstream):
    async def answer(self, scope: dict[str, Any], payload: dict[str, Any], send: Any) -> None:
        if payload.get("stream"):
            await _respond(send, 200, b"text/event-stream", recording("openai/stream-text.sse"))
        else:
            await _respond(send, 200, b"application/json", recording("openai/completion-text.json"))


async def _respond(send: Any, status: int, content_type: bytes, body: bytes) -> None:
    headers = [(b"content-type", content_type), (b"x-request-id", b"req_from_the_good_upstream")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class Stack:
    broken: AlwaysFails
    good: Recorded
    gateway: LiveServer


@pytest.fixture
def stack() -> Iterator[Stack]:
    broken, good = AlwaysFails(), Recorded()
    with serve(broken) as broken_server, serve(good) as good_server:
        config = {
            "providers": {
                "broken": {"type": "openai", "base_url": broken_server.url + "/v1", "api_key": BROKEN_KEY},
                "good": {"type": "openai", "base_url": good_server.url + "/v1", "api_key": GOOD_KEY},
            },
            "models": {
                "gpt-4o": {
                    "routes": [{"provider": "broken", "model": "gpt-4o"}, {"provider": "good", "model": GOOD_MODEL}]
                }
            },
            "retry": {"attempts": ATTEMPTS, "backoff_initial": 0.01, "backoff_max": 0.02},
        }
        gateway = Gateway.from_config(config, environ={})
        with serve(gateway, lifespan="on") as gateway_server:
            yield Stack(broken, good, gateway_server)


def client(stack: Stack) -> OpenAI:
    return OpenAI(base_url=stack.gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=10.0)


def check_upstreams(stack: Stack, *, stream: bool) -> None:
    assert stack.broken.count == ATTEMPTS  # retried exactly retry.attempts times, then fell back
    for headers, payload in stack.broken.requests:
        assert headers["authorization"] == f"Bearer {BROKEN_KEY}"
        assert payload["model"] == "gpt-4o"
    ((headers, payload),) = stack.good.requests
    assert headers["authorization"] == f"Bearer {GOOD_KEY}"
    assert payload["model"] == GOOD_MODEL
    assert payload["messages"] == MESSAGES
    assert bool(payload.get("stream")) is stream


def check_disclosure(headers: Any) -> None:
    assert headers["x-routemw-provider"] == "good"
    assert headers["x-routemw-route-model"] == GOOD_MODEL
    assert headers["x-routemw-attempts"] == str(ATTEMPTS + 1)
    assert headers["x-routemw-fallbacks"] == "1"
    assert headers["x-upstream-request-id"] == "req_from_the_good_upstream"


def test_the_sdk_gets_the_second_providers_answer_when_the_first_returns_500s(stack: Stack) -> None:
    expected = orjson.loads(recording("openai/completion-text.json"))
    with client(stack) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
        completion = raw.parse()

    assert raw.status_code == 200
    check_disclosure(raw.headers)
    assert completion.id == expected["id"]
    assert completion.model == "gpt-4o"  # the public id asked for, not the upstream's name
    assert completion.choices[0].message.content == expected["choices"][0]["message"]["content"]
    assert completion.choices[0].finish_reason == expected["choices"][0]["finish_reason"]
    assert completion.usage is not None
    assert completion.usage.total_tokens == expected["usage"]["total_tokens"]
    check_upstreams(stack, stream=False)


def test_the_sdk_streams_the_second_providers_answer_when_the_first_returns_500s(stack: Stack) -> None:
    recorded = [orjson.loads(p) for p in data_payloads(recording("openai/stream-text.sse")) if p != b"[DONE]"]
    expected_text = "".join(c["choices"][0]["delta"].get("content") or "" for c in recorded if c["choices"])
    with (
        client(stack) as sdk,
        sdk.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES, stream=True) as raw,
    ):
        headers = raw.headers
        chunks = list(raw.parse())

    assert raw.status_code == 200
    check_disclosure(headers)
    assert headers["content-type"].startswith("text/event-stream")
    assert [chunk.id for chunk in chunks] == [c["id"] for c in recorded]
    assert {chunk.model for chunk in chunks} == {"gpt-4o"}  # the public id, not the upstream's name
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected_text
    assert expected_text  # the recording does say something
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    check_upstreams(stack, stream=True)
