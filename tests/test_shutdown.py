"""`Gateway.drain()` at the ASGI message level: what each request in flight gets when the server stops.

The process-level test (a real `routemw serve`, SIGTERM) is `test_serve_shutdown.py`; this one
checks every state a request can be in at the deadline, and the interrupt's own rules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import anyio
import orjson
import pytest
from fakes import AsgiDriver, FakeOpenAI, answer_sse, drive, recording, stall, wait_for
from test_app import STREAM_CHAT, build, error_of, start, upstream_payloads

from routemw import ConfigError
from routemw.config import load_config
from routemw.errors import ServerShuttingDownError
from routemw.shutdown import Interrupt

CHAT: dict[str, Any] = {k: v for k, v in STREAM_CHAT.items() if k != "stream"}
SSE = recording("openai/stream-text.sse")


@pytest.fixture(autouse=True)
def nothing_logged_as_a_failure(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """An interrupted request is an expected end: no error record, no traceback."""
    caplog.set_level(logging.DEBUG)
    yield
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


def shutting_down(payload: bytes) -> bool:
    error = orjson.loads(payload).get("error")
    return isinstance(error, dict) and error.get("code") == "server_shutting_down"


async def test_a_stream_still_open_at_the_deadline_ends_with_the_in_band_error(upstream: FakeOpenAI) -> None:
    upstream.queue(answer_sse(SSE, stall_after=3))
    gateway = build(upstream)
    driver = AsgiDriver(gateway, body=orjson.dumps(STREAM_CHAT))
    async with anyio.create_task_group() as tg:
        await start(driver, tg)
        await wait_for(lambda: upstream.streams[0].stalled if upstream.streams else False)
        with anyio.fail_after(5):
            await gateway.drain(0.05)

    assert driver.status == 200
    *content, last = driver.payloads()
    assert content == upstream_payloads(SSE)[:3]
    assert shutting_down(last)
    assert orjson.loads(last)["error"]["type"] == "server_error"
    assert driver.complete  # ended by the gateway, not cut
    (stream,) = upstream.streams
    assert stream.cancelled and stream.closed  # the upstream request was let go


async def test_a_request_still_waiting_for_its_upstream_gets_a_503(upstream: FakeOpenAI) -> None:
    upstream.queue(stall())
    gateway = build(upstream)
    driver = AsgiDriver(gateway, body=orjson.dumps(CHAT))
    async with anyio.create_task_group() as tg:
        await start(driver, tg)
        await wait_for(lambda: bool(upstream.requests) and upstream.requests[0].stalled)
        with anyio.fail_after(5):
            await gateway.drain(0.05)

    assert driver.status == 503
    assert error_of(driver)["code"] == "server_shutting_down"
    assert driver.header("x-request-id") is not None
    assert upstream.requests[0].cancelled


async def test_a_stream_waiting_for_its_first_event_gets_a_503(upstream: FakeOpenAI) -> None:
    upstream.queue(stall())
    gateway = build(upstream)
    driver = AsgiDriver(gateway, body=orjson.dumps(STREAM_CHAT))
    async with anyio.create_task_group() as tg:
        await start(driver, tg)
        await wait_for(lambda: bool(upstream.requests) and upstream.requests[0].stalled)
        with anyio.fail_after(5):
            await gateway.drain(0.05)

    assert driver.status == 503  # not committed yet: a real status, not an event
    assert error_of(driver)["code"] == "server_shutting_down"


class HalfUpload(AsgiDriver):
    """A client that sends the first piece of its body and then nothing more."""

    async def _receive(self) -> dict[str, Any]:
        if self.receives == 0:
            return await super()._receive()
        self.receives += 1
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def test_a_request_still_sending_its_body_gets_a_503(upstream: FakeOpenAI) -> None:
    gateway = build(upstream)
    driver = HalfUpload(gateway, body=[b'{"model": "gpt-4o", ', b'"messages": []}'])
    async with anyio.create_task_group() as tg:
        await start(driver, tg)
        await wait_for(lambda: driver.receives == 2)
        with anyio.fail_after(5):
            await gateway.drain(0.05)

    assert driver.status == 503
    assert error_of(driver)["code"] == "server_shutting_down"
    assert upstream.requests == []


async def test_requests_that_finish_within_the_grace_are_left_alone(upstream: FakeOpenAI) -> None:
    upstream.queue(answer_sse(SSE, pause_after={3: 0.2}))
    gateway = build(upstream)
    driver = AsgiDriver(gateway, body=orjson.dumps(STREAM_CHAT))
    async with anyio.create_task_group() as tg:
        await start(driver, tg)
        await wait_for(lambda: len(driver.payloads()) >= 3)
        with anyio.fail_after(5):  # far less than the grace: the drain ends when the stream does
            await gateway.drain(60)
        assert driver.complete

    assert driver.payloads() == [*upstream_payloads(SSE), b"[DONE]"]


async def test_requests_after_the_drain_began_are_refused(upstream: FakeOpenAI) -> None:
    gateway = build(upstream)
    with anyio.fail_after(5):
        await gateway.drain(60)  # nothing in flight: returns at once

    chat = await drive(gateway, json=CHAT)
    models = await drive(gateway, method="GET", path="/v1/models")

    for driver in (chat, models):
        assert driver.status == 503
        assert error_of(driver)["code"] == "server_shutting_down"
    assert upstream.requests == []


# -- the interrupt ---------------------------------------------------------------------------


@pytest.mark.parametrize("on_asyncio", [True, False], ids=["asyncio-task", "anyio-scope"])
async def test_an_interrupt_ends_its_region_with_the_shutdown_error(on_asyncio: bool) -> None:
    interrupts: list[Interrupt] = []
    outcome: list[str] = []

    async def request() -> None:
        interrupt = Interrupt(asyncio.current_task() if on_asyncio else None)
        interrupts.append(interrupt)
        try:
            async with interrupt:
                outcome.append("waiting")
                await anyio.sleep_forever()
        except ServerShuttingDownError:
            outcome.append("interrupted")
        await asyncio.sleep(0)  # the task goes on normally: nothing of the cancellation is left over
        with pytest.raises(ServerShuttingDownError):
            async with interrupt:  # a region entered after the interrupt ends at once
                outcome.append("entered")
        outcome.append("done")

    async with anyio.create_task_group() as tg:
        tg.start_soon(request)
        await wait_for(lambda: outcome == ["waiting"])
        interrupts[0].fire()

    assert outcome == ["waiting", "interrupted", "done"]


async def test_a_cancellation_from_outside_is_not_taken_for_an_interrupt() -> None:
    interrupts: list[Interrupt] = []

    async def request() -> None:
        interrupt = Interrupt(asyncio.current_task())
        interrupts.append(interrupt)
        async with interrupt:
            await asyncio.sleep(3600)

    task = asyncio.get_running_loop().create_task(request())
    await wait_for(lambda: bool(interrupts))
    interrupts[0].fire()
    task.cancel()  # the server cancels it too (uvicorn does so past its own deadline)
    with anyio.fail_after(5), pytest.raises(asyncio.CancelledError):
        await task  # cancelled, as the server asked, not turned into a shutdown error

    assert task.cancelled()


def test_shutdown_timeout_config() -> None:
    serving = {"models": {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}}}
    assert load_config(serving).server.shutdown_timeout == 25.0
    assert load_config({**serving, "server": {"shutdown_timeout": 0}}).server.shutdown_timeout == 0.0
    with pytest.raises(ConfigError) as caught:
        load_config({**serving, "server": {"shutdown_timeout": -1}})
    assert caught.value.problems == ("server.shutdown_timeout: must be at least 0, got -1",)


async def test_drain_defaults_to_the_configured_grace(upstream: FakeOpenAI) -> None:
    upstream.queue(stall())
    gateway = build(upstream, server={"shutdown_timeout": 0.05})
    driver = AsgiDriver(gateway, body=orjson.dumps(CHAT))
    async with anyio.create_task_group() as tg:
        await start(driver, tg)
        await wait_for(lambda: bool(upstream.requests) and upstream.requests[0].stalled)
        with anyio.fail_after(5):  # the built-in default would wait 25 s
            await gateway.drain()

    assert driver.status == 503
