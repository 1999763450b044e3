"""Writing replies as ASGI messages: JSON bodies, error envelopes, and SSE streams.

`send_stream` is where the response commits: its `http.response.start` is the point after which
nothing can be retried, so any later failure is written in-band as an OpenAI error event
(`data: {"error": {...}}`) and the stream ends without `[DONE]`, so no client mistakes a broken
answer for a finished one. It never closes silently and never invents a `finish_reason`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import anyio
import orjson

from ..errors import RouteMWError
from ..reply import Stream
from .asgi import Send
from .sse import encode_comment, encode_data

__all__ = ["error_payload", "send_error", "send_json", "send_stream"]

logger = logging.getLogger("routemw")

Redact = Callable[[str], str]

_DONE = b"data: [DONE]\n\n"
_PING = encode_comment("ping")
_INTERNAL = RouteMWError("The gateway failed to process the request.", code="internal_error")


def _header_list(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


async def send_json(send: Send, status: int, body: bytes, headers: Mapping[str, str]) -> None:
    raw_headers = _header_list(headers)
    raw_headers.append((b"content-type", b"application/json"))
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def error_payload(exc: RouteMWError, redact: Redact) -> bytes:
    envelope = exc.envelope()
    error = envelope["error"]
    for key in ("message", "param", "code"):  # upstream text can carry anything, keys included
        if isinstance(error[key], str):
            error[key] = redact(error[key])
    return orjson.dumps(envelope)


async def send_error(send: Send, exc: RouteMWError, headers: Mapping[str, str], redact: Redact) -> None:
    await send_json(send, exc.status_code, error_payload(exc, redact), {**headers, **exc.headers})


async def send_stream(
    send: Send, stream: Stream, headers: Mapping[str, str], *, keepalive: float, redact: Redact
) -> None:
    """Write `stream` as SSE ending in `[DONE]`, with keep-alive comments during silences."""
    raw_headers = _header_list(headers)
    raw_headers += [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"x-accel-buffering", b"no"),  # nginx and friends: do not buffer an event stream
    ]
    lock = anyio.Lock(fast_acquire=True)
    last_sent = time.monotonic()

    async def ping() -> None:
        nonlocal last_sent
        while True:
            await anyio.sleep(max(keepalive - (time.monotonic() - last_sent), 0.0))
            if time.monotonic() - last_sent >= keepalive:
                async with lock:
                    try:
                        await send({"type": "http.response.body", "body": _PING, "more_body": True})
                    except OSError:  # the client left (ASGI 2.4 servers raise here)
                        return
                    last_sent = time.monotonic()

    tail: bytes | None = _DONE
    try:
        await send({"type": "http.response.start", "status": 200, "headers": raw_headers})  # COMMIT POINT
        async with anyio.create_task_group() as tg:
            if keepalive > 0:
                tg.start_soon(ping)
            try:
                async for chunk in stream:
                    async with lock:
                        await send(
                            {"type": "http.response.body", "body": encode_data(chunk.encode()), "more_body": True}
                        )
                        last_sent = time.monotonic()
            except RouteMWError as exc:
                tail = encode_data(error_payload(exc, redact))
            except OSError:
                tail = None  # the client left mid-stream; there is no one to tell
            except Exception:
                logger.exception("routemw: stream failed after the response started")
                tail = encode_data(error_payload(_INTERNAL, redact))
            tg.cancel_scope.cancel()
        if tail is not None:
            await send({"type": "http.response.body", "body": tail, "more_body": False})
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
