"""`RedisHealth`: the cooldowns and half-open probes of `routing.health`, shared by every instance.

The rules are `MemoryHealth`'s, and one parametrized test suite holds both to them. What
changes is where they run:

- **One round trip per operation.** `check` and `failure` are Lua scripts (redis-py's `Script`
  sends EVALSHA and loads the script again on NOSCRIPT), `success` is one DEL. Nothing is read
  in Python and written back, so two instances cannot both claim the probe or both miss a
  failure.
- **Redis's clock.** Scripts read `TIME`; an instance's own clock never enters, and `check`
  answers in seconds from now. (`time_offset` adds seconds to Redis's clock: a seam for tests
  that move time without waiting; it is 0 otherwise.)
- **One key per target**, a hash `{failures, cooldowns, until, probe}` at
  `<prefix>health:{<provider>/<model>}`: the braces make the target its own hash tag, so the
  scripts (one key each) run unchanged on Redis Cluster.
- **Keys expire on their own.** Every write sets the key to live until its cooldown ends plus
  `max_cooldown + probe_timeout`. A target that nobody asks about for that long comes back
  healthy, with its doubling forgotten; while requests keep failing it, the key is renewed.

While Redis is away the operations go to a local `MemoryHealth` or refuse, as `RedisGuard`
decides (`state.on_error`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal

from ..routing.health import MemoryHealth
from .guard import RedisGuard

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisHealth"]

# Shared by both scripts: `now` from Redis's clock (plus the offset in ARGV[1]), and the key's
# lifetime in milliseconds for a cooldown ending at `till`.
_PRELUDE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local function fmt(x) return string.format('%.6f', x) end
local function keep(key, till, idle)
  redis.call('PEXPIRE', key, math.ceil((math.max(till - now, 0) + idle) * 1000))
end
"""

# KEYS[1] target; ARGV: offset, probe_timeout, idle.
# Returns nil when the target may be tried (claiming the probe when half-open), else the wait.
_CHECK: Final = (
    _PRELUDE
    + """
local state = redis.call('HMGET', KEYS[1], 'until', 'probe')
local till = tonumber(state[1]) or 0
if till == 0 then return false end
if now < till then return fmt(till - now) end
local probe = tonumber(state[2]) or 0
if now < probe then return fmt(probe - now) end
local probe_timeout = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'probe', fmt(now + probe_timeout))
keep(KEYS[1], now + probe_timeout, tonumber(ARGV[3]))
return false
"""
)

# KEYS[1] target; ARGV: offset, retry_after (-1: none), threshold, cooldown, max_cooldown,
# long_retry_after, idle.
_FAILURE: Final = (
    _PRELUDE
    + """
local state = redis.call('HMGET', KEYS[1], 'failures', 'cooldowns', 'until')
local failures = tonumber(state[1]) or 0
local cooldowns = tonumber(state[2]) or 0
local till = tonumber(state[3]) or 0
local retry_after = tonumber(ARGV[2])
local threshold, cooldown, max_cooldown = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local idle = tonumber(ARGV[7])
local long_wait = retry_after >= 0 and retry_after >= tonumber(ARGV[6])
if now < till then
  -- Already cooling: attempts that were in flight must not escalate it; a long hint may extend it.
  if long_wait then
    local extended = now + math.min(retry_after, max_cooldown)
    if extended > till then
      redis.call('HSET', KEYS[1], 'until', fmt(extended))
      keep(KEYS[1], extended, idle)
    end
  end
  return false
end
failures = failures + 1
if till ~= 0 or long_wait or failures >= threshold then
  local period = math.min(cooldown * 2 ^ cooldowns, max_cooldown)
  if long_wait then period = math.min(math.max(period, retry_after), max_cooldown) end
  redis.call('HSET', KEYS[1], 'failures', 0, 'cooldowns', cooldowns + 1, 'until', fmt(now + period), 'probe', 0)
  keep(KEYS[1], now + period, idle)
else
  redis.call('HSET', KEYS[1], 'failures', failures)
  keep(KEYS[1], now, idle)
end
return false
"""
)


class RedisHealth:
    """Health state in Redis, shared by every gateway instance on it; implements `HealthStore`.

    Pass `client` (a `redis.asyncio.Redis` of yours, or the gateway's) and a `prefix` for the
    keys. `guard` is shared with the other stores on the same Redis (the gateway passes its own);
    without one, this store gets its own with `on_error` and `timeout`. The health settings are
    `MemoryHealth`'s.
    """

    def __init__(
        self,
        *,
        client: Redis,
        prefix: str = "routemw:",
        guard: RedisGuard | None = None,
        on_error: Literal["open", "closed"] = "open",
        timeout: float = 0.25,
        threshold: int = 3,
        cooldown: float = 5.0,
        max_cooldown: float = 300.0,
        long_retry_after: float = 30.0,
        probe_timeout: float = 60.0,
        time_offset: Callable[[], float] | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.guard = guard if guard is not None else RedisGuard(on_error=on_error, timeout=timeout)
        self.threshold = threshold
        self.cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.long_retry_after = long_retry_after
        self.probe_timeout = probe_timeout
        self._offset = time_offset
        self._idle = max_cooldown + probe_timeout
        self._check: Any = client.register_script(_CHECK)
        self._failure: Any = client.register_script(_FAILURE)
        self._local = self._new_local()
        self._local_outage = self.guard.outages

    def _new_local(self) -> MemoryHealth:
        return MemoryHealth(
            threshold=self.threshold,
            cooldown=self.cooldown,
            max_cooldown=self.max_cooldown,
            long_retry_after=self.long_retry_after,
            probe_timeout=self.probe_timeout,
        )

    @property
    def local(self) -> MemoryHealth:
        """The stand-in used while Redis is away: a fresh one for each outage."""
        if self._local_outage != self.guard.outages:
            self._local, self._local_outage = self._new_local(), self.guard.outages
        return self._local

    def key(self, target: str) -> str:
        return f"{self.prefix}health:{{{target}}}"

    def _now_offset(self) -> float:
        return 0.0 if self._offset is None else self._offset()

    async def check(self, key: str) -> float | None:
        async def remote() -> float | None:
            wait = await self._check(keys=[self.key(key)], args=[self._now_offset(), self.probe_timeout, self._idle])
            return None if wait is None else float(wait)

        return await self.guard.run(remote, lambda: self.local.check(key), admission=True)

    async def success(self, key: str) -> None:
        async def remote() -> None:
            await self.client.delete(self.key(key))

        await self.guard.run(remote, lambda: self.local.success(key), admission=False)

    async def failure(self, key: str, *, retry_after: float | None = None) -> None:
        async def remote() -> None:
            args = [
                self._now_offset(),
                -1 if retry_after is None else retry_after,
                self.threshold,
                self.cooldown,
                self.max_cooldown,
                self.long_retry_after,
                self._idle,
            ]
            await self._failure(keys=[self.key(key)], args=args)

        await self.guard.run(remote, lambda: self.local.failure(key, retry_after=retry_after), admission=False)
