"""The official `openai` SDK against the gateway served on a loopback port, by uvicorn and by granian.

Level 3 of the test plan: a real server, a real client, nothing in between that could hide a
framing or streaming problem. Upstreams are the built-in `echo` provider, or a second local
uvicorn server that replays recorded OpenAI responses, reached through the gateway's default
(aiohttp) transport. No internet.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import openai
import pytest
from fakes import RECORDINGS as ALL_RECORDINGS
from fastapi import FastAPI
from openai import AsyncOpenAI, OpenAI
from servers import ENGINES, LiveServer, serve, wait_until
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from routemw import Gateway

PROMPT = "the quick brown fox jumps"
CLIENT_KEY = "sk-client-key-that-must-stay-here"
UPSTREAM_KEY = "sk-upstream-configured-key"
ECHO_CONFIG: dict[str, Any] = {
    "models": {"echo": {"routes": [{"provider": "echo", "model": "echo"}], "owned_by": "routemw"}},
}
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]


RECORDINGS = ALL_RECORDINGS / "openai"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def sync_client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=10.0)


def async_client(base_url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=base_url, api_key=CLIENT_KEY, max_retries=0, timeout=10.0)


# -- the gateway on its own ------------------------------------------------------------------


@pytest.fixture(scope="module", params=ENGINES)
def gateway_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    gateway = Gateway.from_config(ECHO_CONFIG, environ={})
    with serve(gateway, lifespan="on", engine=request.param) as live:
        yield live


@pytest.fixture
def client(gateway_server: LiveServer) -> Iterator[OpenAI]:
    with sync_client(gateway_server.url + "/v1") as sdk:
        yield sdk


@pytest.fixture
def base_url(gateway_server: LiveServer) -> str:
    return gateway_server.url + "/v1"


def test_sync_completion(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="echo", messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.model == "echo"
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == PROMPT
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(PROMPT.split())
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


async def test_async_completion(base_url: str) -> None:
    async with async_client(base_url) as sdk:
        completion = await sdk.chat.completions.create(model="echo", messages=MESSAGES)

    assert completion.choices[0].message.content == PROMPT
    assert completion.choices[0].finish_reason == "stop"


def test_sync_stream_without_usage(client: OpenAI) -> None:
    with client.chat.completions.create(model="echo", messages=MESSAGES, stream=True) as stream:
        chunks = list(stream)

    assert len(chunks) > 2  # role chunk, words, finish: really streamed, not one blob
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == PROMPT
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(chunk.usage is None for chunk in chunks)


def test_sync_stream_with_usage(client: OpenAI) -> None:
    with client.chat.completions.create(
        model="echo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as stream:
        chunks = list(stream)

    *content_chunks, usage_chunk = chunks
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == PROMPT
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.completion_tokens == len(PROMPT.split())
    assert all(chunk.usage is None for chunk in content_chunks)


@pytest.mark.parametrize("include_usage", [False, True])
async def test_async_stream(base_url: str, include_usage: bool) -> None:
    options: Any = {"include_usage": True} if include_usage else openai.omit
    async with async_client(base_url) as sdk:
        stream = await sdk.chat.completions.create(model="echo", messages=MESSAGES, stream=True, stream_options=options)
        async with stream:
            chunks = [chunk async for chunk in stream]

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == PROMPT
    usage = [chunk.usage for chunk in chunks if chunk.usage is not None]
    assert len(usage) == (1 if include_usage else 0)


def test_sync_stream_helper_accumulates_the_message(client: OpenAI) -> None:
    with client.chat.completions.stream(model="echo", messages=MESSAGES) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()

    assert len(deltas) > 1
    assert "".join(deltas) == PROMPT
    assert final.choices[0].message.content == PROMPT
    assert final.choices[0].finish_reason == "stop"


async def test_async_stream_helper_accumulates_the_message(base_url: str) -> None:
    async with async_client(base_url) as sdk, sdk.chat.completions.stream(model="echo", messages=MESSAGES) as stream:
        deltas = [event.delta async for event in stream if event.type == "content.delta"]
        final = await stream.get_final_completion()

    assert "".join(deltas) == PROMPT
    assert final.choices[0].message.content == PROMPT


def test_models_list_and_retrieve(client: OpenAI) -> None:
    models = client.models.list()
    assert [model.id for model in models] == ["echo"]

    echo = client.models.retrieve("echo")
    assert echo.id == "echo"
    assert echo.object == "model"
    assert echo.owned_by == "routemw"


def test_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)

    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert "no-such-model" in caught.value.message


def test_unknown_model_is_not_found_when_streaming(client: OpenAI) -> None:
    # The 404 is decided before the stream commits, so it arrives as an HTTP error, not in-band.
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES, stream=True)
    assert caught.value.code == "model_not_found"


async def test_async_unknown_model_is_not_found(base_url: str) -> None:
    async with async_client(base_url) as sdk:
        with pytest.raises(openai.NotFoundError) as caught:
            await sdk.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


def test_retrieve_unknown_model_is_not_found(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found"


def test_wrong_parameter_type_is_a_bad_request_naming_it(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="echo", messages=MESSAGES, extra_body={"temperature": "hot"})

    assert caught.value.status_code == 400
    assert caught.value.param == "temperature"
    assert caught.value.code == "invalid_type"
    assert caught.value.type == "invalid_request_error"


def test_empty_messages_is_a_bad_request_naming_them(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="echo", messages=[])
    assert caught.value.param == "messages"


def test_request_id_from_the_client_comes_back(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="echo", messages=MESSAGES, extra_headers={"x-request-id": "trace-e2e-1"}
    )
    assert raw.headers["x-request-id"] == "trace-e2e-1"
    assert raw.parse().choices[0].message.content == PROMPT


# -- the gateway mounted in a host app -------------------------------------------------------


async def _health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("host ok")


def starlette_host(gateway: Gateway) -> Starlette:
    return Starlette(routes=[Route("/health", _health), Mount("/llm", app=gateway)], lifespan=gateway.lifespan)


def fastapi_host(gateway: Gateway) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with gateway:
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/llm", gateway)
    app.add_api_route("/health", _health)
    return app


@pytest.fixture(scope="module", params=["starlette", "fastapi"])
def mounted(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    gateway = Gateway.from_config(ECHO_CONFIG, environ={})
    host = starlette_host(gateway) if request.param == "starlette" else fastapi_host(gateway)
    with serve(host, lifespan="on") as live:
        yield live


def test_mounted_sync_completion_and_stream(mounted: LiveServer) -> None:
    with sync_client(mounted.url + "/llm/v1") as sdk:
        completion = sdk.chat.completions.create(model="echo", messages=MESSAGES)
        with sdk.chat.completions.create(model="echo", messages=MESSAGES, stream=True) as stream:
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        models = [model.id for model in sdk.models.list()]

    assert completion.choices[0].message.content == PROMPT
    assert text == PROMPT
    assert models == ["echo"]


async def test_mounted_async_completion_and_stream(mounted: LiveServer) -> None:
    async with async_client(mounted.url + "/llm/v1") as sdk:
        completion = await sdk.chat.completions.create(model="echo", messages=MESSAGES)
        stream = await sdk.chat.completions.create(model="echo", messages=MESSAGES, stream=True)
        async with stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert completion.choices[0].message.content == PROMPT
    assert text == PROMPT


def test_mounted_errors_keep_the_openai_shape(mounted: LiveServer) -> None:
    with sync_client(mounted.url + "/llm/v1") as sdk, pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


def test_host_routes_work_beside_the_mount(mounted: LiveServer) -> None:
    with httpx.Client(base_url=mounted.url, timeout=10.0) as http:
        health = http.get("/health")
        outside = http.get("/v1/models")  # the gateway lives under /llm only

    assert health.status_code == 200
    assert health.text == "host ok"
    assert outside.status_code == 404


# -- a real upstream over loopback, through the default (aiohttp) transport -------------------

ROUTE_MODEL = "gpt-4o-2024-08-06"
SLOW_MODEL = "slow-upstream"
SLOW_CHUNKS = 200
SLOW_INTERVAL = 0.05


def _sse_events(raw: bytes) -> list[bytes]:
    """The recorded stream cut into its events, each with its own framing."""
    return [event + b"\n\n" for event in raw.split(b"\n\n") if event.strip()]


def _chunk_payloads(raw: bytes) -> list[dict[str, Any]]:
    payloads = []
    for event in _sse_events(raw):
        data = event.strip().removeprefix(b"data: ")
        if data != b"[DONE]":
            payloads.append(json.loads(data))
    return payloads


class RecordedUpstream:
    """A raw ASGI stand-in for api.openai.com that replays recordings and records what it got."""

    def __init__(self, completion: bytes, stream: bytes) -> None:
        self.completion = completion
        self.stream_events = _sse_events(stream)
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.slow_sent = 0
        self.abandoned = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        payload = json.loads(body)
        self.requests.append((headers, payload))
        if scope["path"] != "/v1/chat/completions":
            await _start(send, 404, b"application/json")
            await send({"type": "http.response.body", "body": b'{"error": {"message": "no route"}}'})
        elif payload["model"] == SLOW_MODEL:
            await self._slow_stream(receive, send)
        elif payload.get("stream"):
            await _start(send, 200, b"text/event-stream")
            for event in self.stream_events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await _start(send, 200, b"application/json")
            await send({"type": "http.response.body", "body": self.completion})

    async def _slow_stream(self, receive: Any, send: Any) -> None:
        """One chunk every SLOW_INTERVAL; notes when the reader goes away (disconnect or failing send)."""
        await _start(send, 200, b"text/event-stream")
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                self.abandoned.set()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            try:
                for index in range(SLOW_CHUNKS):
                    await send({"type": "http.response.body", "body": _slow_event(index), "more_body": True})
                    self.slow_sent += 1
                    await anyio.sleep(SLOW_INTERVAL)
                await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})
            except OSError:
                self.abandoned.set()
            tg.cancel_scope.cancel()


async def _start(send: Any, status: int, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]})


def _slow_event(index: int) -> bytes:
    chunk = {
        "id": "chatcmpl-slow",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": SLOW_MODEL,
        "choices": [{"index": 0, "delta": {"content": f"w{index} "}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def recorded_upstream() -> RecordedUpstream:
    return RecordedUpstream(
        (RECORDINGS / "completion-text.json").read_bytes(), (RECORDINGS / "stream-text.sse").read_bytes()
    )


def proxy_config(upstream_url: str) -> dict[str, Any]:
    return {
        "providers": {
            "recorded": {"type": "openai", "base_url": upstream_url + "/v1", "api_key": UPSTREAM_KEY},
        },
        "models": {
            # The recordings arrive exactly as recorded, the upstream's model name included.
            "gpt-4o": {"routes": [{"provider": "recorded", "model": ROUTE_MODEL}], "response_model": "upstream"},
            "slow": {"routes": [{"provider": "recorded", "model": SLOW_MODEL}]},
        },
    }


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[RecordedUpstream, LiveServer]]:
    fake = recorded_upstream()
    with serve(fake, lifespan="off") as live:
        yield fake, live


@pytest.fixture(scope="module", params=ENGINES)
def proxied(upstream: tuple[RecordedUpstream, LiveServer], request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    gateway = Gateway.from_config(proxy_config(upstream[1].url), environ={})
    assert gateway.providers["recorded"].transport is None  # the gateway's default transport is used
    with serve(gateway, lifespan="on", engine=request.param) as live:
        yield live


@pytest.fixture
def fake_upstream(upstream: tuple[RecordedUpstream, LiveServer]) -> RecordedUpstream:
    return upstream[0]


def _only_new_request(fake: RecordedUpstream, before: int) -> tuple[dict[str, str], dict[str, Any]]:
    new = fake.requests[before:]
    assert len(new) == 1, "the gateway must call the upstream exactly once"
    return new[0]


def _assert_upstream_credentials(headers: dict[str, str]) -> None:
    assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert not any(CLIENT_KEY in value for value in headers.values())


def test_recorded_completion_arrives_exactly(proxied: LiveServer, fake_upstream: RecordedUpstream) -> None:
    before = len(fake_upstream.requests)
    with sync_client(proxied.url + "/v1") as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    completion = raw.parse()

    recorded = json.loads(fake_upstream.completion)
    assert raw.content == fake_upstream.completion  # the upstream's bytes, not a re-encoding
    assert completion.id == recorded["id"]
    assert completion.choices[0].message.content == recorded["choices"][0]["message"]["content"]
    assert completion.usage is not None and completion.usage.total_tokens == recorded["usage"]["total_tokens"]
    headers, body = _only_new_request(fake_upstream, before)
    _assert_upstream_credentials(headers)
    assert body["model"] == ROUTE_MODEL
    assert body["messages"] == MESSAGES


def test_recorded_stream_arrives_exactly(proxied: LiveServer, fake_upstream: RecordedUpstream) -> None:
    before = len(fake_upstream.requests)
    with sync_client(proxied.url + "/v1") as sdk:
        stream = sdk.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        with stream:
            chunks = [chunk.to_dict() for chunk in stream]

    recorded = _chunk_payloads(b"".join(fake_upstream.stream_events))
    assert chunks == recorded
    headers, body = _only_new_request(fake_upstream, before)
    _assert_upstream_credentials(headers)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["model"] == ROUTE_MODEL


async def test_recorded_stream_async_client(proxied: LiveServer, fake_upstream: RecordedUpstream) -> None:
    async with async_client(proxied.url + "/v1") as sdk:
        stream = await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        async with stream:
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    recorded = _chunk_payloads(b"".join(fake_upstream.stream_events))
    assert text == "".join(p["choices"][0]["delta"].get("content") or "" for p in recorded if p["choices"])


def test_recorded_stream_bytes_pass_through(proxied: LiveServer, fake_upstream: RecordedUpstream) -> None:
    # include_usage as when the stream was recorded, so the usage chunk is one the client asked for
    request = {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(timeout=10.0) as http:
        response = http.post(proxied.url + "/v1/chat/completions", json=request)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content == b"".join(fake_upstream.stream_events)


def test_client_abandoning_a_stream_abandons_the_upstream(proxied: LiveServer, fake_upstream: RecordedUpstream) -> None:
    fake_upstream.abandoned.clear()
    with sync_client(proxied.url + "/v1") as sdk:
        stream = sdk.chat.completions.create(model="slow", messages=MESSAGES, stream=True)
        chunks = iter(stream)
        first, second = next(chunks), next(chunks)
        assert (first.choices[0].delta.content, second.choices[0].delta.content) == ("w0 ", "w1 ")
        stream.close()
        closed = time.monotonic()

    assert fake_upstream.abandoned.wait(2.0), "the upstream kept streaming to nobody"
    assert time.monotonic() - closed < 2.0
    assert fake_upstream.slow_sent < SLOW_CHUNKS


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("host", ["gateway", "starlette", "fastapi"])
@pytest.mark.filterwarnings("error::ResourceWarning")
def test_shutdown_closes_the_upstream_connections(host: str, engine: str) -> None:
    # A fresh upstream, so the only connections it sees are this gateway's. A pool left open
    # shows either way: its connection stays open (asyncio loop), or uvloop closes it when the
    # server's loop closes, with a ResourceWarning that makes `serve` fail.
    with serve(recorded_upstream(), lifespan="off") as upstream_server:
        connections = upstream_server.server.server_state.connections
        gateway = Gateway.from_config(proxy_config(upstream_server.url), environ={})
        hosts: dict[str, Callable[[Gateway], Any]] = {
            "gateway": lambda gateway: gateway,
            "starlette": starlette_host,
            "fastapi": fastapi_host,
        }
        app = hosts[host](gateway)
        prefix = "" if host == "gateway" else "/llm"
        with serve(app, lifespan="on", engine=engine) as live, sync_client(live.url + prefix + "/v1") as sdk:
            sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert len(connections) == 1  # kept alive in the gateway's pool while it runs

        # The server's lifespan shutdown (the host's, for a mounted gateway) closed the pool.
        wait_until(lambda: not connections, timeout=2.0, what="upstream connections closed")
