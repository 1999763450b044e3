"""What a pipeline returns: a whole completion, or a stream of chunks already started.

Both carry their JSON as a dict plus, when the dict is exactly what an upstream sent, the
upstream's own bytes, so a passthrough never re-encodes what it did not change. Code that
changes a payload builds a new object (`Chunk.replace`, `Completion.replace`), which drops the
bytes; editing `data` in place would leave the stale bytes to be sent, so don't.

`native` is the same answer in the client's own protocol when that is not OpenAI's and the
upstream spoke it (an Anthropic client served by an Anthropic route): `data` stays the OpenAI
shape every middleware reads, and the door sends `native` as it is. `replace` drops it too, so a
middleware that changes an answer is never bypassed by stale native bytes: the door renders a
replaced completion from `data`, and leaves a replaced chunk of a passthrough stream out, since
it cannot be placed in the upstream's own event sequence (see `routemw.doors.messages.events`).
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
    native: bytes | None = field(default=None, repr=False)

    def encode(self) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.data)

    def replace(self, data: dict[str, Any]) -> Completion:
        return Completion(data=data, headers=dict(self.headers))


@dataclass(frozen=True, slots=True)
class Chunk:
    """One `chat.completion.chunk` event."""

    data: dict[str, Any]
    raw: bytes | None = field(default=None, repr=False)
    native: bytes | None = field(default=None, repr=False)  # the event, framed, in the client's protocol

    def encode(self) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.data)

    def replace(self, data: dict[str, Any]) -> Chunk:
        return Chunk(data=data)


class Stream:
    """A chunk stream whose first meaningful chunk has already arrived.

    Returning a `Stream` from the pipeline is the promise that the upstream answered: the
    gateway commits (sends `http.response.start`) as soon as it gets one. Chunks travel in
    batches, one per upstream read, so the gateway can write a burst in one go; iterating the
    stream itself gives the chunks one by one. The first batch (`head`) holds everything up to
    and including the first meaningful chunk. Iteration raises a `RouteMWError` if the upstream
    fails later; the gateway turns that into an in-band error event. `aclose()` releases the
    upstream connection and is idempotent.
    """

    __slots__ = ("_aclose", "_batches", "_closed", "_head", "headers")

    def __init__(
        self,
        head: Iterable[Chunk],
        batches: AsyncIterator[list[Chunk]],
        *,
        aclose: Callable[[], Awaitable[None]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._head = list(head)
        self._batches = batches
        self._aclose = aclose
        self._closed = False
        self.headers: dict[str, str] = headers if headers is not None else {}

    async def batches(self) -> AsyncIterator[list[Chunk]]:
        """The chunks as they arrived together: the head first, then one list per upstream read."""
        if self._head:
            head, self._head = self._head, []
            yield head
        async for batch in self._batches:
            if batch:
                yield batch

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        async for batch in self.batches():
            for chunk in batch:
                yield chunk

    def map(self, transform: Callable[[Chunk], Chunk | None]) -> Stream:
        """A stream of `transform(chunk)` for each chunk, skipping `None`; for middleware."""

        head, self._head = self._head, []

        async def mapped() -> AsyncIterator[list[Chunk]]:
            # The head is transformed here too, not in `map`: a transform that raises then does
            # so while the stream is being written, where the failure is reported in-band and the
            # upstream connection released, instead of in the middleware that owns nothing yet.
            if head:
                yield [out for out in map(transform, head) if out is not None]
            async for batch in self._batches:
                yield [out for out in map(transform, batch) if out is not None]

        return Stream((), mapped(), aclose=self.aclose, headers=self.headers)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        aclose = getattr(self._batches, "aclose", None)
        try:
            if aclose is not None:
                await aclose()
        finally:
            if self._aclose is not None:
                await self._aclose()


Reply = Completion | Stream
