"""`RedisAffinity`: which provider holds each stored response and conversation, shared by every instance.

One key per pin, `<prefix>pin:<key>` (`<key>` is `response:<id>` or `conversation:<id>`), holding
the provider's name: remembering is one `SET ... EX ttl`, looking up one `GET`. A key expires
on its own when its state would have (30 days by default, as OpenAI keeps stored responses).
While Redis is away the operations go to a local `MemoryAffinity`, or a lookup is refused with
503 under `state.on_error: closed` (it decides where a request goes, like an admission).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ..affinity import DEFAULT_TTL, MemoryAffinity
from .guard import RedisGuard

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisAffinity"]


class RedisAffinity:
    """Pins in Redis; implements `routemw.affinity.AffinityStore`."""

    def __init__(
        self,
        *,
        client: Redis,
        prefix: str = "routemw:",
        guard: RedisGuard | None = None,
        on_error: Literal["open", "closed"] = "open",
        timeout: float = 0.25,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        self.client: Any = client
        self.prefix = prefix
        self.guard = guard if guard is not None else RedisGuard(on_error=on_error, timeout=timeout)
        self.ttl = ttl
        self._local = MemoryAffinity(ttl=ttl)
        self._local_outage = self.guard.outages

    @property
    def local(self) -> MemoryAffinity:
        """The stand-in while Redis is away: a fresh one for each outage."""
        if self._local_outage != self.guard.outages:
            self._local, self._local_outage = MemoryAffinity(ttl=self.ttl), self.guard.outages
        return self._local

    def key(self, key: str) -> str:
        return f"{self.prefix}pin:{key}"

    async def get(self, key: str) -> str | None:
        async def remote() -> str | None:
            value = await self.client.get(self.key(key))
            return value.decode() if isinstance(value, bytes) else value

        return await self.guard.run(remote, lambda: self.local.get(key), admission=True)

    async def set(self, key: str, provider: str) -> None:
        async def remote() -> None:
            await self.client.set(self.key(key), provider, ex=max(1, round(self.ttl)))

        await self.guard.run(remote, lambda: self.local.set(key, provider), admission=False)
