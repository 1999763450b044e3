"""What a store does while Redis is away: `state.on_error`, the store timeout, and the log lines.

Every Redis operation of every store on one client goes through one `RedisGuard`, so "Redis
went away" is noticed, logged and counted once, whichever store saw it first.

- Each operation gets `timeout` seconds (`state.timeout`); an error or a timeout marks Redis
  away. A slow Redis therefore holds a request for at most that long, once: while Redis is
  away, operations do not try it at all, except one every `retry_interval` seconds that checks
  whether it is back (the others do not wait for that one).
- `on_error: open`: the operation is answered by the store's local stand-in (this process's
  memory), so no request fails because of Redis. A fresh stand-in is used for each outage:
  state counted during an earlier outage is stale by the time of the next.
- `on_error: closed`: an admission (a question whose answer lets a request through) raises
  `StateUnavailableError` (503 with `retry-after`); a report (recording what happened to a
  request already admitted) still goes to the stand-in, since failing a request that has its
  answer would help nobody.
- One warning when Redis goes away, one when it answers again; `failures`, `outages` and
  `local` count what happened, for metrics to export.

Any exception from Redis counts, not only connection errors: a request must not fail because
a script or a server misbehaved, and the warning shows what it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import anyio

from ..errors import StateUnavailableError

__all__ = ["RedisGuard"]

logger = logging.getLogger("routemw")

T = TypeVar("T")


class RedisGuard:
    """Runs store operations against Redis with a timeout, and applies `on_error` when it is away."""

    def __init__(
        self,
        *,
        on_error: Literal["open", "closed"] = "open",
        timeout: float = 0.25,
        retry_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_error = on_error
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.clock = clock
        self.failures = 0  # operations that failed or timed out
        self.outages = 0  # times Redis went away; also tells stores when to start a fresh stand-in
        self.local = 0  # operations answered by the local stand-in (or refused) instead of Redis
        self._down_since: float | None = None
        self._retry_at = 0.0

    @property
    def available(self) -> bool:
        """False from an operation's failure until one succeeds again."""
        return self._down_since is None

    async def run(
        self,
        remote: Callable[[], Awaitable[T]],
        local: Callable[[], Awaitable[T]],
        *,
        admission: bool,
    ) -> T:
        """`remote()` within the timeout; while Redis is away, `local()` or the 503 (see the module doc)."""
        if self._down_since is not None:
            now = self.clock()
            if now < self._retry_at:
                return await self._without_redis(local, admission)
            self._retry_at = now + self.retry_interval  # this operation checks; the others need not wait
        try:
            with anyio.fail_after(self.timeout):
                result = await remote()
        except Exception as exc:
            self.failures += 1
            self._went_away(exc)
            return await self._without_redis(local, admission)
        if self._down_since is not None:
            self._came_back()
        return result

    async def _without_redis(self, local: Callable[[], Awaitable[T]], admission: bool) -> T:
        self.local += 1
        if admission and self.on_error == "closed":
            wait = max(self._retry_at - self.clock(), 0.0)
            raise StateUnavailableError(
                "The gateway's shared state store is not answering; try again shortly.", retry_after=wait
            )
        return await local()

    def _went_away(self, exc: Exception) -> None:
        now = self.clock()
        self._retry_at = now + self.retry_interval
        if self._down_since is not None:
            return
        self._down_since = now
        self.outages += 1
        what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        then = (
            "counting in this process's memory until it is back"
            if self.on_error == "open"
            else "refusing requests with 503 until it is back"
        )
        logger.warning("routemw: Redis is not answering (%s); state.on_error=%s: %s", what, self.on_error, then)

    def _came_back(self) -> None:
        assert self._down_since is not None
        away = self.clock() - self._down_since
        self._down_since = None
        logger.warning("routemw: Redis answers again after %.1fs away; shared state is in use again", away)
