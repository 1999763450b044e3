"""The Redis client routemw opens for `state.redis`; redis-py is imported only from here, and only then.

A gateway without `state.redis` never imports redis, so the core install does not need it; one
with it and without the package fails at startup with the command that installs it.

The client is pinned to RESP2 (`protocol=2`): redis-py 8 made RESP3 its default, and the shape
of some replies differs between the two, so a client upgrade must not change what the stores
read. It makes one immediate retry on a broken connection (a pooled connection that a Redis
restart closed), not the default backoff series: while Redis is away, `RedisGuard` decides what
happens, and waiting inside the client would only hold requests longer.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["EXTRA_HINT", "ping", "redis_client"]

EXTRA_HINT = "pip install 'routemw[redis]'"


def redis_client(url: str, *, timeout: float) -> Redis:
    """A client for `url` (redis://, rediss://, unix://) whose socket waits are bounded by `timeout`."""
    try:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:
        raise ConfigError([f"state.redis: the Redis client is not installed; {EXTRA_HINT}"]) from None
    try:
        client: Redis = Redis.from_url(
            url,
            protocol=2,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
    except ValueError as exc:
        # redis-py's message names the part it could not read, not the URL (which may hold a password).
        raise ConfigError([f"state.redis.url: not a usable Redis URL: {exc}"]) from None
    return client


async def ping(client: Any) -> float:
    """Seconds one PING took; raises whatever the client raised (bound it with a timeout)."""
    start = time.perf_counter()
    await client.ping()
    return time.perf_counter() - start
