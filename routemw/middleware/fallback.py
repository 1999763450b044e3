"""The order of candidates, their health, and the one deadline over all of them.

Candidates are tried in order: the model's routes (shuffled by weight when the routes carry
weights, so load spreads instead of preferring one provider), then each fallback model's. A
target cooling down is skipped and the skip recorded; if every target is cooling, the one that
recovers soonest is tried anyway rather than failing without an attempt. Each target gets the
rest of the pipeline afresh (retries, translation, dispatch), so nothing from a failed attempt
leaks into the next. An error classified `Action.STOP` is the client's and goes straight back.

The request's deadline (`retry.timeout`) is set here on `call.deadline` and enforced where the
waiting happens: each attempt's timeout is cut to what is left of it (the dispatcher), a retry
never sleeps past it (the retry stop), and this loop tries no target after it. When it passes
the client gets 504 listing what was tried. (A middleware of yours placed inside the loop that
awaits something slow is not bounded by it.)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence

from ..errors import Action, AllTargetsFailedError, UpstreamError
from ..limits.admission import RouteGate
from ..pipeline import Call, Handler
from ..providers.base import Target
from ..reply import Reply
from ..routing.health import HealthStore

__all__ = ["FallbackMiddleware", "weighted_order"]

logger = logging.getLogger("routemw")


def weighted_order(targets: Sequence[Target], rand: Callable[[], float] = random.random) -> list[Target]:
    """Targets in a random order where each comes first with probability proportional to its weight.

    Consecutive runs of the same public model are shuffled among themselves, and only when some
    route in the run has a weight other than 1; fallback models always stay behind.
    """
    ordered: list[Target] = []
    start = 0
    while start < len(targets):
        end = start
        while end < len(targets) and targets[end].public_model == targets[start].public_model:
            end += 1
        run = list(targets[start:end])
        if any(t.weight != 1.0 for t in run):
            # Efraimidis-Spirakis: sorting by u^(1/w) draws a weighted permutation in one pass.
            run.sort(key=lambda t: rand() ** (1.0 / t.weight), reverse=True)
        ordered += run
        start = end
    return ordered


class FallbackMiddleware:
    def __init__(
        self,
        *,
        timeout: float = 120.0,
        health: HealthStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        route_limits: RouteGate | None = None,
    ) -> None:
        self.timeout = timeout
        self.health = health
        self.route_limits = route_limits
        self.clock = clock
        self.rand = rand

    async def __call__(self, call: Call, next: Handler) -> Reply:
        call.deadline = min(call.deadline, self.clock() + self.timeout)
        targets = weighted_order(call.candidates, self.rand)
        cooling: list[tuple[float, Target]] = []
        limited: list[float] = []  # seconds until each route at its own rate limit would take it
        # The deadline is enforced where the waiting happens, in each attempt's cancel scope (the
        # dispatcher) and before each retry's sleep (the retry stop); here it ends the loop.
        for index, target in enumerate(targets):
            if self.clock() >= call.deadline:
                break
            # Health is asked only when this target's turn comes: asking up front would claim
            # the half-open probe of targets that an earlier one makes unnecessary.
            until = await self._cooling_until(target)
            if until is not None:
                call.skipped.append((target, f"cooling down for {max(until - self.clock(), 0):.1f}s"))
                cooling.append((until, target))
                continue
            # Route limits: a route at its own rpm/tpm is skipped like a cooling one.
            wait = await self.route_limits.admit(call, target) if self.route_limits is not None else None
            if wait is not None:
                call.skipped.append((target, f"at its rate limit for {wait:.1f}s"))
                limited.append(wait)
                continue
            reply = await self._try(call, next, target)
            if reply is not None:
                self._disclose(call, target, fallbacks=index)
                return reply
        if cooling and len(cooling) == len(targets) and self.clock() < call.deadline:
            # Every target is cooling: one try at the likeliest beats failing untried.
            _, target = min(cooling, key=lambda pair: pair[0])
            gate = self.route_limits
            admitted = gate is None or await gate.admit(call, target) is None
            reply = await self._try(call, next, target) if admitted else None
            if reply is not None:
                self._disclose(call, target, fallbacks=targets.index(target))
                return reply
        if limited and not call.attempts and self.route_limits is not None:
            raise self.route_limits.exhausted(call.request.model, min(limited))
        deadline_passed = self.clock() >= call.deadline
        raise AllTargetsFailedError(call.request.model, call.attempts, deadline_passed=deadline_passed)

    async def _cooling_until(self, target: Target) -> float | None:
        if self.health is None:
            return None
        return await self.health.check(target.key)

    async def _try(self, call: Call, next: Handler, target: Target) -> Reply | None:
        """The reply, or None to move on; the client's own errors (Action.STOP) propagate."""
        call.target = target
        try:
            return await next(call)
        except UpstreamError as exc:
            logger.warning(
                "routemw: request %s: %s/%s failed (%s, %s): %s",
                call.request_id,
                target.provider.name,
                target.model,
                exc.upstream_status if exc.upstream_status is not None else "no response",
                exc.action.value,
                exc.code,
            )
            if exc.action is Action.STOP:
                raise
            return None

    @staticmethod
    def _disclose(call: Call, target: Target, *, fallbacks: int) -> None:
        headers = call.response_headers
        headers["x-routemw-provider"] = target.provider.name
        headers["x-routemw-route-model"] = target.model
        headers["x-routemw-attempts"] = str(len(call.attempts))
        headers["x-routemw-fallbacks"] = str(fallbacks)
        dropped = sorted({*call.dropped, *target.drop})
        if dropped:
            headers["x-routemw-dropped-params"] = ", ".join(dropped)
        if target.clamp:
            headers["x-routemw-clamped-params"] = ", ".join(sorted(target.clamp))
