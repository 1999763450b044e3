"""A fault upstream: a raw asyncio TCP server on 127.0.0.1 that answers each request with scripted bytes.

An HTTP library (even a fake one) cannot send what a broken upstream sends: a Content-Length that
lies, a body marked gzip that is not, a connection closed half-way through a header, an SSE line
with no end. This server writes exactly the bytes a `Fault` names, so the gateway's real transport
(aiohttp, as `routemw serve` uses it) meets them as it would in production.

Every connection reads one request (headers and body by Content-Length), records it, and plays
the fault's script: a list of `bytes` to write and `float` pauses, then either closes the
connection (`close=True`) or holds it open until the client leaves (`hang`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

__all__ = ["Fault", "FaultServer", "fault_server", "http_response", "sse_response"]

_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Error", 503: "Busy"}


@dataclass(frozen=True)
class Fault:
    """What one answer is made of: bytes to write and pauses, then close or hang."""

    script: Sequence[bytes | float]
    hang: bool = False


def http_response(
    status: int,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: Sequence[tuple[str, str]] = (),
    content_length: int | None = None,
) -> bytes:
    """A complete HTTP/1.1 response head and body; `content_length` may lie on purpose."""
    length = len(body) if content_length is None else content_length
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        f"content-type: {content_type}",
        f"content-length: {length}",
        "connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def sse_response(events: Sequence[bytes], *, headers: Sequence[tuple[str, str]] = ()) -> list[bytes]:
    """A streamed response with no Content-Length (closed when done), one write per event."""
    lines = ["HTTP/1.1 200 OK", "content-type: text/event-stream", "connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return [("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), *events]


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9)


def chunk_event(content: str | None, *, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


@dataclass
class FaultServer:
    """A running fault server: where it listens and what it was sent."""

    port: int
    faults: list[Fault]
    requests: list[bytes] = field(default_factory=list)
    _open: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.requests.append(head + await reader.readexactly(length))
            fault = self.faults[min(len(self.requests), len(self.faults)) - 1]
            for step in fault.script:
                if isinstance(step, float):
                    await asyncio.sleep(step)
                else:
                    writer.write(step)
                    await writer.drain()
            if fault.hang:
                await reader.read()  # until the gateway lets go
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def fault_server(*faults: Fault) -> AsyncIterator[FaultServer]:
    """Serve `faults` in order (the last one repeats) on a free loopback port."""
    state = FaultServer(port=0, faults=list(faults))
    server = await asyncio.start_server(state._serve, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for writer in list(state._open):  # a hanging answer ends with its connection
            writer.transport.abort()
        await server.wait_closed()
