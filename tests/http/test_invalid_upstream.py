"""Upstream answers the gateway must refuse, through the whole gateway: each falls back before the
commit point and ends the stream with an in-band error after it, and none takes much memory.

Two transports, because the bounds must hold wherever the bytes come from: `httpx.MockTransport`
with the fake OpenAI (a user's httpx transport), and the default aiohttp transport against a
real aiohttp server on a loopback port. Also here: the headers every upstream request carries.
"""

from __future__ import annotations

import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from fakes import (
    API_KEY,
    BACKUP_KEY,
    AsgiDriver,
    FakeOpenAI,
    Step,
    answer_json,
    answer_sse,
    awkward_pieces,
    data_payloads,
    drive,
    gzip_bomb,
    recording,
    route_hosts,
)

import routemw
from routemw import Gateway

CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
STREAM_CHAT: dict[str, Any] = {**CHAT, "stream": True}
COMPLETION: dict[str, Any] = orjson.loads(recording("openai/completion-text.json"))
BOMB_MIB = 300
MEMORY_BOUND = 64 * 1024 * 1024  # loose: what matters is far below the 300 MiB a bomb inflates to


def routes(up: str, backup: str) -> dict[str, Any]:
    # `response_model: upstream`: these tests compare relayed chunks with the upstream's bytes.
    chosen = [{"provider": up, "model": "gpt-4o"}, {"provider": backup, "model": "gpt-4o-mini"}]
    return {"gpt-4o": {"routes": chosen, "response_model": "upstream"}}


def mock_gateway(upstream: FakeOpenAI, backup: FakeOpenAI, limits: Mapping[str, Any] | None = None) -> Gateway:
    providers = {
        "up": {"type": "openai", "base_url": "https://upstream.test/v1", "api_key": API_KEY},
        "backup": {"type": "openai", "base_url": "https://backup.test/v1", "api_key": BACKUP_KEY},
    }
    config = {"providers": providers, "models": routes("up", "backup"), "retry": {"attempts": 1}}
    if limits is not None:
        config["upstream"] = dict(limits)
    transport = httpx.MockTransport(route_hosts({"upstream.test": upstream, "backup.test": backup}))
    return Gateway.from_config(config, environ={}, transport=transport)


async def measured(run: Awaitable[AsgiDriver]) -> tuple[AsgiDriver, int]:
    """The driver, and the most memory Python held at once while it ran (tracemalloc's peak)."""
    tracemalloc.start()
    try:
        driver = await run
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return driver, peak


def answered_by_backup(driver: AsgiDriver, stream: bool) -> None:
    assert driver.status == 200, driver.body[:500]
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-attempts") == "2"
    if stream:
        assert driver.payloads()[-1] == b"[DONE]"
    else:
        assert driver.json()["choices"][0]["message"]["content"]


def encoded(body: bytes, coding: str = "gzip", content_type: str = "application/json") -> Step:
    """A 200 whose body is `body` marked with `coding`, delivered as a stream of pieces.

    A stream rather than `httpx.Response(content=...)`, which httpx decodes itself on
    construction, inside the transport, before the gateway could bound anything.
    """
    headers = {"content-type": content_type, "content-encoding": coding}
    return Step(status=200, headers=headers, parts=tuple(awkward_pieces(body, [16384])))


# -- an httpx transport (MockTransport) ---------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_gzip_bomb_falls_back_without_inflating(upstream: FakeOpenAI, backup: FakeOpenAI, stream: bool) -> None:
    upstream.queue(encoded(gzip_bomb(BOMB_MIB), content_type="text/event-stream" if stream else "application/json"))
    gateway = mock_gateway(upstream, backup)
    driver, peak = await measured(drive(gateway, json=STREAM_CHAT if stream else CHAT))

    answered_by_backup(driver, stream)
    assert peak < MEMORY_BOUND
    assert upstream.streams[0].closed
    assert not upstream.streams[0].finished  # refused long before its end


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_body_marked_gzip_that_is_not_falls_back(
    upstream: FakeOpenAI, backup: FakeOpenAI, stream: bool
) -> None:
    body = recording("openai/stream-text.sse") if stream else recording("openai/completion-text.json")
    upstream.queue(encoded(body, content_type="text/event-stream" if stream else "application/json"))
    driver = await drive(mock_gateway(upstream, backup), json=STREAM_CHAT if stream else CHAT)

    answered_by_backup(driver, stream)


async def test_an_unknown_content_encoding_falls_back(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(encoded(b"\x1b\x00\x00", coding="br"))
    driver = await drive(mock_gateway(upstream, backup), json=CHAT)

    answered_by_backup(driver, stream=False)


async def test_with_the_defaults_a_150_mib_sse_line_is_refused_after_8_mib(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    piece = b"a" * 65536  # one object, delivered 2400 times: 150 MiB on the wire, none of it held here
    parts = (b"data: ", *([piece] * 2400), b"\n\n")
    upstream.queue(Step(status=200, headers={"content-type": "text/event-stream"}, parts=parts))
    driver = await drive(mock_gateway(upstream, backup), json=STREAM_CHAT)

    answered_by_backup(driver, stream=True)
    sent = sum(map(len, upstream.streams[0].sent))
    assert 8 * 1024 * 1024 < sent <= 8 * 1024 * 1024 + 2 * len(piece)  # read just past the limit


async def test_a_plain_body_past_the_limit_falls_back(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    padded = orjson.dumps({**COMPLETION, "padding": "x" * (33 * 1024 * 1024)})  # past the default 32 MiB
    upstream.queue(answer_json(padded))
    driver = await drive(mock_gateway(upstream, backup), json=CHAT)

    answered_by_backup(driver, stream=False)


async def test_the_body_limit_is_configurable(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_json({**COMPLETION, "padding": "x" * 2000}))
    gateway = mock_gateway(upstream, backup, limits={"max_body_bytes": 2000})
    driver = await drive(gateway, json=CHAT)

    answered_by_backup(driver, stream=False)
    assert len(recording("openai/completion-text.json")) < 2000  # the backup's answer fits


async def test_every_route_too_large_says_so(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    gateway = mock_gateway(upstream, backup, limits={"max_body_bytes": 100})
    driver = await drive(gateway, json=CHAT)

    assert driver.status == 502
    error = driver.json()["error"]
    assert "invalid_upstream_response" in error["message"]
    assert len(upstream.requests) == len(backup.requests) == 1


@pytest.mark.parametrize("choices", [[], [1, "a", None]], ids=["empty", "junk"])
async def test_a_completion_without_a_usable_choice_falls_back(
    upstream: FakeOpenAI, backup: FakeOpenAI, choices: list[Any]
) -> None:
    upstream.queue(answer_json({**COMPLETION, "choices": choices}))
    driver = await drive(mock_gateway(upstream, backup), json=CHAT)

    answered_by_backup(driver, stream=False)


@pytest.mark.parametrize("event", [b"null", b'{"id": "c", "choices": [1, "a", null]}'], ids=["null", "junk"])
async def test_a_stream_event_that_is_not_a_chunk_falls_back_before_the_commit(
    upstream: FakeOpenAI, backup: FakeOpenAI, event: bytes
) -> None:
    upstream.queue(answer_sse(b"data: " + event + b"\n\n" + recording("openai/stream-text.sse")))
    driver = await drive(mock_gateway(upstream, backup), json=STREAM_CHAT)

    answered_by_backup(driver, stream=True)


def stream_then(tail: bytes) -> bytes:
    """The recorded stream's first events (role, then content: committed), then `tail`."""
    events = recording("openai/stream-text.sse").split(b"\n\n")
    return b"\n\n".join(events[:3]) + b"\n\n" + tail


@pytest.mark.parametrize(
    ("tail", "says"),
    [
        (b"data: null\n\n", "is JSON null, not a chunk object"),
        (b"data: " + b"z" * 2000, "a stream event larger than 1000 bytes (upstream.max_event_bytes)"),
    ],
    ids=["null", "oversized"],
)
async def test_after_the_commit_a_refused_event_ends_the_stream_in_band(
    upstream: FakeOpenAI, backup: FakeOpenAI, tail: bytes, says: str
) -> None:
    upstream.queue(answer_sse(stream_then(tail)))
    gateway = mock_gateway(upstream, backup, limits={"max_event_bytes": 1000})
    driver = await drive(gateway, json=STREAM_CHAT)

    assert driver.status == 200 and driver.header("x-routemw-provider") == "up"
    payloads = driver.payloads()
    assert payloads[:-1] == data_payloads(stream_then(b""))  # what came before is relayed, then the error
    error = orjson.loads(payloads[-1])["error"]
    assert error["code"] == "invalid_upstream_response"
    assert says in error["message"]
    assert b"[DONE]" not in driver.body
    assert backup.requests == []


async def test_upstream_requests_name_routemw_and_carry_the_request_id(upstream: FakeOpenAI) -> None:
    gateway = mock_gateway(upstream, FakeOpenAI(api_key=BACKUP_KEY))
    generated = await drive(gateway, json=CHAT)
    kept = await drive(gateway, json=STREAM_CHAT, headers=[("x-request-id", "client-chosen-42")])

    first, second = upstream.requests
    assert first.headers["user-agent"] == second.headers["user-agent"] == f"routemw/{routemw.__version__}"
    assert first.headers["accept-encoding"] == "identity"
    assert first.headers["x-request-id"] == generated.header("x-request-id")
    assert second.headers.get_list("x-request-id") == ["client-chosen-42"] == [kept.header("x-request-id")]


# -- the default transport (aiohttp) against a real server on loopback ---------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def loopback(handlers: Mapping[str, Handler]) -> AsyncIterator[str]:
    """An aiohttp server on 127.0.0.1 answering POST `/<name>/v1/chat/completions`; yields its URL."""
    app = web.Application()
    for name, handler in handlers.items():
        app.router.add_post(f"/{name}/v1/chat/completions", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


def live_document(url: str, **document: Any) -> dict[str, Any]:
    providers = {
        name: {"type": "openai", "base_url": f"{url}/{name}/v1", "api_key": API_KEY} for name in ("bad", "backup")
    }
    return {"providers": providers, "models": routes("bad", "backup"), "retry": {"attempts": 1}, **document}


def good(seen: list[Mapping[str, str]]) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.copy())
        payload = await request.json()
        if payload.get("stream"):
            return web.Response(body=recording("openai/stream-text.sse"), content_type="text/event-stream")
        return web.Response(body=recording("openai/completion-text.json"), content_type="application/json")

    return answer


async def test_over_aiohttp_a_gzip_bomb_falls_back_within_bounded_memory() -> None:
    bomb = gzip_bomb(BOMB_MIB)

    async def bad(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/json", "content-encoding": "gzip"})
        await response.prepare(request)
        try:
            for start in range(0, len(bomb), 16384):
                await response.write(bomb[start : start + 16384])
        except ConnectionError:
            pass  # the gateway hung up, as it should
        return response

    seen: list[Mapping[str, str]] = []
    async with (
        loopback({"bad": bad, "backup": good(seen)}) as url,
        Gateway.from_config(live_document(url), environ={}) as gateway,
    ):
        driver, peak = await measured(drive(gateway, json=CHAT))

    answered_by_backup(driver, stream=False)
    assert peak < MEMORY_BOUND
    assert seen[0]["User-Agent"] == f"routemw/{routemw.__version__}"
    assert seen[0]["Accept-Encoding"] == "identity"
    assert seen[0]["X-Request-Id"] == driver.header("x-request-id")


async def test_over_aiohttp_an_endless_sse_line_falls_back_at_the_configured_limit() -> None:
    sent: list[int] = []

    async def bad(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        try:
            await response.write(b"data: ")
            for _ in range(4096):  # up to 256 MiB, never a line ending
                await response.write(b"a" * 65536)
                sent.append(65536)
        except ConnectionError:
            pass
        return response

    async with loopback({"bad": bad, "backup": good([])}) as url:
        document = live_document(url, upstream={"max_event_bytes": 1024 * 1024})
        async with Gateway.from_config(document, environ={}) as gateway:
            driver, peak = await measured(drive(gateway, json=STREAM_CHAT))

    answered_by_backup(driver, stream=True)
    assert peak < MEMORY_BOUND
    assert sum(sent) < 64 * 1024 * 1024  # the gateway stopped reading soon after the limit
