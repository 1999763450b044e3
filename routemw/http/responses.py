"""Writing replies as ASGI messages: JSON bodies, error envelopes, and SSE streams.

`send_stream` is where the response commits: its `http.response.start` is the point after which
nothing can be retried, so any later failure is written in-band as an OpenAI error event
(`data: {"error": {...}}`) and the stream ends without `[DONE]`, so no client mistakes a broken
answer for a finished one. It never closes silently and never invents a `finish_reason`. A server
shutting down ends a stream the same way (`interrupt`, from `routemw.shutdown`).

That framing is OpenAI's. A door speaking another protocol passes a `StreamEncoder`, which owns
how batches, the end, an in-band error and a keep-alive look on its wire (Anthropic's named
events, say); the commit point, keep-alive timing, the interrupt, failure logging and release of
the stream stay here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol

import anyio
import orjson

from ..errors import RouteMWError, UpstreamError
from ..reply import Chunk, Stream
from .asgi import Send
from .headers import header_value
from .sse import encode_comment, encode_data

__all__ = ["INTERNAL_ERROR", "StreamEncoder", "error_payload", "send_error", "send_json", "send_stream"]

logger = logging.getLogger("routemw")

_DONE = b"data: [DONE]\n\n"
_PING = encode_comment("ping")
_UNINTERRUPTED: AbstractAsyncContextManager[None] = contextlib.nullcontext()
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 field names
INTERNAL_ERROR = RouteMWError("The gateway failed to process the request.", code="internal_error")


class StreamEncoder(Protocol):
    """One stream's wire framing, for a door whose protocol is not OpenAI's; may keep state."""

    @property
    def ping(self) -> bytes:
        """A keep-alive for long silences."""

    def batch(self, chunks: list[Chunk]) -> bytes:
        """The bytes for one batch of chunks (may be empty)."""

    def end(self) -> bytes:
        """What closes a stream that finished."""

    def error(self, exc: RouteMWError) -> bytes:
        """An in-band error after the commit point; the stream ends after it."""


def _header_list(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    # The values routemw builds are made safe where they are built (`http.headers`); this check
    # (one pass over all of them at once) is the net under what a user's middleware may have
    # set, so that no header can fail a response whose upstream call was already made.
    text = "".join([*headers, *headers.values()])
    if not (text.isascii() and text.isprintable()) or (" " in text and not all(map(_trimmed, headers.values()))):
        headers = {name: _safe(value) for name, value in headers.items() if _TOKEN.fullmatch(name)}
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def _trimmed(value: str) -> bool:
    return value == value.strip(" ")  # HTTP/1.1 (h11) refuses a value that starts or ends with a space


def _safe(value: str) -> str:
    return value if value.isascii() and value.isprintable() and _trimmed(value) else header_value(value)


async def send_json(send: Send, status: int, body: bytes, headers: Mapping[str, str]) -> None:
    raw_headers = _header_list(headers)
    raw_headers.append((b"content-type", b"application/json"))
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def error_payload(exc: RouteMWError) -> bytes:
    # Sent as it is: upstream text was scrubbed of credentials when the error was made, and
    # client input is only ever quoted short (see `errors`), never redacted.
    return orjson.dumps(exc.envelope())


async def send_error(send: Send, exc: RouteMWError, headers: Mapping[str, str]) -> None:
    await send_json(send, exc.status_code, error_payload(exc), {**headers, **exc.headers})


async def send_stream(
    send: Send,
    stream: Stream,
    headers: Mapping[str, str],
    *,
    keepalive: float,
    interrupt: AbstractAsyncContextManager[None] | None = None,
    encoder: StreamEncoder | None = None,
) -> None:
    """Write `stream` as SSE ending in `[DONE]`, with keep-alive comments during silences.

    Each batch of chunks (all that one upstream read produced) goes out as one body message, so
    a burst costs one write, not one per chunk. `interrupt` is entered around the body: a
    `RouteMWError` it raises (the server shutting down) ends the stream in-band like any other.
    `encoder` replaces OpenAI's framing.
    """
    raw_headers = _header_list(headers)
    raw_headers += [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"x-accel-buffering", b"no"),  # nginx and friends: do not buffer an event stream
    ]
    pinger = _Pinger(send, keepalive, encoder.ping if encoder is not None else _PING) if keepalive > 0 else None
    tail: bytes | None = _DONE
    try:
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})  # COMMIT POINT
        if pinger is not None:
            pinger.start()
        try:
            async with interrupt or _UNINTERRUPTED:
                async for batch in stream.batches():
                    if encoder is None:
                        body = b"".join([encode_data(chunk.encode()) for chunk in batch])
                    else:
                        body = encoder.batch(batch)
                        if not body:
                            continue
                    if pinger is None:
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                    else:
                        await pinger.send(body)
            if encoder is not None:
                tail = encoder.end()
        except RouteMWError as exc:
            _log_stream_failure(exc, headers)
            tail = encode_data(error_payload(exc)) if encoder is None else encoder.error(exc)
        except OSError:
            tail = None  # the client left mid-stream; there is no one to tell
        except Exception:
            request_id = headers.get("x-request-id")
            logger.exception("routemw: request %s: stream failed after the response started", request_id)
            tail = encode_data(error_payload(INTERNAL_ERROR)) if encoder is None else encoder.error(INTERNAL_ERROR)
        if pinger is not None:
            await pinger.stop()
        if tail is not None:
            with contextlib.suppress(OSError):  # the client left just before the end
                await send({"type": "http.response.body", "body": tail, "more_body": False})
    finally:
        with anyio.CancelScope(shield=True):
            if pinger is not None:
                await pinger.stop()
            await stream.aclose()


def _log_stream_failure(exc: RouteMWError, headers: Mapping[str, str]) -> None:
    """The same WARNING as a failure before the commit point (`FallbackMiddleware`), marked `in-band`.

    The response's own headers say which request and which target this was.
    """
    request_id = headers.get("x-request-id")
    status = exc.upstream_status if isinstance(exc, UpstreamError) else None
    logger.warning(
        "routemw: request %s: %s/%s failed (%s, %s): %s",
        request_id,
        exc.provider if isinstance(exc, UpstreamError) else headers.get("x-routemw-provider"),
        headers.get("x-routemw-route-model"),
        status if status is not None else "no response",
        "in-band",
        exc.code,
        extra={"request_id": request_id, "error_code": exc.code},
    )


class _Pinger:
    """Sends `: ping` when the stream has been silent for `interval` seconds.

    A timer checks for silence instead of a task that sleeps in a loop: on asyncio that is a
    `call_later` handle per stream rather than a task group (which measured at about 70
    microseconds per stream). The timer only starts a task in the rare case a ping is due, and
    a lock keeps that ping from interleaving with a body message.
    """

    __slots__ = ("_handle", "_interval", "_last", "_lock", "_loop", "_ping_body", "_send", "_stopped", "_task")

    def __init__(self, send: Send, interval: float, ping: bytes = _PING) -> None:
        self._send = send
        self._ping_body = ping
        self._interval = interval
        self._lock = anyio.Lock(fast_acquire=True)
        self._last = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not asyncio: streams go without keep-alive rather than without a loop
        self._handle = self._loop.call_later(self._interval, self._check)

    async def send(self, body: bytes) -> None:
        async with self._lock:
            await self._send({"type": "http.response.body", "body": body, "more_body": True})
            self._last = time.monotonic()

    def _check(self) -> None:
        assert self._loop is not None
        if self._stopped:
            return
        idle = time.monotonic() - self._last
        if idle < self._interval:
            delay = self._interval - idle
        else:
            # Due. A ping still in flight (a client reading slowly holds `send`) gets a whole
            # interval before the next look, instead of a busy check every millisecond.
            if self._task is None or self._task.done():
                self._task = self._loop.create_task(self._ping())
            delay = self._interval
        self._handle = self._loop.call_later(delay, self._check)

    async def _ping(self) -> None:
        async with self._lock:
            if self._stopped:
                return  # the stream ended while this ping waited for its turn
            try:
                await self._send({"type": "http.response.body", "body": self._ping_body, "more_body": True})
            except OSError:  # the client left (ASGI 2.4 servers raise here)
                self._stopped = True
                return
            self._last = time.monotonic()

    async def stop(self) -> None:
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()
        if self._task is not None and not self._task.done():
            # A ping being written finishes first, so the next message starts cleanly; one
            # still waiting for the lock sees `_stopped` and sends nothing.
            async with self._lock:
                pass
