"""Draining: how a gateway ends the requests it has in flight when its server shuts down.

The server decides when to stop (a signal, an orchestrator); the gateway decides how each of its
requests ends, because only it knows where each one stands against the commit point:

- From the start of the drain, new requests are refused with a 503 `server_shutting_down`
  (servers close their listening sockets, but a request can still arrive on an open connection).
- Requests in flight get up to the deadline to finish on their own.
- At the deadline the rest are interrupted where they wait. One still before the commit point
  (reading its body, waiting for an upstream) answers 503 `server_shutting_down`; a stream
  already started gets that error as its in-band event and ends, as any failure after the commit
  point does. Either way the upstream request is cancelled and released, and nothing is logged
  as a crash: the server never has to cut a request itself (which closes streams mid-body and
  logs a traceback each).

An interrupt is a cancellation of the request's own task, limited to the regions the gateway
marks with `async with interrupt:` and turned into `ServerShuttingDownError` where the region
ends, the way `asyncio.timeout` turns its cancellation into `TimeoutError`. It is a small class
rather than an `asyncio.timeout` per region because it is entered two or three times by every
request, and it costs a fraction of one (no timer handle, no state machine, reusable). Off
asyncio (trio), each region is an anyio cancel scope instead, with the same behaviour.

Nothing here knows the server: `routemw serve` starts `Gateway.drain()` from uvicorn's shutdown
(see `routemw.serve`), and any other server or host can call it the same way.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Final

import anyio

from .errors import ServerShuttingDownError

# After the deadline, how long the interrupted requests get to write their last message. They
# end at once unless a client has stopped reading; the drain does not wait on such a client.
_LAST_WORDS: Final = 1.0


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None  # not on asyncio


class Interrupt:
    """One request's interruptible regions: `async with interrupt:` raises `ServerShuttingDownError`
    out of the block if the drain interrupts it while it runs, or at once if it already has.

    Reusable: a request enters it around each stretch it may be stopped in, one after another.
    """

    __slots__ = ("_cancelled", "_cancelling", "_scope", "_task", "fired")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        """`task` runs the request; None (off asyncio) makes each region an anyio cancel scope."""
        self._task = task
        self._cancelling = -1  # the task's cancel count when the region was entered; -1: outside
        self._cancelled = False  # this interrupt cancelled the task, and has not taken that back
        self._scope: anyio.CancelScope | None = None
        self.fired = False

    async def __aenter__(self) -> None:
        if self.fired:
            raise ServerShuttingDownError()
        if self._task is not None:
            self._cancelling = self._task.cancelling()
        else:
            self._scope = anyio.CancelScope()
            self._scope.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            cancelling, self._cancelling = self._cancelling, -1
            if self._cancelled:
                self._cancelled = False
                # Ours to absorb only if no one else asked to cancel the task meanwhile (the
                # server, a disconnect watch): theirs must go on up. `asyncio.timeout` does the same.
                if self._task.uncancel() <= cancelling and exc_type is asyncio.CancelledError:
                    raise ServerShuttingDownError() from None
            return
        scope, self._scope = self._scope, None
        assert scope is not None
        if scope.__exit__(exc_type, exc, tb) and scope.cancelled_caught:
            raise ServerShuttingDownError() from None

    def fire(self) -> None:
        """Interrupt the region running now, if any, and every one entered from now on."""
        if self.fired:
            return
        self.fired = True
        if self._task is not None:
            if self._cancelling >= 0:
                self._cancelled = True
                self._task.cancel()
        elif self._scope is not None:
            self._scope.cancel()


class InFlight:
    """The requests a gateway is working on, and the drain that ends them."""

    __slots__ = ("_active", "_idle", "closing")

    def __init__(self) -> None:
        self.closing = False  # draining: new requests are refused
        self._active: set[Interrupt] = set()
        self._idle: anyio.Event | None = None  # set when the last request leaves, during a drain

    def enter(self) -> Interrupt:
        """Count in the request running in this task; `leave` it when the request is over."""
        interrupt = Interrupt(_current_task())
        self._active.add(interrupt)
        return interrupt

    def leave(self, interrupt: Interrupt) -> None:
        self._active.discard(interrupt)
        if self._idle is not None and not self._active:
            self._idle.set()

    async def drain(self, grace: float) -> None:
        """Refuse new requests, wait up to `grace` seconds for those in flight, then interrupt the rest."""
        self.closing = True
        with anyio.move_on_after(grace):
            await self._wait_idle()
        for interrupt in list(self._active):
            interrupt.fire()
        with anyio.move_on_after(_LAST_WORDS):
            await self._wait_idle()

    async def _wait_idle(self) -> None:
        if not self._active:
            return
        if self._idle is None or self._idle.is_set():
            self._idle = anyio.Event()
        await self._idle.wait()
