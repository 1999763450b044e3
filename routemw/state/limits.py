"""`RedisLimits`: rate limits, concurrency, quotas and budgets counted in Redis, shared by every instance.

The rules are `MemoryLimitStore`'s (one parametrized suite holds both to them); what changes is
where they run.

- **One round trip per operation.** `admit`, `reconcile`, `release` and `inspect` each send one
  Lua script (`limits_script`, loaded once; redis-py's `Script` re-sends it on NOSCRIPT) with
  every claim of the request: all of a request's scopes are checked, and applied only if all
  pass, in one atomic step. Nothing is read in Python and written back.
- **Redis's clock.** The script reads `TIME`; what comes back is relative (seconds until).
  Calendar periods are computed inside the script from that time. (`clock` replaces `TIME`
  with a fixed epoch time passed in: a seam for tests that move time without waiting.)
- **Keys** are `<prefix><claim key>`, i.e. `routemw:{acct:team-a}:rpm`,
  `routemw:{model:gpt-4o}:concurrency`, `routemw:{route:openai/gpt-4o}:tpm`, plus
  `...:budget` (a hash) and `...:budget:holds` (a zset). The group in braces is the Redis
  Cluster hash tag. Every key expires on its own (see `limits_script`): nothing grows without
  bound and no sweeper runs.
- **Leases.** A concurrency slot and a quota or budget hold belong to a lease and expire
  `lease_time` seconds after they were taken or last renewed. This store renews its own
  leases: it knows each one from `admit` to its `reconcile`/`release`, and one background task
  renews all of them every third of the lease time in one script call. A stream that runs for
  an hour, or a completion waiting on a slow upstream, keeps its slot; an instance that is
  killed stops renewing, and its slots free themselves within `lease_time` (its holds are then
  charged in full, as a reply without reported usage is). The renewal lives here rather than in
  the stream wrapper because the store is what makes leases expire: the memory store, whose
  leases cannot outlive their process, pays nothing, and the `LimitStore` protocol is unchanged.
  `renew()` is public for a host that wants to drive it itself.

**Atomicity and Redis Cluster.** A request's claims span groups: the caller's account, the
public model (shared by every account) and, separately, a route. On one Redis server (or a
primary with replicas, or Sentinel) the script takes all their keys and is fully atomic. On
Cluster a script may only touch keys of one hash slot, and a model's counters cannot live
under every account's tag at once (they are one counter shared by all accounts), so no key
layout makes key and model limits one atomic step on Cluster. With a `RedisCluster` client
(or `cluster=True`), each operation therefore runs one script per group, in the order given
(the account first); a group that refuses makes the store roll back the groups already
applied (a compensating `rollback`, which also returns their non-refundable `rpm` request,
since the request never started) and only checks the rest for the refusal's answer. The
trade-off: an admission costs one round trip per group instead of one; between the first
group's apply and the rollback, a concurrent request may see the first group's reservation
and be refused although the request that held it is refused too (a spurious refusal, never an
overshoot); and if Redis fails between two groups, the first group's reservation is not rolled
back but expires with its lease (slots, holds) or its window (rates). Within one group every
step stays atomic, so a key's own `rpm`, `tpm`, `concurrency` and budget never overshoot.

While Redis is away each operation goes to a local `MemoryLimitStore` or refuses, as the
shared `RedisGuard` decides (`state.on_error`). A lease is settled where it was admitted: one
admitted locally during an outage is reconciled in that local store even if Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..limits.store import Admission, Claim, Figures, MemoryLimitStore, Rate, Settlement, Slots, Standing
from .guard import RedisGuard
from .limits_script import SCRIPT

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisLimits"]

logger = logging.getLogger("routemw")

_Entry = tuple[Claim, str, int, str | None]  # claim, lease, actual, period


def _is_cluster(client: Any) -> bool:
    try:
        from redis.asyncio.cluster import RedisCluster
    except ImportError:  # pragma: no cover - the client exists, so redis does
        return False
    return isinstance(client, RedisCluster)


class RedisLimits:
    """Limits in Redis, shared by every gateway instance on it; implements `LimitStore`.

    Pass `client` (a `redis.asyncio.Redis`, or a `RedisCluster`) and a `prefix` for the keys.
    `guard` is shared with the other stores on the same Redis (the gateway passes its own);
    without one, this store gets its own with `on_error` and `timeout`. `lease_time` is how long
    a concurrency slot or a reservation outlives an instance that stopped renewing it.
    """

    def __init__(
        self,
        *,
        client: Redis | Any,
        prefix: str = "routemw:",
        guard: RedisGuard | None = None,
        on_error: Literal["open", "closed"] = "open",
        timeout: float = 0.25,
        lease_time: float = 60.0,
        cluster: bool | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the key prefix must not contain { or }: the group in braces is the hash tag")
        self.client = client
        self.prefix = prefix
        self.guard = guard if guard is not None else RedisGuard(on_error=on_error, timeout=timeout)
        self.lease_time = lease_time
        self.cluster = _is_cluster(client) if cluster is None else cluster
        self.clock = clock
        self._script: Any = client.register_script(SCRIPT)
        self._ttl = repr(float(lease_time))
        self._local = MemoryLimitStore()
        self._local_outage = self.guard.outages
        self._admitted_locally: dict[str, MemoryLimitStore] = {}  # lease -> the stand-in that admitted it
        self._live: dict[str, list[tuple[Claim, str | None]]] = {}  # leases holding slots or holds
        self._renewer: asyncio.Task[None] | None = None
        self._renewing = False

    # -- the stand-in while Redis is away ----------------------------------------------------

    @property
    def local(self) -> MemoryLimitStore:
        """The stand-in used while Redis is away: a fresh one for each outage."""
        if self._local_outage != self.guard.outages:
            self._local, self._local_outage = MemoryLimitStore(), self.guard.outages
        return self._local

    # -- LimitStore --------------------------------------------------------------------------

    async def admit(self, lease: str, claims: Sequence[Claim]) -> Admission:
        async def remote() -> Admission:
            if self.cluster:
                return await self._admit_by_group(lease, claims)
            reply = await self._call("admit", [(c, lease, 0, None) for c in claims])
            return Admission(reply[0] == b"1", claims, _figures(len(claims), reply, 1))

        async def local() -> Admission:
            store = self.local
            admission = await store.admit(lease, claims)
            if admission.admitted:
                self._admitted_locally[lease] = store
            return admission

        admission = await self.guard.run(remote, local, admission=True)
        if admission.admitted and lease not in self._admitted_locally:
            self._track(lease, claims, admission.periods)
        return admission

    async def reconcile(self, lease: str, settlements: Sequence[Settlement]) -> None:
        self._forget(lease)
        store = self._admitted_locally.pop(lease, None)
        if store is not None:
            await store.reconcile(lease, settlements)
            return
        entries = [(s.claim, lease, s.actual, s.period) for s in settlements]
        await self.guard.run(
            lambda: self._run("reconcile", entries), lambda: self.local.reconcile(lease, settlements), admission=False
        )

    async def release(self, lease: str, claims: Sequence[Claim], periods: Sequence[str | None]) -> None:
        self._forget(lease)
        store = self._admitted_locally.pop(lease, None)
        if store is not None:
            await store.release(lease, claims, periods)
            return
        entries = [(c, lease, 0, p) for c, p in zip(claims, periods, strict=True)]
        await self.guard.run(
            lambda: self._run("release", entries), lambda: self.local.release(lease, claims, periods), admission=False
        )

    async def inspect(self, claims: Sequence[Claim]) -> tuple[Standing, ...]:
        async def remote() -> tuple[Standing, ...]:
            entries = [(c, "", 0, None) for c in claims]
            if not self.cluster:
                return _standings(claims, await self._call("inspect", entries), 0)
            standings: list[Standing] = []
            for part in _groups(entries):
                standings += _standings([e[0] for e in part], await self._call("inspect", part), 0)
            return tuple(standings)

        return await self.guard.run(remote, lambda: self.local.inspect(claims), admission=True)

    # -- leases ------------------------------------------------------------------------------

    async def renew(self, leases: Sequence[str] | None = None) -> None:
        """Push back the expiry of the live leases' slots and holds (all of them, or `leases`)."""
        chosen = self._live if leases is None else {k: self._live[k] for k in leases if k in self._live}
        entries = [(claim, lease, 0, period) for lease, held in chosen.items() for claim, period in held]
        if not entries:
            return

        async def nothing() -> None:
            return None

        await self.guard.run(lambda: self._run("renew", entries), nothing, admission=False)

    def _track(self, lease: str, claims: Sequence[Claim], periods: Sequence[str | None]) -> None:
        held: list[tuple[Claim, str | None]] = [
            (c, p) for c, p in zip(claims, periods, strict=True) if not isinstance(c, Rate)
        ]
        if not held:
            return
        self._live[lease] = held
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_while_live())

    def _forget(self, lease: str) -> None:
        if self._live.pop(lease, None) is not None and not self._live:
            # Idle: stop the sleeping renewer rather than leave a task behind (it restarts on demand).
            task = self._renewer
            if task is not None and not self._renewing:
                task.cancel()
                self._renewer = None

    async def _renew_while_live(self) -> None:
        interval = self.lease_time / 3
        while self._live:
            await asyncio.sleep(interval)
            self._renewing = True
            try:
                await self.renew()
            except Exception:  # the guard has logged Redis away; anything else must not stop renewal
                logger.exception("routemw: renewing limit leases failed")
            finally:
                self._renewing = False

    async def aclose(self) -> None:
        """Stop the renewal task (it starts again with the next lease)."""
        task, self._renewer = self._renewer, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- one script call ---------------------------------------------------------------------

    async def _admit_by_group(self, lease: str, claims: Sequence[Claim]) -> Admission:
        """Cluster: one script per group, rolling back the groups applied when a later one refuses."""
        entries: list[_Entry] = [(c, lease, 0, None) for c in claims]
        parts = _groups(entries)
        figures: list[Figures] = []
        ordered: list[Claim] = []  # the claims in the order of `figures` (grouped)
        applied: list[list[_Entry]] = []
        for index, part in enumerate(parts):
            reply = await self._call("admit", part)
            ordered += [e[0] for e in part]
            figures += _figures(len(part), reply, 1)
            if reply[0] == b"1":
                applied.append(part)
                continue
            periods = {id(c): f[5] for c, f in zip(ordered, figures, strict=True)}
            for done in applied:
                await self._call("rollback", [(c, lease, 0, periods[id(c)]) for c, _, _, _ in done])
            for rest in parts[index + 1 :]:
                ordered += [e[0] for e in rest]
                figures += _figures(len(rest), await self._call("check", rest), 1)
            return Admission(False, ordered, figures)
        return Admission(True, ordered, figures)

    async def _run(self, op: str, entries: Sequence[_Entry]) -> None:
        if not self.cluster:
            await self._call(op, entries)
            return
        for part in _groups(entries):
            await self._call(op, part)

    async def _call(self, op: str, entries: Sequence[_Entry]) -> list[bytes]:
        keys: list[str] = []
        parts: list[str] = []
        prefix = self.prefix
        for claim, lease, actual, period in entries:
            key = prefix + claim.key
            keys.append(key)
            if isinstance(claim, Rate):
                refundable = "1" if claim.refundable else "0"
                parts.append(f"r\x1f{lease}\x1f{claim.limit}\x1f{claim.amount}\x1f{claim.window!r}\x1f{refundable}\x1f")
            elif isinstance(claim, Slots):
                parts.append(f"s\x1f{lease}\x1f{claim.limit}\x1f0\x1f\x1f0\x1f")
            else:
                keys.append(key + ":holds")
                parts.append(f"q\x1f{lease}\x1f{claim.limit}\x1f{claim.amount}\x1f{claim.period}\x1f0\x1f")
            parts.append(f"{actual}\x1f{period or ''}\x1f\x1e")
        now = "" if self.clock is None else repr(self.clock())
        reply: Any = await self._script(keys=keys, args=[op, now, self._ttl, "".join(parts)])
        return reply.split(b"\x1f") if isinstance(reply, bytes) else []


def _groups(entries: Sequence[_Entry]) -> list[list[_Entry]]:
    """Entries split by hash-tag group, groups in the order they first appear."""
    parts: dict[str, list[_Entry]] = {}
    for entry in entries:
        parts.setdefault(entry[0].group, []).append(entry)
    return list(parts.values())


def _figures(count: int, reply: Sequence[bytes], start: int) -> list[Figures]:
    """The script's six fields per claim, from `start`, as `Figures`."""
    figures: list[Figures] = []
    for index in range(count):
        ok, remaining, used, reset, retry, period = reply[start + 6 * index : start + 6 * index + 6]
        figures.append(
            (
                ok == b"1",
                int(remaining),
                int(used),
                float(reset) if reset else None,
                float(retry) if retry else None,
                period.decode() if period else None,
            )
        )
    return figures


def _standings(claims: Sequence[Claim], reply: Sequence[bytes], start: int) -> tuple[Standing, ...]:
    return tuple(Standing(c, *f) for c, f in zip(claims, _figures(len(claims), reply, start), strict=True))
