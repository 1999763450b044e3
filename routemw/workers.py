"""When `routemw serve --workers N` must refuse: state that each worker would count on its own.

Each worker builds its own `Gateway` from the same config (`routemw.serve`), with its own
upstream pool and Redis client. Cooldowns and probes are each worker's own unless
`state.redis` is set, when all of them share it: a worker that has not seen a failure merely
tries a target once more. Limits, quotas and budgets are another matter: counted per worker, a
key's `rpm: 50` would admit 50 per worker, so N > 1 is refused while they are counted in memory;
with `state.redis` they are counted in Redis, once for all workers.
"""

from __future__ import annotations

from .app import Gateway
from .limits import Limits
from .limits.store import MemoryLimitStore

__all__ = ["refusal"]


def refusal(gateway: Gateway, workers: int) -> str | None:
    """Why `gateway` must not run as `workers` processes, or None."""
    if not Limits.configured(gateway.config) or not isinstance(gateway.limits.store, MemoryLimitStore):
        return None
    return (
        f"refusing --workers {workers}: limits, quotas or budgets are configured and counted in each "
        f"process's memory, so each worker would enforce its own copy of them (a key's rpm: 50 would admit "
        f"up to {50 * workers} a minute); set state.redis to count them once for all workers (see docs/production.md), "
        "or run one worker per gateway instance."
    )
