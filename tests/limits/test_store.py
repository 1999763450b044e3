"""The counting arithmetic of the limit stores, memory and Redis alike, on an injected clock (no waiting)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from limit_stores import MakeStore

from routemw.limits import LimitStore, Quota, Rate, Settlement, Slots
from routemw.limits.headers import duration, ratelimit_headers
from routemw.limits.periods import period_bounds


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(make_store: MakeStore, clock: Clock) -> LimitStore:
    return make_store(clock)


def rpm(limit: int, group: str = "acct:a") -> Rate:
    return Rate(group, "rpm", limit, 1, refundable=False)


async def test_rpm_admits_a_burst_of_n_at_once_then_one_per_interval(store: LimitStore, clock: Clock) -> None:
    for i in range(60):
        assert (await store.admit(f"l{i}", [rpm(60)])).admitted
    refused = await store.admit("late", [rpm(60)])
    assert not refused.admitted
    assert refused.standings[0].retry_after == pytest.approx(1.0)  # one request comes back per second
    clock.now += 0.999
    assert not (await store.admit("early", [rpm(60)])).admitted
    clock.now += 0.001
    assert (await store.admit("on-time", [rpm(60)])).admitted
    assert not (await store.admit("next", [rpm(60)])).admitted


async def test_no_window_boundary_lets_twice_the_limit_through(store: LimitStore, clock: Clock) -> None:
    # A fixed calendar minute would admit 10 at :59 and 10 more at :00; GCRA admits 10 in any 60 s.
    admitted = 0
    for _ in range(20):
        admitted += (await store.admit("x", [rpm(10)])).admitted
    clock.now += 1.0
    for _ in range(20):
        admitted += (await store.admit("x", [rpm(10)])).admitted
    assert admitted == 10
    clock.now += 60.0
    assert (await store.admit("x", [rpm(10)])).standings[0].remaining == 9  # full again


async def test_remaining_and_reset_describe_the_state_after_the_reservation(store: LimitStore) -> None:
    admission = await store.admit("a", [Rate("acct:a", "tpm", 1000, 250)])
    standing = admission.standings[0]
    assert standing.remaining == 750
    assert standing.reset_after == pytest.approx(15.0)  # 250 of 1000 per 60 s come back in 15 s


async def test_a_request_larger_than_the_limit_can_never_pass(store: LimitStore) -> None:
    refused = await store.admit("big", [Rate("acct:a", "tpm", 1000, 1001)])
    assert not refused.admitted
    assert refused.standings[0].retry_after is None


async def test_reconcile_refunds_unused_tokens_and_charges_extra(store: LimitStore, clock: Clock) -> None:
    claim = Rate("acct:a", "tpm", 1000, 800)
    await store.admit("a", [claim])
    await store.reconcile("a", [Settlement(claim, 300)])
    (standing,) = await store.inspect([claim])
    assert standing.remaining == 700
    other = Rate("acct:a", "tpm", 1000, 500)
    await store.admit("b", [other])
    await store.reconcile("b", [Settlement(other, 900)])  # used more than it reserved: counted
    (standing,) = await store.inspect([claim])
    assert standing.remaining == 0
    clock.now += 12.0  # 1200 used of 1000: the first 200 coming back only pay off the excess
    (standing,) = await store.inspect([claim])
    assert standing.remaining == 0
    clock.now += 6.0
    (standing,) = await store.inspect([claim])
    assert standing.remaining == 100


async def test_release_refunds_tokens_but_keeps_the_request_counted(store: LimitStore) -> None:
    claims = [rpm(10), Rate("acct:a", "tpm", 1000, 400)]
    await store.admit("a", claims)
    await store.release("a", claims, [None, None])
    standings = await store.inspect(claims)
    assert [s.remaining for s in standings] == [9, 1000]


async def test_one_scope_refusing_takes_nothing_from_the_others(store: LimitStore) -> None:
    model = rpm(1, "model:m")
    assert (await store.admit("first", [rpm(10), model])).admitted
    refused = await store.admit("second", [rpm(10), Rate("acct:a", "tpm", 100, 50), Slots("acct:a", 1), model])
    assert not refused.admitted
    assert [s.ok for s in refused.standings] == [True, True, True, False]
    key_rpm, key_tpm, key_slots = await store.inspect([rpm(10), Rate("acct:a", "tpm", 100, 0), Slots("acct:a", 1)])
    assert (key_rpm.remaining, key_tpm.remaining, key_slots.remaining) == (9, 100, 1)


async def test_slots_are_leases_released_once_and_only_by_their_holder(store: LimitStore) -> None:
    slots = Slots("acct:a", 2)
    assert (await store.admit("a", [slots])).admitted
    assert (await store.admit("b", [slots])).admitted
    assert not (await store.admit("c", [slots])).admitted
    await store.release("a", [slots], [None])
    await store.release("a", [slots], [None])  # twice: frees nothing more
    assert (await store.admit("c", [slots])).admitted
    assert not (await store.admit("d", [slots])).admitted
    await store.reconcile("unknown", [Settlement(slots, 0)])  # never frees another's slot
    assert not (await store.admit("d", [slots])).admitted


async def test_a_budget_holds_then_commits_the_actual_cost(store: LimitStore) -> None:
    budget = Quota("acct:a", "budget", 1_000_000, 600_000, "month")  # $1, a request that may cost $0.60
    first = await store.admit("a", [budget])
    assert first.admitted
    assert first.standings[0].remaining == 400_000
    assert not (await store.admit("b", [budget])).admitted  # concurrent: the hold counts
    await store.reconcile("a", [Settlement(budget, 250_000, first.standings[0].period)])
    (standing,) = await store.inspect([budget])
    assert (standing.used, standing.remaining) == (250_000, 750_000)
    assert (await store.admit("b", [budget])).admitted


async def test_a_free_request_holds_and_settles_nothing(store: LimitStore) -> None:
    # A zero hold (an `echo` request, a key whose spend is tracked without a budget) is released
    # and settled like any other: on Redis its refund must not be written as "-0", which Redis
    # refuses as an integer (the store would then fall back to counting locally).
    budget = Quota("acct:a", "budget", 1_000_000, 0, "month")
    first = await store.admit("a", [budget])
    await store.reconcile("a", [Settlement(budget, 0, first.standings[0].period)])
    second = await store.admit("b", [budget])
    await store.release("b", [budget], [second.standings[0].period])
    (standing,) = await store.inspect([budget])
    assert (standing.used, standing.remaining) == (0, 1_000_000)


async def test_a_used_up_quota_refuses_even_a_free_request(store: LimitStore) -> None:
    budget = Quota("acct:a", "budget", 100, 100, "day")
    admission = await store.admit("a", [budget])
    await store.reconcile("a", [Settlement(budget, 100, admission.standings[0].period)])
    refused = await store.admit("b", [Quota("acct:a", "budget", 100, 0, "day")])
    assert not refused.admitted
    assert refused.standings[0].remaining == 0


async def test_a_new_period_starts_from_nothing(store: LimitStore, clock: Clock) -> None:
    clock.now = at("2026-09-30T23:59:59")
    tokens = Quota("acct:a", "tokens", 1000, 1000, "month")
    admission = await store.admit("a", [tokens])
    assert admission.standings[0].period == "2026-09"
    assert admission.standings[0].reset_after == pytest.approx(1.0)
    await store.reconcile("a", [Settlement(tokens, 1000, "2026-09")])
    assert not (await store.admit("b", [tokens])).admitted
    clock.now = at("2026-10-01T00:00:00")
    admitted = await store.admit("b", [tokens])
    assert admitted.admitted
    assert admitted.standings[0].period == "2026-10"


async def test_a_lease_settled_after_its_period_ended_does_not_charge_the_new_one(
    store: LimitStore, clock: Clock
) -> None:
    clock.now = at("2026-09-14T23:00:00")
    tokens = Quota("acct:a", "tokens", 1000, 400, "day")
    admission = await store.admit("old", [tokens])
    clock.now = at("2026-09-15T01:00:00")
    await store.admit("new", [tokens])
    await store.reconcile("old", [Settlement(tokens, 400, admission.standings[0].period)])
    (standing,) = await store.inspect([tokens])
    assert (standing.used, standing.remaining) == (0, 600)  # only today's hold


@pytest.mark.parametrize(
    ("period", "moment", "ident", "ends"),
    [
        ("day", "2026-02-28T13:00:00", "2026-02-28", "2026-03-01T00:00:00"),
        ("week", "2026-01-01T12:00:00", "2026-W01", "2026-01-05T00:00:00"),  # Thursday; ISO week of Monday 29 Dec
        ("month", "2026-12-31T23:00:00", "2026-12", "2027-01-01T00:00:00"),
    ],
)
def test_calendar_periods_are_utc(period: str, moment: str, ident: str, ends: str) -> None:
    assert period_bounds(period, at(moment)) == (ident, at(ends))  # type: ignore[arg-type]
    assert period_bounds("total", at(moment)) == ("total", None)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.017, "17ms"), (0.0001, "1ms"), (1.0, "1s"), (1.5, "1.5s"), (360.0, "6m0s"), (3723.0, "1h2m3s")],
)
def test_durations_are_written_the_way_openai_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


async def test_headers_describe_the_tightest_scope(store: LimitStore) -> None:
    admission = await store.admit(
        "a", [rpm(100), rpm(5, "model:m"), Rate("acct:a", "tpm", 1000, 10), Rate("model:m", "tpm", 50_000, 10)]
    )
    headers = ratelimit_headers(admission.claims, admission.figures)
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-remaining-requests"] == "4"
    assert headers["x-ratelimit-reset-requests"] == "12s"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert headers["x-ratelimit-remaining-tokens"] == "990"
    assert headers["x-ratelimit-reset-tokens"] == "600ms"
