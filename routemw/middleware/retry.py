"""Retries of one target: tenacity owns the loop, the request's deadline bounds it.

The wait before a retry is the upstream's own hint (`retry-after-ms`, `retry-after`, Gemini's
RetryInfo, all parsed by the adapter into `UpstreamError.retry_after`) or exponential backoff
with jitter between `backoff_initial` and `backoff_max`. A wait that would end past the request's
deadline is not taken: the loop stops and the fallback moves on to the next target instead. The
sleep function is injectable, so tests assert the exact schedule without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from ..errors import Action, UpstreamError
from ..pipeline import Call, Handler
from ..reply import Reply, Stream
from ..routing.health import HealthStore

logger = logging.getLogger("routemw")

__all__ = ["RetryMiddleware", "stop_at_deadline", "wait_backoff", "wait_retry_after_or"]

Sleep = Callable[[float], Awaitable[None]]


class wait_backoff(wait_base):
    """`initial * 2**(n-1)` stretched by up to 25% of jitter, never below `initial` nor above `max`.

    The jitter only ever lengthens a wait, so the first retry is not sooner than configured and
    a crowd of clients that failed together spreads out.
    """

    def __init__(self, initial: float, max: float, rand: Callable[[], float] = random.random) -> None:
        self.initial = initial
        self.max = max
        self.rand = rand

    def __call__(self, retry_state: RetryCallState) -> float:
        exponent = min(retry_state.attempt_number - 1, 64)  # 2**64 seconds is past any cap
        return min(self.max, self.initial * float(2**exponent) * (1.0 + 0.25 * self.rand()))


class wait_retry_after_or(wait_base):
    """The upstream's Retry-After when it gave one, else the `fallback` strategy."""

    def __init__(self, fallback: wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, UpstreamError) and exc.retry_after is not None:
            return exc.retry_after
        return self.fallback(retry_state)


class stop_at_deadline(stop_base):
    """Stop when the coming sleep would end at or after `deadline()` (a monotonic time)."""

    def __init__(self, deadline: Callable[[], float], clock: Callable[[], float] = time.monotonic) -> None:
        self.deadline = deadline
        self.clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock() + retry_state.upcoming_sleep >= self.deadline()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.action is Action.RETRY


class RetryMiddleware:
    """Calls `next` for `call.target` until it answers, up to `attempts` times."""

    def __init__(
        self,
        *,
        attempts: int = 3,
        backoff_initial: float = 0.25,
        backoff_max: float = 8.0,
        health: HealthStore | None = None,
        sleep: Sleep = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.attempts = attempts
        self.wait = wait_retry_after_or(wait_backoff(backoff_initial, backoff_max, rand))
        self.health = health
        self.sleep = sleep
        self.clock = clock

    async def __call__(self, call: Call, next: Handler) -> Reply:
        target = call.target
        assert target is not None, "RetryMiddleware needs call.target; put FallbackMiddleware before it"
        key = target.key
        # The first attempt runs outside tenacity: most requests succeed at once, and building
        # the retry machinery for each of them measured as a fifth of the gateway's own cost.
        try:
            return await self._attempt(call, next, key)
        except UpstreamError as exc:
            if not _retryable(exc) or self.attempts < 2:
                raise
            first_failure: list[UpstreamError] = [exc]
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts) | stop_at_deadline(lambda: call.deadline, self.clock),
            wait=self.wait,
            retry=retry_if_exception(_retryable),
            sleep=self.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first_failure:
                    # Replayed so that tenacity counts it and schedules the wait after it.
                    raise first_failure.pop()
                return await self._attempt(call, next, key)
        raise AssertionError("unreachable: tenacity either returns, or re-raises the last error")

    async def _attempt(self, call: Call, next: Handler, key: str) -> Reply:
        try:
            reply = await next(call)
        except UpstreamError as exc:
            if exc.action is Action.RETRY and not exc.deadline_bound:
                await self._report(key, exc)
            elif exc.action is Action.STOP:
                await self._report(key, None)  # it answered: alive, whatever it thought of the request
            raise
        try:
            await self._report(key, None)
        except BaseException:
            # Cancelled while reporting (the client left): the reply in hand owns an upstream
            # connection that nobody else will close.
            if isinstance(reply, Stream):
                with anyio.CancelScope(shield=True):
                    await reply.aclose()
            raise
        return reply

    async def _report(self, key: str, failure: UpstreamError | None) -> None:
        """Tell the health store; best effort, since a broken store must not fail requests."""
        if self.health is None:
            return
        try:
            if failure is None:
                await self.health.success(key)
            else:
                await self.health.failure(key, retry_after=failure.retry_after)
        except Exception:
            logger.exception("routemw: the health store failed to record %s", key)
