"""Deadlines and disconnect cancellation, cheap enough for every request.

Each request needs two cancellation regions: its upstream attempt is bounded by a deadline,
and all its work is abandoned if the client disconnects. anyio's cancel scopes do this on any
backend, but each costs a backend lookup (sniffio, `current_task`) on entry and exit; profiled
on a passthrough request they were close to a third of the gateway's own time. On asyncio,
which is where uvicorn, hypercorn and most hosts run, `asyncio.timeout` does the same job
natively for a fraction of that, and one of them can be expired on demand (`reschedule`), which
is all a disconnect watcher needs. Other backends (trio) get anyio's scopes, same behaviour.

`deadline()` raises `TimeoutError` out of its block when it expires. `DisconnectWatch` ends its
block quietly when the client left (and says so in `disconnected`).

One limit of the asyncio path: anyio's `CancelScope(shield=True)` does not hold off these native
cancellations. The cleanup that runs under such shields in this package (releasing an upstream
response, closing a generator) does not suspend with the default transport, so nothing there
can be interrupted; a transport whose close does suspend may be cut short on a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

import anyio

from .http.asgi import Receive

__all__ = ["DisconnectWatch", "deadline"]


def _loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def deadline(seconds: float) -> contextlib.AbstractAsyncContextManager[Any]:
    """`async with deadline(seconds):` raises `TimeoutError` if the block runs longer.

    On asyncio this is `asyncio.timeout` itself, with no wrapper around it: it is entered for
    every upstream attempt, and each layer of indirection showed in the profile.
    """
    loop = _loop()
    if loop is not None:
        return asyncio.timeout_at(loop.time() + seconds)
    return _AnyioDeadline(seconds)


class _AnyioDeadline:
    __slots__ = ("_scope", "_seconds")

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._scope: contextlib.AbstractContextManager[Any] | None = None

    async def __aenter__(self) -> None:
        self._scope = anyio.fail_after(self._seconds)
        self._scope.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._scope is not None
        return self._scope.__exit__(exc_type, exc, tb)


class DisconnectWatch:
    """`async with DisconnectWatch(receive) as watch:` is cancelled when the client leaves.

    The block then ends quietly (the region swallows the cancellation it caused), and
    `watch.disconnected` is true. After the request body is read, the only message an ASGI
    server still delivers on `receive` is `http.disconnect`, so a watcher task waits for it.

    On asyncio the watcher starts only once the block has run for `grace` seconds: most of a
    fast request's cost of watching was the task itself (a fifth of the gateway's own time in
    a profile), and a request that ends sooner never needs one. A client that leaves earlier is
    still noticed, `grace` seconds late at most, because its disconnect stays queued.
    """

    __slots__ = ("_grace", "_group", "_loop", "_receive", "_task", "_timeout", "_timer", "disconnected")

    def __init__(self, receive: Receive, *, grace: float = 0.05) -> None:
        self._receive = receive
        self._grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeout: asyncio.Timeout | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._group: Any = None
        self.disconnected = False

    def _start(self) -> None:
        assert self._loop is not None
        self._task = self._loop.create_task(self._watch())

    async def __aenter__(self) -> DisconnectWatch:
        loop = _loop()
        if loop is not None:
            self._loop = loop
            self._timeout = asyncio.timeout(None)
            await self._timeout.__aenter__()
            if self._grace > 0:
                self._timer = loop.call_later(self._grace, self._start)
            else:
                self._start()
        else:
            self._group = anyio.create_task_group()
            await self._group.__aenter__()
            self._group.start_soon(self._watch)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        if self._timeout is not None:
            if self._timer is not None:
                self._timer.cancel()
            if self._task is not None:
                self._task.cancel()
            try:
                await self._timeout.__aexit__(exc_type, exc, tb)
                return None
            except TimeoutError:
                if self.disconnected:
                    return True  # we cancelled it; the client is gone and wants nothing more
                raise
        self._group.cancel_scope.cancel()
        try:
            return bool(await self._group.__aexit__(exc_type, exc, tb))
        except BaseExceptionGroup as group:
            # anyio wraps what the block raised; callers expect the exception itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    def _fire(self) -> None:
        self.disconnected = True
        if self._timeout is not None:
            self._timeout.reschedule(-1.0)  # a time already past: expires at the next await
        elif self._group is not None:
            self._group.cancel_scope.cancel()

    async def _watch(self) -> None:
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    self._fire()
                    return
        except Exception:
            return  # a server that fails `receive` has nothing more to tell us
