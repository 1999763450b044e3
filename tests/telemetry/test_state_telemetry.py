"""Shared state (`state.redis`) as telemetry sees it: a `/readyz` check that asks Redis, and
`routemw_state_errors_total` counting the Redis operations the guard saw fail."""

from __future__ import annotations

from fakes import FakeOpenAI, drive
from redis_server import RedisServer
from telemetry_fixtures import AUTH, CHAT, build, document
from test_metrics import parse, value


async def test_readyz_asks_redis_and_the_state_errors_counter_follows_the_guard(
    own_redis: RedisServer, redis_prefix: str
) -> None:
    state = {"redis": {"url": own_redis.url, "prefix": redis_prefix}, "on_error": "open", "timeout": 1.0}
    doc = document(extra={"state": state, "metrics": {"prometheus": True}})
    async with build(FakeOpenAI(), doc=doc) as gateway:
        guard = gateway.state_guard
        assert guard is not None
        guard.retry_interval = 0.0  # every operation tries Redis, so each one fails while it is away
        ready = await drive(gateway, method="GET", path="/readyz")
        assert (ready.status, ready.json()["checks"]["redis"]) == (200, "ok")
        assert (await drive(gateway, json=CHAT, headers=AUTH)).status == 200

        own_redis.stop()
        assert [(await drive(gateway, json=CHAT, headers=AUTH)).status for _ in range(2)] == [200, 200]  # open
        not_ready = await drive(gateway, method="GET", path="/readyz")
        scraped = parse((await drive(gateway, method="GET", path="/metrics")).body.decode())

    assert not_ready.status == 503
    assert not_ready.json()["reason"] == "redis: Redis is not answering"
    assert guard.failures >= 2
    assert value(scraped, "routemw_state_errors_total") == guard.failures


async def test_without_state_redis_there_is_no_redis_check() -> None:
    ready = await drive(build(FakeOpenAI()), method="GET", path="/readyz")
    assert ready.status == 200 and "redis" not in ready.json()["checks"]
