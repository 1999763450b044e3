"""The order of candidates, their health, and the one deadline over all of them.

Candidates are tried in order: the model's routes (shuffled by weight when the routes carry
weights, equal ones included, so load spreads instead of preferring one provider; as written
when no route set a weight), then each fallback model's. A target cooling down is skipped and
the skip recorded; if every target is cooling, the one that recovers soonest is tried anyway
rather than failing without an attempt. Each target gets the
rest of the pipeline afresh (retries, translation, dispatch), so nothing from a failed attempt
leaks into the next. An error classified `Action.STOP` is the client's and goes straight back.
A refusal of one of the request's parameters (`unsupported_parameter` / `unsupported_value`)
falls back, since another target may take it; when every target tried refused that way, the
last refusal goes back as the upstream gave it (a 400 naming the parameter), not as a 502: the
caller has something to fix, and retrying the same request will not help.

Whatever the outcome, the response says whose answer it is (`_disclose`): the target that
answered, the one whose refusal is relayed, or, when all failed, the last one tried.

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
from typing import NoReturn

from ..errors import Action, AllTargetsFailedError, UpstreamError
from ..http.headers import config_header_value, header_list, id_value
from ..limits.admission import RouteGate
from ..pipeline import Call, Handler
from ..providers.base import Target
from ..reply import Reply
from ..routing.health import HealthStore

__all__ = ["FallbackMiddleware", "weighted_order"]

# Upstream codes for "this target does not take this parameter or value": worth another target,
# and the client's to fix when no target takes it.
_PARAMETER_REFUSALS = frozenset({"unsupported_parameter", "unsupported_value"})

logger = logging.getLogger("routemw")


def weighted_order(targets: Sequence[Target], rand: Callable[[], float] = random.random) -> list[Target]:
    """Targets in a random order where each comes first with probability proportional to its weight.

    Consecutive runs of the same public model are shuffled among themselves, and only when the
    run's routes carry weights (the catalog gives all of a model's routes one, or none); fallback
    models always stay behind.
    """
    ordered: list[Target] = []
    start = 0
    while start < len(targets):
        end = start
        while end < len(targets) and targets[end].public_model == targets[start].public_model:
            end += 1
        run = list(targets[start:end])
        if any(t.weight is not None for t in run):
            # Efraimidis-Spirakis: sorting by u^(1/w) draws a weighted permutation in one pass.
            run.sort(key=lambda t: rand() ** (1.0 / (t.weight or 1.0)), reverse=True)
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
        cooling: list[tuple[float, int, Target]] = []
        limited: list[float] = []  # seconds until each route at its own rate limit would take it
        passed: list[tuple[int, str]] = []  # (place, reason) of each target passed over untried
        last: tuple[int, Target, UpstreamError] | None = None  # the latest failure, to name it
        # The deadline is enforced where the waiting happens, in each attempt's cancel scope (the
        # dispatcher) and before each retry's sleep (the retry stop); here it ends the loop.
        for index, target in enumerate(targets):
            if self.clock() >= call.deadline:
                break
            # Health is asked only when this target's turn comes: asking up front would claim
            # the half-open probe of targets that an earlier one makes unnecessary.
            cooling_for = await self._cooling_for(target)
            if cooling_for is not None:
                call.skipped.append((target, f"cooling down for {max(cooling_for, 0):.1f}s"))
                cooling.append((cooling_for, index, target))
                passed.append((index, "cooldown"))
                continue
            # Route limits: a route at its own rpm/tpm is skipped like a cooling one.
            wait = await self.route_limits.admit(call, target) if self.route_limits is not None else None
            if wait is not None:
                call.skipped.append((target, f"at its rate limit for {wait:.1f}s"))
                limited.append(wait)
                passed.append((index, "limit"))
                continue
            outcome = await self._try(call, next, target, index, passed)
            if not isinstance(outcome, UpstreamError):
                return outcome
            last = (index, target, outcome)
        untried = bool(cooling) or bool(limited)
        if cooling and len(cooling) == len(targets) and self.clock() < call.deadline:
            # Every target is cooling: one try at the likeliest beats failing untried. Every one
            # listed before it was passed over for its cooldown.
            _, index, target = min(cooling, key=lambda entry: entry[0])
            gate = self.route_limits
            if gate is None or await gate.admit(call, target) is None:
                outcome = await self._try(call, next, target, index, passed)
                if not isinstance(outcome, UpstreamError):
                    return outcome
                last = (index, target, outcome)
                untried = len(cooling) > 1
        if limited and not call.attempts and self.route_limits is not None:
            raise self.route_limits.exhausted(call.request.model, min(limited))
        if last is not None:
            index, target, failure = last
            _disclose(call, target, index, passed, failure)
        self._give_up(call, last[2] if last is not None else None, untried=untried)

    def _give_up(self, call: Call, last_error: UpstreamError | None, *, untried: bool) -> NoReturn:
        """Raise what the client gets when no target answered; `untried`: some were never called."""
        deadline_passed = self.clock() >= call.deadline
        failures = [a for a in call.attempts if a.action is not None]
        if (
            last_error is not None
            and not untried
            and not deadline_passed
            and failures
            and all(a.status == 400 and a.code in _PARAMETER_REFUSALS for a in failures)
        ):
            raise last_error
        raise AllTargetsFailedError(call.request.model, call.attempts, deadline_passed=deadline_passed)

    async def _cooling_for(self, target: Target) -> float | None:
        if self.health is None:
            return None
        return await self.health.check(target.key)

    async def _try(
        self, call: Call, next: Handler, target: Target, index: int, passed: Sequence[tuple[int, str]]
    ) -> Reply | UpstreamError:
        """The reply, or the failure to move on from; the client's own errors (Action.STOP) propagate.

        `index` is the target's place in the order tried, `passed` the targets passed over untried.
        """
        call.target = target
        try:
            reply = await next(call)
        except UpstreamError as exc:
            logger.warning(
                "routemw: request %s: %s/%s failed (%s, %s): %s",
                call.request_id,
                target.provider.name,
                target.model,
                exc.upstream_status if exc.upstream_status is not None else "no response",
                exc.action.value,
                exc.code,
                extra={"request_id": call.request_id, "error_code": exc.code},
            )
            if exc.action is Action.STOP:
                _disclose(call, target, index, passed, exc)  # the answer relayed is this target's refusal
                raise
            return exc
        _disclose(call, target, index, passed, None)
        return reply


def _disclose(
    call: Call, target: Target, index: int, passed: Sequence[tuple[int, str]], failure: UpstreamError | None
) -> None:
    """The headers that say whose answer this is and how routing got there (docs/failures.md).

    Every candidate ahead of `target` was passed over: it failed, was cooling, was at its own rate
    limit, or was left out by the capability check (those never reach this loop, so they are
    counted from `unfit_ahead`).
    """
    headers = call.response_headers
    headers["x-routemw-provider"] = config_header_value(target.provider.name)
    headers["x-routemw-route-model"] = config_header_value(target.model)
    headers["x-routemw-attempts"] = str(len(call.attempts))
    unfit = call.unfit_ahead.get(target, 0) if call.unfit_ahead else 0
    headers["x-routemw-fallbacks"] = str(index + unfit)
    counts = {"capability": unfit, "cooldown": 0, "limit": 0}
    for place, reason in passed:
        if place < index:
            counts[reason] += 1
    if any(counts.values()):
        headers["x-routemw-skipped"] = ", ".join(f"{reason}={n}" for reason, n in counts.items() if n)
    dropped = sorted({*call.dropped, *target.drop})
    if dropped:
        headers["x-routemw-dropped-params"] = header_list(dropped)
    if target.clamp:
        headers["x-routemw-clamped-params"] = header_list(sorted(target.clamp))
    request_id = id_value(failure.upstream_request_id) if failure and failure.upstream_request_id else None
    if request_id:
        headers["x-upstream-request-id"] = request_id
