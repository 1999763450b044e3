"""Cooldowns and half-open probes: each store on a fake clock, then through the gateway.

The store-level tests run against `MemoryHealth` and `RedisHealth` (a real Redis, see
`redis_server`) alike, so the two cannot drift. Each is driven with a clock the test moves
(Redis's own plus an offset), so every period is asserted to within Redis's few milliseconds of
real time and no test waits. The gateway tests check what a cooling target means for a request: it is skipped
without being called (and the skip is recorded on the `Call`), unless every target is cooling,
in which case the one that recovers soonest is still tried.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import anyio
import httpx
import pytest
from fakes import API_KEY, BACKUP_KEY, FakeOpenAI, answer_error, drive, route_hosts
from redis_server import new_client

from routemw import Call, Gateway, Handler, Reply
from routemw.routing.health import HealthStore, MemoryHealth
from routemw.state import RedisHealth

KEY = "up/gpt-4o"
OTHER = "backup/gpt-4o-mini"
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


OPTIONS: dict[str, Any] = {
    "threshold": 3,
    "cooldown": 5.0,
    "max_cooldown": 40.0,
    "long_retry_after": 30.0,
    "probe_timeout": 60.0,
}

MakeStore = Callable[..., HealthStore]


def near(seconds: float) -> Any:
    """A wait as a store reports it. Redis's clock keeps running between two calls (by far less
    than this tolerance), and the memory store's does not; both must land here."""
    return pytest.approx(seconds, abs=0.25)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[MakeStore]:
    """Builds the store under test with `OPTIONS` overridden by keyword; time moves with `clock`.

    Redis reads its own clock; `time_offset` adds how far the test moved `clock`, so no test waits.
    """
    if request.param == "memory":
        yield lambda **kwargs: MemoryHealth(clock=clock, **{**OPTIONS, **kwargs})
        return
    client = new_client(request.getfixturevalue("redis_url"))
    prefix = request.getfixturevalue("redis_prefix")
    start = clock.now
    try:
        yield lambda **kwargs: RedisHealth(
            client=client, prefix=prefix, time_offset=lambda: clock.now - start, **{**OPTIONS, **kwargs}
        )
    finally:
        await client.aclose()


async def fail(store: HealthStore, key: str, times: int, *, retry_after: float | None = None) -> None:
    for _ in range(times):
        await store.failure(key, retry_after=retry_after)


# -- consecutive failures ------------------------------------------------------------------------


async def test_a_target_never_seen_may_be_tried(store: MakeStore) -> None:
    assert await store().check(KEY) is None


async def test_fewer_than_threshold_failures_do_not_cool(store: MakeStore, clock: FakeClock) -> None:
    health = store(threshold=3)
    await fail(health, KEY, 2)
    assert await health.check(KEY) is None


async def test_threshold_consecutive_failures_cool_for_the_configured_period(
    store: MakeStore, clock: FakeClock
) -> None:
    health = store(threshold=3, cooldown=5.0)
    await fail(health, KEY, 3)

    assert await health.check(KEY) == near(5.0)
    clock.advance(4.9)
    assert await health.check(KEY) == near(0.1)  # still cooling, same end


async def test_failures_of_one_target_do_not_cool_another(store: MakeStore, clock: FakeClock) -> None:
    health = store(threshold=2)
    await fail(health, KEY, 2)

    assert await health.check(KEY) is not None
    assert await health.check(OTHER) is None


async def test_a_success_resets_the_count_of_consecutive_failures(store: MakeStore, clock: FakeClock) -> None:
    health = store(threshold=3)
    await fail(health, KEY, 2)
    await health.success(KEY)
    await fail(health, KEY, 2)
    assert await health.check(KEY) is None  # 2 + 2 failures, but never 3 in a row

    await health.failure(KEY)
    assert await health.check(KEY) is not None  # now 3 in a row


# -- repeated cooldowns --------------------------------------------------------------------------


async def _probe_and_fail(health: HealthStore, clock: FakeClock) -> float:
    """Wait out the cooldown, take the probe, fail it; the new cooldown's length."""
    wait = await health.check(KEY)
    assert wait is not None
    clock.advance(wait)
    assert await health.check(KEY) is None  # this caller is the probe
    await health.failure(KEY)
    reopened = await health.check(KEY)
    assert reopened is not None
    return reopened


async def test_repeated_cooldowns_double_up_to_the_maximum(store: MakeStore, clock: FakeClock) -> None:
    health = store(threshold=2, cooldown=5.0, max_cooldown=40.0)
    await fail(health, KEY, 2)
    first = await health.check(KEY)
    assert first == near(5.0)

    periods = [await _probe_and_fail(health, clock) for _ in range(5)]
    assert periods == pytest.approx([10.0, 20.0, 40.0, 40.0, 40.0], abs=0.25)


async def test_a_success_after_cooldowns_starts_the_doubling_over(store: MakeStore, clock: FakeClock) -> None:
    health = store(threshold=1, cooldown=5.0)
    await health.failure(KEY)
    assert await _probe_and_fail(health, clock) == near(10.0)
    clock.advance(10.0)
    assert await health.check(KEY) is None  # probe
    await health.success(KEY)

    await health.failure(KEY)
    assert await health.check(KEY) == near(5.0)


# -- long Retry-After ----------------------------------------------------------------------------


async def test_a_429_with_a_long_retry_after_cools_at_once_for_at_least_that_long(
    store: MakeStore, clock: FakeClock
) -> None:
    health = store(threshold=3, cooldown=5.0, long_retry_after=30.0, max_cooldown=300.0)
    await health.failure(KEY, retry_after=120.0)

    until = await health.check(KEY)
    assert until is not None
    assert until >= 120.0 - 0.25
    clock.advance(119.0)
    assert await health.check(KEY) is not None


async def test_a_retry_after_longer_than_the_longest_cooldown_is_capped_by_it(store: MakeStore) -> None:
    # The operator's cooldown_max bounds how long one hint can bench a target; the probe after
    # it asks the upstream again.
    health = store(long_retry_after=30.0, max_cooldown=40.0)
    await health.failure(KEY, retry_after=86_400.0)
    until = await health.check(KEY)
    assert until is not None and until == near(40.0)


async def test_failures_in_flight_while_cooling_do_not_escalate_the_cooldown(
    store: MakeStore, clock: FakeClock
) -> None:
    health = store(threshold=3, cooldown=5.0, max_cooldown=300.0)
    for _ in range(30):  # thirty requests that failed together
        await health.failure(KEY)
    until = await health.check(KEY)
    assert until is not None and until == near(5.0)


async def test_a_retry_after_at_the_long_threshold_cools_at_once(store: MakeStore, clock: FakeClock) -> None:
    health = store(threshold=3, cooldown=5.0, long_retry_after=30.0)
    await health.failure(KEY, retry_after=30.0)
    until = await health.check(KEY)
    assert until is not None and until >= 30.0 - 0.25


async def test_a_short_retry_after_counts_as_one_ordinary_failure(store: MakeStore, clock: FakeClock) -> None:
    health = store(threshold=3, long_retry_after=30.0)
    await health.failure(KEY, retry_after=2.0)
    assert await health.check(KEY) is None
    await fail(health, KEY, 2, retry_after=2.0)
    assert await health.check(KEY) == near(5.0)


# -- the half-open probe -------------------------------------------------------------------------


async def test_after_the_cooldown_exactly_one_caller_gets_the_probe(store: MakeStore, clock: FakeClock) -> None:
    health = store(threshold=1, cooldown=5.0, probe_timeout=60.0)
    await health.failure(KEY)
    clock.advance(5.0)

    answers: list[float | None] = []

    async def checker() -> None:
        answers.append(await health.check(KEY))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(checker)

    assert answers.count(None) == 1
    waits = [a for a in answers if a is not None]
    assert len(waits) == 19
    assert all(w > 0 for w in waits)  # told to wait


async def test_the_probes_success_closes_the_circuit(store: MakeStore, clock: FakeClock) -> None:
    health = store(threshold=1)
    await health.failure(KEY)
    clock.advance(5.0)
    assert await health.check(KEY) is None
    assert await health.check(KEY) is not None  # probe in flight

    await health.success(KEY)
    assert [await health.check(KEY) for _ in range(3)] == [None, None, None]


async def test_the_probes_failure_reopens_for_longer(store: MakeStore, clock: FakeClock) -> None:
    health = store(threshold=1, cooldown=5.0)
    await health.failure(KEY)
    clock.advance(5.0)
    assert await health.check(KEY) is None

    await health.failure(KEY)  # one failure suffices when half-open, whatever the threshold
    until = await health.check(KEY)
    assert until == near(10.0)


async def test_a_half_open_target_reopens_on_one_failure_even_with_a_high_threshold(
    store: MakeStore, clock: FakeClock
) -> None:
    health = store(threshold=5, cooldown=5.0)
    await fail(health, KEY, 5)
    clock.advance(5.0)
    assert await health.check(KEY) is None
    await health.failure(KEY)
    assert await health.check(KEY) == near(10.0)


async def test_a_probe_that_never_reports_back_frees_the_slot_after_probe_timeout(
    store: MakeStore, clock: FakeClock
) -> None:
    health = store(threshold=1, cooldown=5.0, probe_timeout=60.0)
    await health.failure(KEY)
    clock.advance(5.0)
    assert await health.check(KEY) is None  # the probe, which then vanishes

    clock.advance(59.0)
    assert await health.check(KEY) == near(1.0)  # still its slot
    clock.advance(1.0)
    assert await health.check(KEY) is None  # a new probe
    assert await health.check(KEY) is not None  # and only one


# -- through the gateway -------------------------------------------------------------------------

UP_URL = "https://upstream.test/v1"
BACKUP_URL = "https://backup.test/v1"


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    assert API_KEY not in caplog.text
    assert BACKUP_KEY not in caplog.text


class Observer:
    """A middleware in front of the defaults that keeps each finished `Call`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def __call__(self, call: Call, next: Handler) -> Reply:
        self.calls.append(call)
        return await next(call)


def gateway(
    upstream: FakeOpenAI,
    backup: FakeOpenAI,
    *,
    retry: Mapping[str, Any],
    observer: Observer,
    health: HealthStore | None = None,
) -> Gateway:
    document: dict[str, Any] = {
        "providers": {
            "up": {"type": "openai", "base_url": UP_URL, "api_key": API_KEY},
            "backup": {"type": "openai", "base_url": BACKUP_URL, "api_key": BACKUP_KEY},
        },
        "models": {
            "gpt-4o": {
                "routes": [{"provider": "up", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o-mini"}]
            }
        },
        "retry": dict(retry),
    }
    transport = httpx.MockTransport(route_hosts({"upstream.test": upstream, "backup.test": backup}))
    return Gateway.from_config(document, environ={}, transport=transport, middleware=[observer], health=health)


def skipped(call: Call) -> list[tuple[str, str]]:
    return [(f"{target.provider.name}/{target.model}", reason) for target, reason in call.skipped]


async def test_after_cooldown_after_failing_requests_the_cooling_target_is_skipped_without_a_call(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(answer_error(500), answer_error(503))
    observer = Observer()
    app = gateway(upstream, backup, retry={"attempts": 1, "cooldown_after": 2, "cooldown": 30}, observer=observer)

    first = await drive(app, json=CHAT)
    second = await drive(app, json=CHAT)
    assert (first.status, second.status) == (200, 200)
    assert [c.attempts[0].status for c in observer.calls] == [500, 503]
    assert [skipped(c) for c in observer.calls] == [[], []]

    third = await drive(app, json=CHAT)

    assert third.status == 200
    assert len(upstream.requests) == 2  # the third request never reached it
    assert len(backup.requests) == 3
    assert third.header("x-routemw-provider") == "backup"
    assert third.header("x-routemw-attempts") == "1"
    call = observer.calls[2]
    assert [(a.provider, a.status) for a in call.attempts] == [("backup", 200)]
    ((name, reason),) = skipped(call)
    assert name == KEY
    assert reason.startswith("cooling down for ")


async def test_one_failing_request_below_the_threshold_does_not_skip(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_error(500))
    observer = Observer()
    app = gateway(upstream, backup, retry={"attempts": 1, "cooldown_after": 2}, observer=observer)

    await drive(app, json=CHAT)
    driver = await drive(app, json=CHAT)

    assert driver.header("x-routemw-provider") == "up"  # failed once, then answered
    assert len(upstream.requests) == 2
    assert skipped(observer.calls[1]) == []


async def test_after_the_cooldown_one_request_probes_and_its_success_closes_it(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    clock = FakeClock()
    store = MemoryHealth(threshold=1, cooldown=5.0, clock=clock)
    upstream.queue(answer_error(500))
    observer = Observer()
    app = gateway(upstream, backup, retry={"attempts": 1}, observer=observer, health=store)

    assert (await drive(app, json=CHAT)).header("x-routemw-provider") == "backup"  # up fails, cools
    assert (await drive(app, json=CHAT)).header("x-routemw-provider") == "backup"  # up skipped
    assert len(upstream.requests) == 1

    clock.advance(5.0)
    probe = await drive(app, json=CHAT)
    assert probe.header("x-routemw-provider") == "up"
    assert len(upstream.requests) == 2
    assert await store.check(KEY) is None  # closed: no probe held
    assert await store.check(KEY) is None


async def test_a_failed_probe_through_the_gateway_reopens_for_twice_as_long(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    clock = FakeClock()
    store = MemoryHealth(threshold=1, cooldown=5.0, clock=clock)
    upstream.queue(answer_error(500), answer_error(502))
    observer = Observer()
    app = gateway(upstream, backup, retry={"attempts": 1}, observer=observer, health=store)

    await drive(app, json=CHAT)
    clock.advance(5.0)
    driver = await drive(app, json=CHAT)

    assert driver.header("x-routemw-provider") == "backup"
    assert [r.response_status for r in upstream.requests] == [500, 502]
    assert await store.check(KEY) == pytest.approx(10.0)


async def test_when_every_target_is_cooling_the_one_that_recovers_soonest_is_still_tried(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    clock = FakeClock()
    store = MemoryHealth(threshold=1, cooldown=5.0, long_retry_after=30.0, clock=clock)
    # The first route asks for 100 s, the second fails once: both cool, the second for 5 s only.
    upstream.queue(answer_error(429, code="rate_limit_exceeded", headers={"retry-after": "100"}))
    backup.queue(answer_error(500))
    observer = Observer()
    app = gateway(upstream, backup, retry={"attempts": 1}, observer=observer, health=store)

    failed = await drive(app, json=CHAT)
    assert failed.status == 502
    assert await store.check(KEY) is not None
    assert await store.check(OTHER) is not None

    clock.advance(1.0)  # both still cooling
    driver = await drive(app, json=CHAT)

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "backup"
    assert len(upstream.requests) == 1  # not tried again
    assert len(backup.requests) == 2
    call = observer.calls[1]
    assert {name for name, _ in skipped(call)} == {KEY, OTHER}  # both recorded as cooling
    assert [(a.provider, a.status) for a in call.attempts] == [("backup", 200)]


async def test_when_every_target_is_cooling_the_soonest_is_tried_even_if_it_is_listed_first(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    clock = FakeClock()
    store = MemoryHealth(threshold=1, cooldown=5.0, clock=clock)
    await store.failure(OTHER, retry_after=200.0)
    await store.failure(KEY)
    observer = Observer()
    app = gateway(upstream, backup, retry={"attempts": 1}, observer=observer, health=store)

    driver = await drive(app, json=CHAT)

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "up"
    assert len(upstream.requests) == 1
    assert backup.requests == []


async def test_a_request_that_never_reaches_a_half_open_target_does_not_keep_its_probe_slot(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    clock = FakeClock()
    store = MemoryHealth(threshold=1, cooldown=5.0, probe_timeout=60.0, clock=clock)
    await store.failure(OTHER)  # the backup cooled down for 5 s
    clock.advance(6.0)  # ... and recovered
    observer = Observer()
    app = gateway(upstream, backup, retry={"attempts": 1}, observer=observer, health=store)

    assert (await drive(app, json=CHAT)).header("x-routemw-provider") == "up"  # backup not needed
    upstream.queue(answer_error(500))
    driver = await drive(app, json=CHAT)  # now the first route fails: the backup should answer

    assert backup.requests, f"backup skipped: {skipped(observer.calls[1])}"
    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "backup"
