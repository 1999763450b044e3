"""When `routemw serve --workers N` must refuse: state that each worker would count on its own.

Each worker builds its own `Gateway` from the same config (`routemw.serve`), with its own
upstream pool and Redis client. Cooldowns and probes are each worker's own unless
`state.redis` is set, when all of them share it: a worker that has not seen a failure merely
tries a target once more. Limits, quotas and budgets are another matter: counted per worker, a
key's `rpm: 50` would admit 50 per worker, so N > 1 is refused while they are counted in memory.
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
    shared = (
        "state.redis shares cooldowns between processes, but this version still counts limits in each process's memory"
        if gateway.config.state.redis is not None
        else "state.redis is how processes share state (see docs/production.md), and it does not yet hold limits"
    )
    return (
        f"refusing --workers {workers}: limits, quotas or budgets are configured, and each worker would "
        f"enforce its own copy of them (a key's rpm: 50 would admit up to {50 * workers} a minute); "
        f"{shared}. Run one worker per gateway instance."
    )
