"""`routemw serve --workers N`: N processes accepting on one listening socket.

uvicorn's supervisor binds the socket once and starts N workers (spawned, not forked, so no
event loop or connection is shared by accident); each builds its own `Gateway` from the same
config (`ROUTEMW_CONFIG`, set here for them) with its own upstream pool and Redis client, and
restarts a worker that dies. Cooldowns and probes are each worker's own unless `state.redis`
is set, when all of them share it: a worker that has not seen a failure merely tries a target
once more. Limits, quotas and budgets are another matter: counted per worker, a key's `rpm: 50`
would admit 50 per worker, so N > 1 is refused while they are counted in memory (`refusal`);
with `state.redis` they are counted in Redis, once for all workers.

Each worker stops as uvicorn stops a worker (its graceful-shutdown timeout); the gateway's own
drain (`routemw.serve`) runs only in single-process serving.
"""

from __future__ import annotations

import gc
import os

import uvicorn

from .app import Gateway
from .limits import Limits
from .limits.store import MemoryLimitStore

__all__ = ["refusal", "serve_workers", "worker_app"]

CONFIG_VARIABLE = "ROUTEMW_CONFIG"


def worker_app() -> Gateway:
    """The factory each worker process calls."""
    gateway = Gateway.from_config(os.environ.get(CONFIG_VARIABLE) or None)
    # As in single-process serving: what is built now lives as long as the process (see cli).
    gc.collect()
    gc.freeze()
    return gateway


def refusal(gateway: Gateway, workers: int) -> str | None:
    """Why `gateway` must not run as `workers` processes, or None."""
    if not Limits.configured(gateway.config) or not isinstance(gateway.limits.store, MemoryLimitStore):
        return None
    return (
        f"refusing --workers {workers}: limits, quotas or budgets are configured and counted in each "
        f"process's memory, so each worker would enforce its own copy of them (a key's rpm: 50 would admit "
        f"up to {50 * workers} a minute); set state.redis to count them once for all workers (see the README), "
        "or run one worker per gateway instance."
    )


def serve_workers(
    config_path: str | None, workers: int, *, host: str, port: int, log_level: str, access_log: bool
) -> int:
    if config_path is not None:
        os.environ[CONFIG_VARIABLE] = os.path.abspath(config_path)
    else:
        os.environ.pop(CONFIG_VARIABLE, None)
    uvicorn.run(
        "routemw.workers:worker_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        access_log=access_log,
    )
    return 0
