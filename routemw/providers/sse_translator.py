"""The shared half of every SSE stream translator: framing, and errors that come after chunks.

Subclasses say what one event means (`event`) and what the end of the stream means (`end`);
this class splits the bytes into events and keeps one promise: chunks produced before an
in-band upstream error in the same read still go out, and the error follows right after them
(`done` turns true so the reader asks for it at once instead of waiting for more bytes).

A line or event past `max_event_bytes` (8 MiB unless the dispatcher sets the configured
`upstream.max_event_bytes`) is refused with `UpstreamBodyError`, an `httpx.DecodingError`, which
the adapter classifies like any other body that is not its protocol; the same promise holds.
"""

from __future__ import annotations

from typing import Final

from ..config import UpstreamConfig
from ..errors import UpstreamError
from ..http.sse import EventTooLargeError, ServerSentEvent, SSEDecoder
from ..http.upstream import UpstreamBodyError
from ..reply import Chunk

__all__ = ["SSETranslator"]

_MAX_EVENT_BYTES: Final = UpstreamConfig().max_event_bytes


class SSETranslator:
    def __init__(self) -> None:
        self._decoder = SSEDecoder(max_event_bytes=_MAX_EVENT_BYTES)
        self._error: Exception | None = None
        self.finished = False  # subclasses set it when the upstream says the stream is over

    @property
    def max_event_bytes(self) -> int:
        """The longest SSE line or event accepted (`upstream.max_event_bytes`; the dispatcher sets it)."""
        return self._decoder.max_event_bytes or _MAX_EVENT_BYTES

    @max_event_bytes.setter
    def max_event_bytes(self, value: int) -> None:
        self._decoder.max_event_bytes = value

    @property
    def done(self) -> bool:
        return self.finished or self._error is not None

    def event(self, event: ServerSentEvent) -> list[Chunk]:
        raise NotImplementedError

    def end(self) -> list[Chunk]:
        """The chunks that end the stream, or `UpstreamError` when it ended unfinished."""
        raise NotImplementedError

    def feed(self, data: bytes) -> list[Chunk]:
        try:
            events = self._decoder.feed(data)
        except EventTooLargeError as exc:
            # The events before the oversized one still go out; the refusal follows them.
            chunks = self._convert(exc.events)
            if not chunks:
                raise _oversized(exc) from exc
            if self._error is None:
                self._error = _oversized(exc)
            return chunks
        return self._convert(events)

    def close(self) -> list[Chunk]:
        try:
            chunks = [] if self.done else self._convert(self._decoder.close())
        except EventTooLargeError as exc:
            raise _oversized(exc) from exc
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return chunks + self.end()

    def _convert(self, events: list[ServerSentEvent]) -> list[Chunk]:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        chunks: list[Chunk] = []
        for event in events:
            if self.finished:
                break
            try:
                chunks += self.event(event)
            except UpstreamError as exc:
                if not chunks:
                    raise
                self._error = exc
                break
        return chunks


def _oversized(exc: EventTooLargeError) -> UpstreamBodyError:
    return UpstreamBodyError(f"a stream event larger than {exc.limit} bytes (upstream.max_event_bytes)")
