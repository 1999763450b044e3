"""What a pipeline returns: a whole completion, or a stream of chunks already started.

Both carry their JSON as a dict plus, when the dict is exactly what an upstream sent, the
upstream's own bytes, so a passthrough never re-encodes what it did not change. Code that
changes a payload builds a new object (`Chunk.replace`, `Completion.replace`), which drops the
bytes; editing `data` in place would leave the stale bytes to be sent, so don't.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Chunk", "Completion", "Reply", "Stream"]


@dataclass(frozen=True, slots=True)
class Completion:
    """A non-streaming `chat.completion` object."""

    data: dict[str, Any]
    raw: bytes | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.data)

    def replace(self, data: dict[str, Any]) -> Completion:
        return Completion(data=data, headers=self.headers)


@dataclass(frozen=True, slots=True)
class Chunk:
    """One `chat.completion.chunk` event."""

    data: dict[str, Any]
    raw: bytes | None = field(default=None, repr=False)

    def encode(self) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.data)

    def replace(self, data: dict[str, Any]) -> Chunk:
        return Chunk(data=data)


class Stream:
    """A chunk stream whose first meaningful chunk has already arrived.

    Returning a `Stream` from the pipeline is the promise that the upstream answered: the
    gateway commits (sends `http.response.start`) as soon as it gets one. Chunks that came
    before the first meaningful one (a bare role chunk, say) are replayed from `head`.
    Iteration raises a `RouteMWError` if the upstream fails later; the gateway turns that into
    an in-band error event. `aclose()` releases the upstream connection and is idempotent.
    """

    __slots__ = ("_aclose", "_closed", "_head", "_rest", "headers")

    def __init__(
        self,
        head: Iterable[Chunk],
        rest: AsyncIterator[Chunk],
        *,
        aclose: Callable[[], Awaitable[None]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._head = list(head)
        self._rest = rest
        self._aclose = aclose
        self._closed = False
        self.headers: dict[str, str] = headers if headers is not None else {}

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        for chunk in self._head:
            yield chunk
        self._head.clear()
        async for chunk in self._rest:
            yield chunk

    def map(self, transform: Callable[[Chunk], Chunk | None]) -> Stream:
        """A stream of `transform(chunk)` for each chunk, skipping `None`; for middleware."""

        async def mapped() -> AsyncIterator[Chunk]:
            async for chunk in self._rest:
                out = transform(chunk)
                if out is not None:
                    yield out

        head = [out for out in map(transform, self._head) if out is not None]
        return Stream(head, mapped(), aclose=self.aclose, headers=self.headers)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        aclose = getattr(self._rest, "aclose", None)
        try:
            if aclose is not None:
                await aclose()
        finally:
            if self._aclose is not None:
                await self._aclose()


Reply = Completion | Stream
