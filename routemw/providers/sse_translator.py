"""The shared half of every SSE stream translator: framing, and errors that come after chunks.

Subclasses say what one event means (`event`) and what the end of the stream means (`end`);
this class splits the bytes into events and keeps one promise: chunks produced before an
in-band upstream error in the same read still go out, and the error follows right after them
(`done` turns true so the reader asks for it at once instead of waiting for more bytes).
"""

from __future__ import annotations

from ..errors import UpstreamError
from ..http.sse import ServerSentEvent, SSEDecoder
from ..reply import Chunk

__all__ = ["SSETranslator"]


class SSETranslator:
    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._error: UpstreamError | None = None
        self.finished = False  # subclasses set it when the upstream says the stream is over

    @property
    def done(self) -> bool:
        return self.finished or self._error is not None

    def event(self, event: ServerSentEvent) -> list[Chunk]:
        raise NotImplementedError

    def end(self) -> list[Chunk]:
        """The chunks that end the stream, or `UpstreamError` when it ended unfinished."""
        raise NotImplementedError

    def feed(self, data: bytes) -> list[Chunk]:
        return self._convert(self._decoder.feed(data))

    def close(self) -> list[Chunk]:
        chunks = [] if self.done else self._convert(self._decoder.close())
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
