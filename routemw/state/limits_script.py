"""The one Lua script `RedisLimits` runs: every limit operation, on Redis's clock.

It mirrors `MemoryLimitStore`'s arithmetic line for line (one parametrized suite holds both
to it) and adds what a shared store needs: leases that expire, keys that expire, and UTC
calendar periods computed from `TIME` (pure integer arithmetic: Redis's Lua has no `os.date`).

Calling convention (one script for every operation, so one SHA is loaded and re-sent):

- `ARGV[1]` the operation: `admit` (check all, apply all only if all pass), `check` (admit's
  answer, applying nothing), `inspect`, `reconcile`, `release`, `rollback` (release that also
  refunds non-refundable rates: the request never started), `renew`;
- `ARGV[2]` epoch seconds to use instead of `TIME` (empty in production; a test seam);
- `ARGV[3]` the lease time in seconds;
- `ARGV[4]` the claims, one string: per claim 8 fields, each ended by `\x1f` (unit
  separator), and claims separated by `\x1e`: kind (`r` rate, `s` slots, `q` quota), lease,
  limit, amount, window (rate) or period kind (quota), refundable (`1`/`0`), actual, period id.
  One argument instead of eight per claim: redis-py packs each argument in Python, and that
  cost more client CPU than the script's whole run on the server;
- `KEYS`: one per rate or slots claim; two per quota (its ledger hash and its holds zset).

Times inside are seconds since `ORIGIN` (2023-11-14), not since 1970: a double then resolves
about 15 ns instead of 240 ns, which keeps GCRA exact at a tpm in the millions.

State per claim:

- rate: a string, the theoretical arrival time; it expires when the bucket is full again;
- slots: a zset lease -> expiry; pruned before every count, expires a lease time after the
  last lease was taken or renewed;
- quota: a hash `{period, committed, held, h:<lease>}` and a zset lease -> expiry of its holds.
  A hold whose lease expired (its instance died) is charged in full, as a reply without
  reported usage is; a later settlement of that lease finds no hold and changes nothing. The
  hash expires a lease time after its period ends (`total` never ends, and is one key per
  account); a new period replaces it.

Admission and check answer `admitted` then 6 fields per claim: ok, remaining, used,
reset_after ('' for none), retry_after ('' for none), period id. Inspect answers the same
without the leading flag. The fields travel as one string joined by `\x1f`, again because
one bulk string is far cheaper for the client to read than an array of them (and RESP2 would
truncate Lua numbers anyway).
"""

from __future__ import annotations

from typing import Final

__all__ = ["ORIGIN", "SCRIPT"]

ORIGIN: Final = 1_700_000_000

SCRIPT: Final = (
    """
local ORIGIN = """
    + str(ORIGIN)
    + """
local EPS, SLACK = 1e-9, 1e-6
local op = ARGV[1]
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2]) - ORIGIN
else
  local t = redis.call('TIME')
  now = (tonumber(t[1]) - ORIGIN) + tonumber(t[2]) / 1000000
end
local ttl = tonumber(ARGV[3])
local ttl_ms = math.ceil(ttl * 1000)

local function num(x) return string.format('%.17g', x) end
-- an integer argument for INCRBY and friends: never '-0' (a zero refund), which Redis refuses
local function int(x)
  local r = math.floor(x + 0.5)
  if r == 0 then return '0' end
  return string.format('%.0f', r)
end
local function out(x) if x == nil then return '' end return string.format('%.6f', x) end

-- UTC calendar (days since 1970-01-01 <-> civil date), as in Howard Hinnant's algorithms
local function civil(days)
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
-- the id of the period the absolute time `t` falls in, and its end (nil: never)
local function period_of(kind, t)
  if kind == 'total' then return 'total', nil end
  local days = math.floor(t / 86400)
  local y, m, d = civil(days)
  if kind == 'day' then return string.format('%04d-%02d-%02d', y, m, d), (days + 1) * 86400 end
  if kind == 'week' then
    local monday = days - (days + 3) % 7
    local iy = civil(monday + 3)
    local week = math.floor((monday + 3 - days_from_civil(iy, 1, 1)) / 7) + 1
    return string.format('%04d-W%02d', iy, week), (monday + 7) * 86400
  end
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return string.format('%04d-%02d', y, m), days_from_civil(ny, nm, 1) * 86400
end

-- rate: GCRA on a theoretical arrival time
local function rate_tat(key)
  local v = redis.call('GET', key)
  local tat = v and tonumber(v) or now
  if tat < now then tat = now end
  return tat
end
local function rate_set(key, tat)
  if tat <= now then
    redis.call('DEL', key)
  else
    redis.call('SET', key, num(tat), 'PX', math.ceil((tat - now) * 1000) + 1)
  end
end
local function rate_check(key, limit, window, amount)
  local interval = window / limit
  local tat = rate_tat(key)
  local after = tat + amount * interval
  if after - now <= window + EPS then
    local remaining = math.floor((window - (after - now)) / interval + SLACK)
    return true, math.max(remaining, 0), 0, after - now, nil, ''
  end
  local retry = nil
  if amount <= limit then retry = after - window - now end
  local remaining = math.floor((window - (tat - now)) / interval + SLACK)
  return false, math.max(remaining, 0), 0, tat - now, retry, ''
end
local function rate_adjust(key, limit, window, delta)
  if delta ~= 0 then rate_set(key, rate_tat(key) + delta * window / limit) end
end

-- slots: leases with an expiry
local function slots_check(key, lease, limit, reserve)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', num(now))
  local taken = redis.call('ZCARD', key)
  if reserve and not redis.call('ZSCORE', key, lease) then taken = taken + 1 end
  if taken <= limit then return true, math.max(limit - taken, 0), 0, nil, nil, '' end
  return false, 0, 0, nil, nil, ''
end

-- quota: a ledger per period; holds of expired leases are charged in full
local function ledger(L, H)
  local state = redis.call('HMGET', L, 'period', 'committed', 'held')
  if not state[1] then return nil, 0, 0 end
  local committed, held = tonumber(state[2]) or 0, tonumber(state[3]) or 0
  local expired = redis.call('ZRANGEBYSCORE', H, '-inf', num(now))
  if #expired > 0 then
    for _, lease in ipairs(expired) do
      local amount = tonumber(redis.call('HGET', L, 'h:' .. lease)) or 0
      redis.call('HDEL', L, 'h:' .. lease)
      committed, held = committed + amount, held - amount
    end
    redis.call('ZREMRANGEBYSCORE', H, '-inf', num(now))
    redis.call('HSET', L, 'committed', int(committed), 'held', int(held))
  end
  return state[1], committed, held
end
local function quota_check(L, H, kind, limit, amount, reserve)
  local period, ends = period_of(kind, now + ORIGIN)
  local stored, committed, held = ledger(L, H)
  if stored ~= period then committed, held = 0, 0 end
  local used = committed + held
  local ok = used + amount <= limit and (used < limit or not reserve)
  local remaining = limit - used
  if ok then remaining = remaining - amount end
  local reset = nil
  if ends then reset = math.max(ends - (now + ORIGIN), 0) end
  return ok, math.max(remaining, 0), committed, reset, nil, period
end
local function quota_hold(L, H, kind, lease, amount)
  local period, ends = period_of(kind, now + ORIGIN)
  if redis.call('HGET', L, 'period') ~= period then
    redis.call('DEL', L, H)
    redis.call('HSET', L, 'period', period, 'committed', 0, 'held', 0)
  end
  redis.call('HINCRBY', L, 'held', int(amount))
  redis.call('HINCRBY', L, 'h:' .. lease, int(amount))
  redis.call('ZADD', H, num(now + ttl), lease)
  redis.call('PEXPIRE', H, ttl_ms)
  if ends then redis.call('PEXPIRE', L, math.ceil((ends - (now + ORIGIN) + ttl) * 1000)) end
end
-- drop the lease's hold of `period`, and commit `actual` for it (nil: commit nothing)
local function quota_drop(L, H, lease, period, actual)
  local stored = ledger(L, H)
  if stored ~= period then return end
  local amount = redis.call('HGET', L, 'h:' .. lease)
  if not amount then return end
  redis.call('HDEL', L, 'h:' .. lease)
  redis.call('ZREM', H, lease)
  redis.call('HINCRBY', L, 'held', int(-tonumber(amount)))
  if actual then redis.call('HINCRBY', L, 'committed', int(actual)) end
end

-- the claims
local claims = {}
local k = 1
for record in string.gmatch(ARGV[4], '[^\\30]+') do
  local f = {}
  for field in string.gmatch(record, '([^\\31]*)\\31') do f[#f + 1] = field end
  local c = {
    kind = f[1], lease = f[2], limit = tonumber(f[3]), amount = tonumber(f[4]), param = f[5],
    refundable = f[6] == '1', actual = tonumber(f[7]), period = f[8], key = KEYS[k],
  }
  if c.kind == 'q' then c.holds = KEYS[k + 1]; k = k + 2 else k = k + 1 end
  claims[#claims + 1] = c
end

local function check(c, reserve)
  local amount = reserve and c.amount or 0
  if c.kind == 'r' then return rate_check(c.key, c.limit, tonumber(c.param), amount) end
  if c.kind == 's' then return slots_check(c.key, c.lease, c.limit, reserve) end
  return quota_check(c.key, c.holds, c.param, c.limit, amount, reserve)
end

if op == 'admit' or op == 'check' or op == 'inspect' then
  local reserve = op ~= 'inspect'
  local reply, all = {}, true
  for _, c in ipairs(claims) do
    local ok, remaining, used, reset, retry, period = check(c, reserve)
    all = all and ok
    reply[#reply + 1] = ok and '1' or '0'
    reply[#reply + 1] = int(remaining)
    reply[#reply + 1] = int(used)
    reply[#reply + 1] = out(reset)
    reply[#reply + 1] = out(retry)
    reply[#reply + 1] = period
  end
  if op == 'inspect' then return table.concat(reply, '\\31') end
  if all and op == 'admit' then
    for _, c in ipairs(claims) do
      if c.kind == 'r' then
        rate_set(c.key, rate_tat(c.key) + c.amount * tonumber(c.param) / c.limit)
      elseif c.kind == 's' then
        redis.call('ZADD', c.key, num(now + ttl), c.lease)
        redis.call('PEXPIRE', c.key, ttl_ms)
      else
        quota_hold(c.key, c.holds, c.param, c.lease, c.amount)
      end
    end
  end
  table.insert(reply, 1, all and '1' or '0')
  return table.concat(reply, '\\31')
end

for _, c in ipairs(claims) do
  if c.kind == 'r' then
    local window = tonumber(c.param)
    if op == 'reconcile' then
      rate_adjust(c.key, c.limit, window, c.actual - c.amount)
    elseif op == 'rollback' or (op == 'release' and c.refundable) then
      rate_adjust(c.key, c.limit, window, -c.amount)
    end
  elseif c.kind == 's' then
    if op == 'renew' then
      if redis.call('ZSCORE', c.key, c.lease) then
        redis.call('ZADD', c.key, num(now + ttl), c.lease)
        redis.call('PEXPIRE', c.key, ttl_ms)
      end
    else
      redis.call('ZREM', c.key, c.lease)
    end
  else
    if op == 'renew' then
      if redis.call('HGET', c.key, 'period') == c.period and redis.call('ZSCORE', c.holds, c.lease) then
        redis.call('ZADD', c.holds, num(now + ttl), c.lease)
        redis.call('PEXPIRE', c.holds, ttl_ms)
      end
    elseif op == 'reconcile' then
      quota_drop(c.key, c.holds, c.lease, c.period, c.actual)
    else
      quota_drop(c.key, c.holds, c.lease, c.period, nil)
    end
  end
end
return false
"""
)
