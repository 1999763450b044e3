"""Cooldowns shared through Redis between gateways, and what happens while Redis is away or slow.

Each gateway opens its own client (as two processes would); the Redis is real (`redis_server`).
The tests that stop or pause Redis get one of their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from fakes import API_KEY, BACKUP_KEY, FakeOpenAI, answer_error, drive, route_hosts
from redis_server import RedisServer, new_client

from routemw import Gateway
from routemw.state import RedisHealth

KEY = "up/gpt-4o"
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
AWAY = "Redis is not answering"
BACK = "Redis answers again"


def document(url: str | None, prefix: str, **state: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "providers": {
            "up": {"type": "openai", "base_url": "https://upstream.test/v1", "api_key": API_KEY},
            "backup": {"type": "openai", "base_url": "https://backup.test/v1", "api_key": BACKUP_KEY},
        },
        "models": {
            "gpt-4o": {
                "routes": [{"provider": "up", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o-mini"}]
            }
        },
        "retry": {"attempts": 1, "cooldown_after": 1, "cooldown": 60},
    }
    if url is not None:
        doc["state"] = {"redis": {"url": url, "prefix": prefix}, **state}
    return doc


@pytest.fixture
async def gateways(upstream: FakeOpenAI, backup: FakeOpenAI) -> AsyncIterator[Callable[..., Any]]:
    """Builds gateways in front of the same two fake upstreams; closes them (and their clients) after."""
    async with AsyncExitStack() as stack:

        async def build(doc: dict[str, Any], **kwargs: Any) -> Gateway:
            transport = httpx.MockTransport(route_hosts({"upstream.test": upstream, "backup.test": backup}))
            gateway = Gateway.from_config(doc, environ={}, transport=transport, **kwargs)
            return await stack.enter_async_context(gateway)

        yield build


def count(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


async def test_a_cooldown_triggered_through_one_gateway_is_honoured_by_the_other(
    gateways: Callable[..., Any], upstream: FakeOpenAI, backup: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    first = await gateways(document(redis_url, redis_prefix))
    second = await gateways(document(redis_url, redis_prefix))
    assert first.redis is not second.redis  # two clients, as two processes would have
    upstream.queue(answer_error(500))

    failed_over = await drive(first, json=CHAT)
    assert failed_over.header("x-routemw-provider") == "backup"
    assert len(upstream.requests) == 1

    driver = await drive(second, json=CHAT)

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "backup"
    assert len(upstream.requests) == 1  # the second gateway never called the cooling target
    assert len(backup.requests) == 2


async def test_gateways_without_shared_state_each_keep_their_own_cooldowns(
    gateways: Callable[..., Any], upstream: FakeOpenAI
) -> None:
    # The contrast to the test above: without `state.redis` the second gateway knows nothing.
    first = await gateways(document(None, ""))
    second = await gateways(document(None, ""))
    upstream.queue(answer_error(500))
    await drive(first, json=CHAT)
    driver = await drive(second, json=CHAT)
    assert driver.header("x-routemw-provider") == "up"
    assert len(upstream.requests) == 2


async def test_a_host_shares_its_own_client_through_redis_health(
    gateways: Callable[..., Any], upstream: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    client = new_client(redis_url)
    try:
        health = RedisHealth(client=client, prefix=redis_prefix, threshold=1, cooldown=60.0)
        hosted = await gateways(document(None, ""), health=health)
        configured = await gateways(document(redis_url, redis_prefix))
        assert hosted.health is health and hosted.redis is None
        upstream.queue(answer_error(500))

        await drive(hosted, json=CHAT)
        assert await client.exists(f"{redis_prefix}health:{{{KEY}}}") == 1
        driver = await drive(configured, json=CHAT)

        assert driver.header("x-routemw-provider") == "backup"
        assert len(upstream.requests) == 1
    finally:
        await client.aclose()


async def test_the_health_keys_expire_on_their_own(
    gateways: Callable[..., Any], upstream: FakeOpenAI, redis_url: str, redis_prefix: str
) -> None:
    gateway = await gateways(document(redis_url, redis_prefix))
    upstream.queue(answer_error(500))
    await drive(gateway, json=CHAT)
    client = new_client(redis_url)
    try:
        ttl = await client.pttl(f"{redis_prefix}health:{{{KEY}}}")
    finally:
        await client.aclose()
    # cooldown 60 s, then cooldown_max (300 s) + the probe timeout (60 s) of memory
    assert 400_000 < ttl <= 420_000


# -- Redis away ----------------------------------------------------------------------------------


async def test_with_on_error_open_redis_stopped_mid_run_loses_no_request(
    gateways: Callable[..., Any],
    upstream: FakeOpenAI,
    backup: FakeOpenAI,
    own_redis: RedisServer,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="routemw")
    gateway = await gateways(document(own_redis.url, redis_prefix, on_error="open", timeout=1.0))
    guard = gateway.state_guard
    assert guard is not None
    guard.retry_interval = 0.0  # try Redis on every operation, so its return is seen at once
    assert (await drive(gateway, json=CHAT)).status == 200

    own_redis.stop()
    upstream.queue(answer_error(500))
    answers = [await drive(gateway, json=CHAT) for _ in range(5)]

    assert [a.status for a in answers] == [200] * 5
    # Counting went on in memory: the failure cooled the target, and the next four skipped it.
    assert [a.header("x-routemw-provider") for a in answers] == ["backup"] * 5
    assert len(upstream.requests) == 2
    assert count(caplog, AWAY) == 1
    assert (guard.available, guard.outages) == (False, 1)
    assert guard.failures >= 5 and guard.local >= 5

    own_redis.start()
    after = [await drive(gateway, json=CHAT) for _ in range(3)]

    assert [a.status for a in after] == [200] * 3
    assert count(caplog, BACK) == 1
    assert count(caplog, AWAY) == 1
    assert guard.available
    # Back on Redis, which never heard of the cooldown counted while it was away.
    assert after[0].header("x-routemw-provider") == "up"


async def test_with_on_error_closed_redis_away_is_a_503_with_retry_after(
    gateways: Callable[..., Any], upstream: FakeOpenAI, own_redis: RedisServer, redis_prefix: str
) -> None:
    gateway = await gateways(document(own_redis.url, redis_prefix, on_error="closed", timeout=1.0))
    assert (await drive(gateway, json=CHAT)).status == 200
    own_redis.stop()

    driver = await drive(gateway, json=CHAT)

    assert driver.status == 503
    assert driver.json()["error"] == {
        "message": "The gateway's shared state store is not answering; try again shortly.",
        "type": "server_error",
        "param": None,
        "code": "service_unavailable",
    }
    assert driver.header("retry-after") == "1"
    assert len(upstream.requests) == 1  # the refused request reached no upstream


async def test_a_slow_redis_does_not_hold_a_request_past_the_store_timeout(
    gateways: Callable[..., Any], own_redis: RedisServer, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await gateways(document(own_redis.url, redis_prefix, timeout=0.2))
    admin = new_client(own_redis.url)
    try:
        assert (await drive(gateway, json=CHAT)).status == 200
        # Redis holds every script (they may write) for a minute: far past any wait of the test's.
        await admin.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        driver = await drive(gateway, json=CHAT, seconds=5.0)
        assert driver.status == 200
        assert gateway.state_guard is not None and gateway.state_guard.failures == 1
        assert count(caplog, "Redis is not answering (timed out)") == 1

        await admin.execute_command("CLIENT", "UNPAUSE")
        later = time.monotonic() + gateway.state_guard.retry_interval
        gateway.state_guard.clock = lambda: later  # the next operation tries Redis again
        # The timed-out reply must not be read as the next command's: the connection was dropped.
        assert await gateway.redis.echo("after the pause") == b"after the pause"
        assert await gateway.health.check(KEY) is None
        assert gateway.state_guard.available
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
