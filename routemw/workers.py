"""`routemw serve --workers N`: N processes accepting on one listening socket.

uvicorn's supervisor binds the socket once and starts N workers (spawned, not forked, so no
event loop or connection is shared by accident); each builds its own `Gateway` from the same
config (`ROUTEMW_CONFIG`, set here for them) with its own upstream pool and Redis client, and
restarts a worker that dies. Whatever state outlives a request (cooldowns, probes) is each
worker's own unless `state.redis` is set, when all of them share it.
"""

from __future__ import annotations

import gc
import os

import uvicorn

from .app import Gateway

__all__ = ["serve_workers", "worker_app"]

CONFIG_VARIABLE = "ROUTEMW_CONFIG"


def worker_app() -> Gateway:
    """The factory each worker process calls."""
    gateway = Gateway.from_config(os.environ.get(CONFIG_VARIABLE) or None)
    # As in single-process serving: what is built now lives as long as the process (see cli).
    gc.collect()
    gc.freeze()
    return gateway


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
