"""What the Redis limit store does beyond the rules it shares with the memory store.

The shared rules run on both stores in tests/limits. Here: one round trip per operation, the
keys (hash tags, expiry), leases that expire unless renewed, calendar periods computed in Lua,
NOSCRIPT, Redis away, and the per-group mode used on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis_server import RedisServer, new_client

from routemw.errors import StateUnavailableError
from routemw.limits import Claim, Quota, Rate, Settlement, Slots
from routemw.limits.periods import period_bounds
from routemw.state import RedisLimits

START = datetime(2026, 9, 14, 12, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Any]:
    client = new_client(redis_url)
    yield client
    await client.aclose()


def every_kind(group: str = "acct:a") -> list[Claim]:
    return [
        Rate(group, "rpm", 10, 1, refundable=False),
        Rate(group, "tpm", 1000, 100),
        Slots(group, 2),
        Quota(group, "budget", 1_000_000, 5000, "month"),
        Quota(group, "tokens", 10_000, 100, "total"),
    ]


async def test_each_operation_is_one_round_trip_over_every_scope(client: Any, redis_prefix: str) -> None:
    store = RedisLimits(client=client, prefix=redis_prefix, timeout=5.0)
    claims = every_kind() + every_kind("model:m")
    commands: list[str] = []
    original = client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        commands.append(args[0])
        return await original(*args, **kwargs)

    client.execute_command = counting
    await client.script_flush()  # the first call meets NOSCRIPT and loads the script: still correct
    admission = await store.admit("lease-1", claims)
    assert admission.admitted
    commands.clear()
    await store.inspect(claims)
    await store.admit("lease-2", claims)
    await store.reconcile(
        "lease-2", [Settlement(c, 10, s.period) for c, s in zip(claims, admission.standings, strict=True)]
    )
    await store.release("lease-1", claims, [s.period for s in admission.standings])
    await store.renew()
    assert commands == ["EVALSHA"] * 4  # renew had no live lease left: no call at all
    await store.aclose()


async def test_keys_carry_the_group_as_hash_tag_and_expire_on_their_own(client: Any, redis_prefix: str) -> None:
    store = RedisLimits(client=client, prefix=redis_prefix, timeout=5.0, lease_time=30.0)
    assert (await store.admit("lease", every_kind())).admitted
    keys = sorted(k.decode() for k in await client.keys(f"{redis_prefix}*"))
    assert keys == [
        f"{redis_prefix}{{acct:a}}:{name}"
        for name in ("budget", "budget:holds", "concurrency", "rpm", "tokens", "tokens:holds", "tpm")
    ]
    ttls = {key.removeprefix(f"{redis_prefix}{{acct:a}}:"): await client.pttl(key) for key in keys}
    assert 5_900 < ttls["rpm"] <= 6_001  # a full bucket again after one request's 6 s
    assert 5_900 < ttls["tpm"] <= 6_001
    assert 29_000 < ttls["concurrency"] <= 30_000  # the lease time
    assert 29_000 < ttls["budget:holds"] <= 30_000 and 29_000 < ttls["tokens:holds"] <= 30_000
    ends = period_bounds("month", time.time())[1]
    assert ends is not None  # the month's ledger lives until the month ends, plus the lease time
    assert ttls["budget"] / 1000 == pytest.approx(ends - time.time() + 30, abs=5)
    assert ttls["tokens"] == -1  # a `total` quota never resets: one key per account
    await store.aclose()


async def test_a_slot_whose_lease_is_not_renewed_frees_itself(client: Any, redis_prefix: str) -> None:
    clock = Clock()
    store = RedisLimits(client=client, prefix=redis_prefix, timeout=5.0, lease_time=10.0, clock=clock)
    slot = [Slots("acct:a", 1)]
    assert (await store.admit("held", slot)).admitted
    clock.now += 9.0
    await store.renew()  # a live request renews: good until 10 s from now (t = 19)
    clock.now += 9.0
    assert not (await store.admit("second", slot)).admitted
    store._live.clear()  # the instance died: nobody renews any more
    clock.now += 0.9
    assert not (await store.admit("second", slot)).admitted
    clock.now += 0.2
    assert (await store.admit("second", slot)).admitted
    await store.release("held", slot, [None])  # the late release of the dead lease frees nothing else
    assert not (await store.admit("third", slot)).admitted
    await store.aclose()


async def test_the_store_renews_its_live_leases_by_itself(client: Any, redis_prefix: str) -> None:
    store = RedisLimits(client=client, prefix=redis_prefix, timeout=5.0, lease_time=0.3)
    slot = [Slots("acct:a", 1)]
    assert (await store.admit("stream", slot)).admitted
    await asyncio.sleep(0.9)  # three lease times: only renewal keeps the slot
    assert not (await store.admit("other", slot)).admitted
    await store.aclose()  # renewal stops, as when the instance is killed
    deadline = asyncio.get_running_loop().time() + 5.0
    while not (await store.admit("other", slot)).admitted:
        assert asyncio.get_running_loop().time() < deadline, "the slot never freed itself"
        await asyncio.sleep(0.05)
    await store.release("stream", slot, [None])  # the renewer starts again for "other", then stops
    await store.release("other", slot, [None])
    assert store._renewer is None


async def test_an_expired_hold_is_charged_in_full_and_its_late_settlement_changes_nothing(
    client: Any, redis_prefix: str
) -> None:
    clock = Clock()
    store = RedisLimits(client=client, prefix=redis_prefix, timeout=5.0, lease_time=10.0, clock=clock)
    budget = Quota("acct:a", "budget", 1000, 300, "month")
    admission = await store.admit("dead", [budget])
    store._live.clear()
    clock.now += 11.0
    (standing,) = await store.inspect([budget])
    assert (standing.used, standing.remaining) == (300, 700)
    await store.reconcile("dead", [Settlement(budget, 50, admission.standings[0].period)])
    (standing,) = await store.inspect([budget])
    assert (standing.used, standing.remaining) == (300, 700)
    await store.aclose()


def _moments() -> list[datetime]:
    moments: list[datetime] = []
    for year in range(2019, 2034):  # ISO years with 53 weeks (2020, 2026, 2032), leap days, year ends
        for month, day in ((1, 1), (2, 28), (2, 29), (3, 1), (12, 28), (12, 31)):
            try:
                base = datetime(year, month, day, tzinfo=UTC)
            except ValueError:
                continue
            moments += [base, base + timedelta(hours=23, minutes=59, seconds=59)]
    return moments


async def test_calendar_periods_computed_in_lua_match_python(client: Any, redis_prefix: str) -> None:
    clock = Clock()
    store = RedisLimits(client=client, prefix=redis_prefix, timeout=5.0, clock=clock)
    claims: list[Claim] = [Quota("acct:a", name, 10, 0, name) for name in ("day", "week", "month", "total")]  # type: ignore[arg-type]
    for moment in _moments():
        clock.now = moment.timestamp()
        standings = await store.inspect(claims)
        for claim, standing in zip(claims, standings, strict=True):
            assert isinstance(claim, Quota)
            ident, ends = period_bounds(claim.period, clock.now)
            assert standing.period == ident, (moment, claim.period)
            expected = None if ends is None else ends - clock.now
            assert standing.reset_after == (None if expected is None else pytest.approx(expected, abs=1e-5))
    await store.aclose()


# -- Redis away ------------------------------------------------------------------------------------


async def test_redis_away_counts_locally_and_settles_each_lease_where_it_was_admitted(
    own_redis: RedisServer, redis_prefix: str
) -> None:
    client = new_client(own_redis.url)
    store = RedisLimits(client=client, prefix=redis_prefix, timeout=1.0)
    store.guard.retry_interval = 0.0
    slot = [Slots("acct:a", 1)]
    assert (await store.admit("before", slot)).admitted
    await store.release("before", slot, [None])
    own_redis.stop()
    assert (await store.admit("during", slot)).admitted  # on_error: open, counted in this process
    assert not (await store.admit("during-2", slot)).admitted  # ...and counted there
    own_redis.start()
    assert (await store.admit("after", slot)).admitted  # Redis is back, and never saw "during"
    await store.release("during", slot, [None])  # released in the local store that admitted it
    assert not (await store.admit("after-2", slot)).admitted  # Redis still holds "after"
    assert (await store.local.inspect(slot))[0].remaining == 1
    await store.aclose()
    await client.aclose()


async def test_redis_away_with_on_error_closed_refuses(own_redis: RedisServer, redis_prefix: str) -> None:
    client = new_client(own_redis.url)
    store = RedisLimits(client=client, prefix=redis_prefix, timeout=1.0, on_error="closed")
    own_redis.stop()
    with pytest.raises(StateUnavailableError):
        await store.admit("x", [Slots("acct:a", 1)])
    await client.aclose()


# -- Redis Cluster: one script per group -----------------------------------------------------------


async def test_per_group_mode_rolls_back_the_groups_applied_before_a_refusal(client: Any, redis_prefix: str) -> None:
    clock = Clock()
    store = RedisLimits(client=client, prefix=redis_prefix, timeout=5.0, cluster=True, clock=clock)
    commands: list[str] = []
    original = client.execute_command

    async def counting(*args: Any, **kwargs: Any) -> Any:
        commands.append(args[0])
        return await original(*args, **kwargs)

    client.execute_command = counting
    key, model = every_kind(), [Rate("model:m", "rpm", 1, 1, refundable=False)]
    assert (await store.admit("first", key + model)).admitted
    assert len(commands) == 2  # one script per group
    refused = await store.admit("second", key + model)
    assert not refused.admitted
    assert [s.ok for s in refused.standings] == [True] * 5 + [False]
    standings = await store.inspect(key)
    # Only "first" counts: the key's reservation for "second" was rolled back, its rpm included.
    assert [s.remaining for s in standings] == [9, 900, 1, 1_000_000 - 5000, 10_000 - 100]
    await store.aclose()
