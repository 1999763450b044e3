"""Where limits are counted: one small async protocol, and its in-memory implementation.

Every operation is one atomic step over all the claims it is given, so a store that keeps its
state in Redis implements each as one Lua script and gets the same guarantees:

- `admit` checks every claim and, only if all pass, applies all of them: a request refused by
  one scope (a key's rpm) takes nothing from any other (the model's tpm, the key's budget).
- `reconcile` replaces what a lease reserved with what it actually used; `release` gives back
  everything a lease holds except what cannot be taken back (a request that was started).
  Both are idempotent per lease and never touch another lease's reservation.
- Time is the store's own (`clock` here, Redis `TIME` there); results are relative ("retry in
  1.2 s", "resets in 3 h"), never a clock reading to compare with another host's.

Keys are `{group}:name` (`Claim.key`). The group is one account (`acct:team-a`), one public model or one
route, so every counter of an account shares a Redis Cluster hash tag and one script can
update them together.

Counting rules:

- `Rate` is GCRA with weights: a limit of N per window admits N units at once and then one
  every window/N seconds (no calendar minute, which would let 2N through around its edge).
  A refund moves the theoretical arrival time back, never before now. A rate holds nothing per
  lease, so its claims may be settled under another lease id than the one that admitted them
  (the gateway settles a request's route claims together with its own).
- `Slots` are leases by id: a lease holds at most one slot, and releasing it twice, or
  releasing another's, is impossible by construction.
- `Quota` is a ledger per calendar period: `committed` plus the holds of leases in flight must
  stay within the limit; reconciling turns a hold into a commitment in the period the lease was
  admitted in. A limit already reached refuses even a request estimated to cost nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..config.schema import Period
from .periods import period_bounds

__all__ = [
    "Admission",
    "Claim",
    "LimitStore",
    "MemoryLimitStore",
    "Quota",
    "Rate",
    "Settlement",
    "Slots",
    "Standing",
]

_EPSILON = 1e-9  # float slack in the GCRA comparison, far below any meaningful time
_UNIT_SLACK = 1e-6  # float slack when turning seconds back into whole units


@dataclass(frozen=True, slots=True)
class Rate:
    """`limit` units per `window` seconds, all of them usable at once; this request takes `amount`."""

    group: str
    name: str  # "rpm" or "tpm"
    limit: int
    amount: int
    window: float = 60.0
    refundable: bool = True  # False for a request count: a started request stays started
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{{{self.group}}}:{self.name}")


@dataclass(frozen=True, slots=True)
class Slots:
    """At most `limit` leases at once."""

    group: str
    limit: int
    name: str = "concurrency"
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{{{self.group}}}:{self.name}")


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `limit` units (tokens, micro-USD) per UTC calendar `period`; this request holds `amount`."""

    group: str
    name: str  # "budget" or "tokens"
    limit: int
    amount: int
    period: Period = "month"
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{{{self.group}}}:{self.name}")


Claim = Rate | Slots | Quota


@dataclass(frozen=True, slots=True)
class Standing:
    """One claim's state as the store saw it: after the reservation when admitted."""

    claim: Claim
    ok: bool
    remaining: int  # units left (after this request's reservation, when admitted)
    used: int = 0  # quota: committed in this period, not counting holds
    reset_after: float | None = None  # rate: seconds until full again; quota: until the period ends
    retry_after: float | None = None  # refused: seconds until it would pass; None when waiting cannot tell
    period: str | None = None  # quota: the period id the reservation counts in


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    standings: tuple[Standing, ...]  # every claim's, in the order given

    @property
    def refusals(self) -> tuple[Standing, ...]:
        return tuple(s for s in self.standings if not s.ok)


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a lease actually used of one claim it was admitted with."""

    claim: Claim
    actual: int
    period: str | None = None  # quota: the period id from the admission


class LimitStore(Protocol):
    async def admit(self, lease: str, claims: Sequence[Claim]) -> Admission:
        """All claims, or none of them."""

    async def reconcile(self, lease: str, settlements: Sequence[Settlement]) -> None:
        """Replace the lease's reservations with what it used, and free its slots."""

    async def release(self, lease: str, claims: Sequence[Claim], periods: Sequence[str | None]) -> None:
        """Give back the lease's reservations (refundable ones) and slots."""

    async def inspect(self, claims: Sequence[Claim]) -> tuple[Standing, ...]:
        """The current standing of each claim, reserving nothing (`amount` is ignored)."""


@dataclass(slots=True)
class _Ledger:
    period: str
    committed: int = 0
    held: int = 0  # the sum of `holds`, kept as it changes
    holds: dict[str, int] = field(default_factory=dict)

    def hold(self, lease: str, amount: int) -> None:
        self.holds[lease] = self.holds.get(lease, 0) + amount
        self.held += amount

    def drop(self, lease: str) -> bool:
        amount = self.holds.pop(lease, None)
        if amount is None:
            return False
        self.held -= amount
        return True


class MemoryLimitStore:
    """Limits counted in this process; the default. `clock` gives epoch seconds (inject one in tests).

    Each operation runs without awaiting anything, so on one event loop it is atomic. Rate
    state is kept in seconds since the store was made, not since 1970: at epoch magnitudes a
    float resolves only about a quarter of a microsecond, which at a tpm in the millions is a
    token.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._origin = clock()
        self._periods: dict[Period, tuple[str, float | None]] = {}  # the current period of each kind
        self._period_start: dict[Period, float] = {}  # a time inside it, so a clock going back recomputes
        self._tat: dict[str, float] = {}  # rate key -> theoretical arrival time
        self._slots: dict[str, set[str]] = {}
        self._ledgers: dict[str, _Ledger] = {}

    async def admit(self, lease: str, claims: Sequence[Claim]) -> Admission:
        # One pass checks every claim and notes what admitting it would write; a second pass
        # applies those writes only if every claim passed. This runs for every request, so the
        # common case (a rate) is checked inline rather than through calls and returned tuples.
        now = self.clock() - self._origin
        tats = self._tat
        standings: list[Standing] = []
        writes: list[Any] = []  # per claim: a rate's new arrival time, a quota's period, None for a slot
        admitted = True
        for claim in claims:
            if isinstance(claim, Rate):
                rate = claim
                window = rate.window
                interval = window / rate.limit  # seconds one unit takes to come back
                tat = tats.get(rate.key, now)
                if tat < now:
                    tat = now
                after = tat + rate.amount * interval
                if after - now <= window + _EPSILON:
                    left = math.floor((window - (after - now)) / interval + _UNIT_SLACK)
                    standing = Standing(rate, True, left if left > 0 else 0, 0, after - now)
                else:
                    standing = self._rate_refusal(rate, now, tat, after, interval)
                writes.append(after)
            elif isinstance(claim, Slots):
                standing = self._check_slots(lease, claim, True)
                writes.append(None)
            else:
                standing = self._check_quota(claim, now, True)
                writes.append(standing.period)
            if not standing.ok:
                admitted = False
            standings.append(standing)
        if admitted:
            for claim, write in zip(claims, writes, strict=True):
                if isinstance(claim, Rate):
                    tats[claim.key] = write
                elif isinstance(claim, Slots):
                    holders = self._slots.get(claim.key)
                    if holders is None:
                        holders = self._slots[claim.key] = set()
                    holders.add(lease)
                else:
                    self._ledger(claim.key, write).hold(lease, claim.amount)
        return Admission(admitted, tuple(standings))

    async def reconcile(self, lease: str, settlements: Sequence[Settlement]) -> None:
        now = self.clock() - self._origin
        for settlement in settlements:
            claim = settlement.claim
            if isinstance(claim, Rate):
                self._adjust(claim.key, claim, settlement.actual - claim.amount, now)
            elif isinstance(claim, Slots):
                self._free(claim.key, lease)
            else:
                ledger = self._ledgers.get(claim.key)
                # A lease is settled in the period it was admitted in; if that period is over,
                # its ledger is gone with it and nobody reads it again.
                if ledger is not None and ledger.period == settlement.period and ledger.drop(lease):
                    ledger.committed += settlement.actual

    async def release(self, lease: str, claims: Sequence[Claim], periods: Sequence[str | None]) -> None:
        now = self.clock() - self._origin
        for claim, period in zip(claims, periods, strict=True):
            if isinstance(claim, Rate):
                if claim.refundable:
                    self._adjust(claim.key, claim, -claim.amount, now)
            elif isinstance(claim, Slots):
                self._free(claim.key, lease)
            else:
                ledger = self._ledgers.get(claim.key)
                if ledger is not None and ledger.period == period:
                    ledger.drop(lease)

    async def inspect(self, claims: Sequence[Claim]) -> tuple[Standing, ...]:
        now = self.clock() - self._origin
        return tuple(self._check(None, claim, now) for claim in claims)

    # -- one claim -------------------------------------------------------------------------

    def _check(self, lease: str | None, claim: Claim, now: float) -> Standing:
        """A claim's standing without reserving anything."""
        if isinstance(claim, Rate):
            return self._check_rate(claim.key, claim, now, 0)
        if isinstance(claim, Slots):
            return self._check_slots(lease, claim, False)
        return self._check_quota(claim, now, False)

    def _check_slots(self, lease: str | None, claim: Slots, reserve: bool) -> Standing:
        holders = self._slots.get(claim.key)
        taken = len(holders) if holders is not None else 0
        if reserve and (holders is None or lease not in holders):
            taken += 1
        ok = taken <= claim.limit
        return Standing(claim, ok, max(claim.limit - taken, 0) if ok else 0)

    def _check_quota(self, claim: Quota, now: float, reserve: bool) -> Standing:
        """Without `reserve` it only looks: nothing is counted, and a used-up quota is still "ok"."""
        period, ends = self._period(claim.period, now)
        ledger = self._ledgers.get(claim.key)
        committed, held = (ledger.committed, ledger.held) if ledger is not None and ledger.period == period else (0, 0)
        amount = claim.amount if reserve else 0
        used = committed + held
        ok = used + amount <= claim.limit and (used < claim.limit or not reserve)
        reset_after = None if ends is None else max(ends - now, 0.0)
        remaining = max(claim.limit - used - (amount if ok else 0), 0)
        return Standing(claim, ok, remaining, used=committed, reset_after=reset_after, period=period)

    def _period(self, kind: Period, now: float) -> tuple[str, float | None]:
        """The current period's id and end (relative to the origin); calendar arithmetic only when it changes."""
        current = self._periods.get(kind)
        if current is not None and (current[1] is None or now < current[1]) and now >= self._period_start.get(kind, 0):
            return current
        ident, ends = period_bounds(kind, now + self._origin)
        current = self._periods[kind] = (ident, None if ends is None else ends - self._origin)
        self._period_start[kind] = now
        return current

    def _check_rate(self, key: str, claim: Rate, now: float, amount: int) -> Standing:
        """A rate's standing were `amount` more admitted now (`admit` has this inline)."""
        interval = claim.window / claim.limit
        tat = max(self._tat.get(key, now), now)
        after = tat + amount * interval
        if after - now <= claim.window + _EPSILON:
            remaining = math.floor((claim.window - (after - now)) / interval + _UNIT_SLACK)
            return Standing(claim, True, max(remaining, 0), reset_after=after - now)
        return self._rate_refusal(claim, now, tat, after, interval, amount)

    @staticmethod
    def _rate_refusal(
        claim: Rate, now: float, tat: float, after: float, interval: float, amount: int | None = None
    ) -> Standing:
        amount = claim.amount if amount is None else amount
        # More than the whole limit can never pass; otherwise it passes once enough has come back.
        retry = None if amount > claim.limit else after - claim.window - now
        remaining = math.floor((claim.window - (tat - now)) / interval + _UNIT_SLACK)
        return Standing(claim, False, max(remaining, 0), reset_after=tat - now, retry_after=retry)

    def _adjust(self, key: str, claim: Rate, delta: int, now: float) -> None:
        """Move the arrival time by `delta` units: back for a refund (never before now), on for extra use."""
        if delta == 0:
            return
        tat = max(self._tat.get(key, now), now) + delta * claim.window / claim.limit
        if tat <= now:
            self._tat.pop(key, None)  # back to full: nothing worth keeping
        else:
            self._tat[key] = tat

    def _free(self, key: str, lease: str) -> None:
        holders = self._slots.get(key)
        if holders is not None:
            holders.discard(lease)
            if not holders:
                del self._slots[key]

    def _ledger(self, key: str, period: str) -> _Ledger:
        ledger = self._ledgers.get(key)
        if ledger is None or ledger.period != period:
            ledger = self._ledgers[key] = _Ledger(period)  # a new period starts from nothing
        return ledger
