"""State shared between gateway processes through Redis (`state.redis`).

Importing this package does not import redis; only opening a client does (`redis_client`).
"""

from .affinity import RedisAffinity
from .client import ping, redis_client
from .guard import RedisGuard
from .health import RedisHealth
from .limits import RedisLimits

__all__ = ["RedisAffinity", "RedisGuard", "RedisHealth", "RedisLimits", "ping", "redis_client"]
