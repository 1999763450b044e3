"""Which targets are healthy enough to try: consecutive failures, cooldowns, half-open probes.

A target that keeps failing with retryable errors (`threshold` in a row), or that answers 429
with a Retry-After longer than a request would wait, is cooled down: skipped by requests for a
while. Every cooldown in a row doubles the next one, up to `max_cooldown`, so a provider that
stays down is not hammered once a period. When a cooldown ends the target is half-open: one
request probes it while the others keep skipping it; the probe's success closes the circuit,
its failure opens it again, longer.

The state sits behind `HealthStore`, a small async interface, so a multi-instance deployment can
share it (`routemw.state.RedisHealth` implements the same three calls with atomic scripts).
`check` answers in seconds from now, never with a clock reading: a time taken on one host's
clock means nothing on another's, so each store keeps its own clock to itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["HealthStore", "MemoryHealth"]


class HealthStore(Protocol):
    async def check(self, key: str) -> float | None:
        """None if the target may be tried now (claiming the probe when half-open), else seconds until it may."""

    async def success(self, key: str) -> None: ...

    async def failure(self, key: str, *, retry_after: float | None = None) -> None:
        """A retryable failure; `retry_after` is the upstream's own hint, if it gave one."""


@dataclass(slots=True)
class _State:
    failures: int = 0  # consecutive retryable failures
    cooldowns: int = 0  # consecutive cooldowns, for the doubling
    until: float = 0.0  # cooling down until then
    probe_until: float = 0.0  # a probe is in flight until then (or until it reports back)


class MemoryHealth:
    """In-process health state; the default. Bounded by the number of configured targets."""

    def __init__(
        self,
        *,
        threshold: int = 3,
        cooldown: float = 5.0,
        max_cooldown: float = 300.0,
        long_retry_after: float = 30.0,
        probe_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.long_retry_after = long_retry_after  # a 429 asking for this long or more cools at once
        self.probe_timeout = probe_timeout  # a probe that never reports back frees the slot after this
        self.clock = clock
        self._states: dict[str, _State] = {}

    async def check(self, key: str) -> float | None:
        state = self._states.get(key)
        if state is None or state.until == 0.0:
            return None
        now = self.clock()
        if now < state.until:
            return state.until - now
        if now < state.probe_until:
            return state.probe_until - now  # someone else is probing; wait for their verdict
        state.probe_until = now + self.probe_timeout
        return None

    async def success(self, key: str) -> None:
        self._states.pop(key, None)

    def cooling_for(self, key: str) -> float | None:
        """Seconds until `key` takes ordinary requests again (None: it does now); claims nothing.

        For metrics: unlike `check`, it never takes the half-open probe. A probe in flight counts
        as cooling, since other requests still skip the target.
        """
        state = self._states.get(key)
        if state is None or state.until == 0.0:
            return None
        wait = max(state.until, state.probe_until) - self.clock()
        return wait if wait > 0 else None

    async def failure(self, key: str, *, retry_after: float | None = None) -> None:
        state = self._states.setdefault(key, _State())
        now = self.clock()
        if now < state.until:
            # Already cooling: these are attempts that were in flight when it started, and must
            # not escalate the cooldown again; a longer Retry-After may still extend it.
            if retry_after is not None and retry_after >= self.long_retry_after:
                state.until = max(state.until, now + min(retry_after, self.max_cooldown))
            return
        state.failures += 1
        half_open = state.until != 0.0
        long_wait = retry_after is not None and retry_after >= self.long_retry_after
        if half_open or long_wait or state.failures >= self.threshold:
            period = min(self.cooldown * 2**state.cooldowns, self.max_cooldown)
            if long_wait and retry_after is not None:
                period = min(max(period, retry_after), self.max_cooldown)
            state.cooldowns += 1
            state.failures = 0
            state.until = self.clock() + period
            state.probe_until = 0.0
