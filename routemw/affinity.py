"""Requests that continue state a provider holds go to that provider, and nowhere else.

A Responses API request may build on a response stored at the provider that made it
(`previous_response_id`) or on a stored conversation (`conversation`). Sent to another provider
(or another Azure resource), it would fail, or worse, be answered without its context. So the
gateway remembers which provider made each response id it relays, and a continuation is pinned:

- `AffinityMiddleware` (after the capability check, before limits and fallback) keeps only the
  candidates of the provider that holds the state, so fallback never leaves it; retries and the
  other routes of that same provider remain. When that provider fails, the client gets its
  failure (a 5xx, or 429 for a rate limit), never an answer from elsewhere. A request whose
  state the store does not know (made before this gateway relayed it, or expired) is pinned to
  the provider of the model's first candidate, and remembered there.
- When the provider answers, the id of its answer (`response:<id>`) and the conversation used
  (`conversation:<id>`) are remembered with that provider's name, unless the request said
  `store: false` (then there is nothing to continue from, and such a request falls back freely).

Which fields carry the state is the door's business (`ChatRequest.affinity`, keys
`response:<id>` and `conversation:<id>`); this module only knows keys and provider names.
The store is a small protocol: `MemoryAffinity` (this process; entries live `ttl` seconds, the
oldest dropped past `max_entries`) or `routemw.state.RedisAffinity` (one `SET ... EX` per answer,
one `GET` per continuation), so every instance on one Redis shares the pins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final, Protocol

from .errors import InvalidRequestError, echo
from .pipeline import Call, Handler
from .reply import Chunk, Completion, Reply, Stream

__all__ = ["DEFAULT_TTL", "AffinityMiddleware", "AffinityStore", "MemoryAffinity"]

logger = logging.getLogger("routemw")

DEFAULT_TTL: Final = 30 * 24 * 3600.0  # OpenAI keeps stored responses for 30 days
_PARAMS: Final = {"response": "previous_response_id", "conversation": "conversation"}


class AffinityStore(Protocol):
    """Which provider holds a piece of state, by key."""

    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, provider: str) -> None: ...


class MemoryAffinity:
    """Pins in this process's memory, each for `ttl` seconds; at most `max_entries`, oldest dropped first."""

    def __init__(
        self, *, ttl: float = DEFAULT_TTL, max_entries: int = 1_000_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[str, float]] = {}  # insertion order is age order

    async def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            del self._entries[key]
            return None
        return entry[0]

    async def set(self, key: str, provider: str) -> None:
        self._entries.pop(key, None)
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (provider, self.clock() + self.ttl)


class AffinityMiddleware:
    """Pins continuations to their provider and remembers who made each answer (see the module doc)."""

    def __init__(self, store: AffinityStore) -> None:
        self.store = store

    async def __call__(self, call: Call, next: Handler) -> Reply:
        affinity = call.request.affinity
        if affinity is None:
            return await next(call)
        if affinity.continues:
            await self._pin(call, affinity.continues)
        reply = await next(call)
        target = call.target
        if not affinity.remember or target is None:
            return reply
        provider = target.provider.name

        async def remember(answer_id: str | None) -> None:
            keys = [f"response:{answer_id}"] if answer_id else []
            keys += [key for key in affinity.continues if key.startswith("conversation:")]
            try:
                for key in keys:
                    await self.store.set(key, provider)
            except Exception:
                logger.exception("routemw: request %s: could not remember the provider of its answer", call.request_id)

        if isinstance(reply, Completion):
            answer_id = reply.data.get("id")
            await remember(answer_id if isinstance(answer_id, str) else None)
            return reply
        return _remembering(reply, remember)

    async def _pin(self, call: Call, keys: tuple[str, ...]) -> None:
        holder: str | None = None
        for key in keys:
            holder = await self.store.get(key)
            if holder is not None:
                break
        if holder is None:
            if not call.candidates:
                return
            holder = call.candidates[0].provider.name  # unknown here: its first route's provider
        kept = [target for target in call.candidates if target.provider.name == holder]
        if not kept:
            kind, _, value = keys[0].partition(":")
            param = _PARAMS.get(kind, kind)
            raise InvalidRequestError(
                f"'{echo(value)}' ({param}) is held by a provider that model '{echo(call.request.model)}' has no "
                "route to; continue it with a model served there.",
                param=param,
                code="invalid_value",
            )
        skipped = [target for target in call.candidates if target.provider.name != holder]
        call.skipped += [(target, f"the continued state is held by provider {holder}") for target in skipped]
        call.candidates = kept


def _remembering(stream: Stream, remember: Callable[[str | None], Awaitable[None]]) -> Stream:
    """`stream`, remembering the id of the first chunk that has one as it passes."""
    source = stream.batches()

    async def batches() -> AsyncIterator[list[Chunk]]:
        pending = True
        async for batch in source:
            if pending:
                answer_id = next((c.data.get("id") for c in batch if isinstance(c.data.get("id"), str)), None)
                if answer_id:
                    pending = False
                    await remember(answer_id)
            yield batch

    return Stream((), batches(), aclose=stream.aclose, headers=stream.headers)
