"""Limits end to end: the official `openai` SDK, the gateway on uvicorn, a fake upstream on uvicorn.

The upstream counts the requests it has in flight (a stream counts until it ends or its client,
the gateway, goes away), so the tests see what reached the provider, not what the gateway says.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from servers import LiveServer, read_request, serve, wait_until

from routemw import Gateway

KEY = "sk-e2e-limits-0123456789"
UPSTREAM_KEY = "sk-e2e-upstream-key-000"
MESSAGES: list[Any] = [{"role": "user", "content": "Say something short."}]
COMPLETION_TOKENS = 5  # what the upstream reports for every answer


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


class Upstream:
    """OpenAI chat completions: JSON answers, and streams that pause (or hang, for model `hang`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_request(scope, receive, send)
        if body is None:
            return
        request = json.loads(body)
        with self.lock:
            self.requests += 1
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            if request.get("stream"):
                await self._stream(request, receive, send)
            else:
                answer = {**_base("chat.completion"), "choices": [_choice(message=True)], "usage": _usage()}
                await _start(send, b"application/json")
                await send({"type": "http.response.body", "body": json.dumps(answer).encode()})
        finally:
            with self.lock:
                self.in_flight -= 1

    async def _stream(self, request: dict[str, Any], receive: Any, send: Any) -> None:
        await _start(send, b"text/event-stream")
        chunk = {**_base("chat.completion.chunk"), "choices": [_choice(content="Hi")]}
        await send({"type": "http.response.body", "body": _event(chunk), "more_body": True})
        if request["model"] == "hang":
            await receive()  # until the gateway lets go of us
            return
        for _ in range(3):
            await asyncio.sleep(0.02)
            await send({"type": "http.response.body", "body": _event(chunk), "more_body": True})
        done = {**_base("chat.completion.chunk"), "choices": [_choice(finish="stop")]}
        tail = _event(done)
        if (request.get("stream_options") or {}).get("include_usage"):
            tail += _event({**_base("chat.completion.chunk"), "choices": [], "usage": _usage()})
        await send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n"})


def _base(kind: str) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": kind, "created": 1, "model": "gpt-4o"}


def _choice(*, message: bool = False, content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    if message:
        return {"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}
    delta = {"content": content} if content is not None else {}
    return {"index": 0, "delta": delta, "finish_reason": finish}


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 10, "completion_tokens": COMPLETION_TOKENS, "total_tokens": 10 + COMPLETION_TOKENS}


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def _start(send: Any, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})


@pytest.fixture
def upstream() -> Iterator[tuple[Upstream, LiveServer]]:
    fake = Upstream()
    with serve(fake) as live:
        yield fake, live


def gateway_config(upstream_url: str, limits: dict[str, Any], **extra: Any) -> dict[str, Any]:
    route = {"provider": "up", "model": "gpt-4o", "capabilities": {"stream_usage": True}}
    return {
        "providers": {"up": {"type": "openai", "base_url": upstream_url + "/v1", "api_key": UPSTREAM_KEY}},
        "models": {
            "gpt-4o": {"routes": [route]},
            "hang": {"routes": [{**route, "model": "hang"}]},
        },
        "keys": [{"name": "team-a", "key": KEY, "models": ["*"], "limits": limits}],
        "auth": {"mode": "keys"},
        "retry": {"attempts": 1},
        **extra,
    }


@pytest.fixture
def make_gateway(upstream: tuple[Upstream, LiveServer]) -> Iterator[Any]:
    servers: list[Any] = []

    def start(limits: dict[str, Any], **extra: Any) -> str:
        gateway = Gateway.from_config(gateway_config(upstream[1].url, limits, **extra), environ={})
        context = serve(gateway)
        live = context.__enter__()
        servers.append(context)
        return live.url + "/v1"

    yield start
    for context in reversed(servers):
        context.__exit__(None, None, None)


def test_a_burst_past_rpm_gets_429_with_a_retry_after_the_sdk_can_use(make_gateway: Any) -> None:
    base_url = make_gateway({"rpm": 60})
    with OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10) as client:
        admitted = 0
        # One request comes back every second, so a slow machine may see a few more than 60.
        with pytest.raises(openai.RateLimitError) as caught:
            for _ in range(200):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                admitted += 1
        assert admitted >= 60
        headers = caught.value.response.headers
        assert int(headers["retry-after"]) == 1
        assert 0 < int(headers["retry-after-ms"]) <= 1000
        assert caught.value.body["type"] == "requests"  # type: ignore[index]
    # The SDK's own retry waits as told and gets in.
    with OpenAI(base_url=base_url, api_key=KEY, max_retries=2, timeout=10) as client:
        assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices


async def test_twenty_concurrent_streams_never_exceed_four_in_flight_upstream(
    make_gateway: Any, upstream: tuple[Upstream, LiveServer]
) -> None:
    fake = upstream[0]
    base_url = make_gateway({"concurrency": 4})
    outcomes: list[str] = []

    async with AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10) as client:

        async def one() -> None:
            try:
                stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
                async for _ in stream:
                    pass
                outcomes.append("ok")
            except openai.RateLimitError as exc:
                assert exc.body["type"] == "concurrency"  # type: ignore[index]
                outcomes.append("refused")

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
    assert fake.peak <= 4
    assert len(outcomes) == 20 and "ok" in outcomes
    assert fake.requests == outcomes.count("ok")  # a refused request never reached the upstream


def test_a_budget_spent_exactly_to_the_cent_gets_402_on_the_next_request(
    make_gateway: Any, upstream: tuple[Upstream, LiveServer]
) -> None:
    # 5 output tokens at $10,000 per 1M cost exactly $0.05; input is free, and max_tokens is the
    # real output, so each request reserves exactly what it will cost.
    prices = {"gpt-4o": {"input": 0, "output": 10_000}, "up/hang": {"input": 0, "output": 0}}
    base_url = make_gateway({"budget": {"usd": 0.10, "period": "month"}}, prices=prices)
    with OpenAI(base_url=base_url, api_key=KEY, max_retries=2, timeout=10) as client:
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=COMPLETION_TOKENS)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=COMPLETION_TOKENS)
        assert caught.value.status_code == 402
        assert caught.value.response.headers["x-should-retry"] == "false"
        assert "resets at" in caught.value.message
        key = client.get("/key", cast_to=object)
    assert upstream[0].requests == 2  # x-should-retry: false kept the SDK from retrying
    assert key["data"]["usage"] == 0.10  # type: ignore[index]


def test_clients_that_disconnect_mid_stream_release_their_slots(
    make_gateway: Any, upstream: tuple[Upstream, LiveServer]
) -> None:
    fake = upstream[0]
    base_url = make_gateway({"concurrency": 2})
    with OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10) as client:
        for _ in range(3):  # more rounds than slots: a leak would refuse the second round
            streams = [client.chat.completions.create(model="hang", messages=MESSAGES, stream=True) for _ in range(2)]
            for stream in streams:
                next(iter(stream))  # the first chunk arrived: the upstream holds the request open
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="hang", messages=MESSAGES, stream=True)
            for stream in streams:
                stream.close()  # the client goes away mid-stream
            wait_until(lambda: fake.in_flight == 0, timeout=5, what="the upstream streams to end")
            wait_until(lambda: _admitted(client), timeout=5, what="the slots to come back")


def _admitted(client: OpenAI) -> bool:
    try:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    except openai.RateLimitError:
        return False
    return True


def test_rate_limit_headers_parse_with_the_sdks_raw_response(make_gateway: Any) -> None:
    base_url = make_gateway({"rpm": 100, "tpm": 100_000})
    with OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=10) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
        assert raw.parse().choices[0].message.content == "Hello."
        assert int(raw.headers["x-ratelimit-limit-requests"]) == 100
        assert int(raw.headers["x-ratelimit-remaining-requests"]) == 99
        assert raw.headers["x-ratelimit-reset-requests"] == "600ms"
        assert int(raw.headers["x-ratelimit-limit-tokens"]) == 100_000
        assert 0 < int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000
        streamed = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert int(streamed.headers["x-ratelimit-remaining-requests"]) == 98
        chunks = list(streamed.parse())
        assert chunks and all(chunk.usage is None for chunk in chunks)  # injected usage stays hidden
