"""`routemw serve --workers N`: N processes accepting on one listening socket.

uvicorn's supervisor binds the socket once and starts N workers (spawned, not forked, so no
event loop or connection is shared by accident); each builds its own `Gateway` from the same
config (`ROUTEMW_CONFIG`, set here for them) with its own upstream pool, and restarts a worker
that dies. Whatever state outlives a request (cooldowns, probes) is each worker's own.

Each worker sets up its own logging as the supervisor was told to (`ROUTEMW_LOG_*`, set here),
and with Prometheus metrics on, every worker counts into one multiprocess directory, so a scrape
answered by any of them sums all (`routemw.telemetry.multiprocess`).
"""

from __future__ import annotations

import gc
import os

import uvicorn

from .app import Gateway
from .telemetry import configure_logging
from .telemetry.multiprocess import metrics_directory

__all__ = ["serve_workers", "worker_app"]

CONFIG_VARIABLE = "ROUTEMW_CONFIG"
_LOG_FORMAT = "ROUTEMW_LOG_FORMAT"
_LOG_LEVEL = "ROUTEMW_LOG_LEVEL"
_ACCESS_LOG = "ROUTEMW_ACCESS_LOG"


def worker_app() -> Gateway:
    """The factory each worker process calls."""
    access = os.environ.get(_ACCESS_LOG, "1") == "1"
    configure_logging(
        "json" if os.environ.get(_LOG_FORMAT) == "json" else "text", os.environ.get(_LOG_LEVEL, "info"), access=access
    )
    gateway = Gateway.from_config(os.environ.get(CONFIG_VARIABLE) or None, access_log=access)
    # As in single-process serving: what is built now lives as long as the process (see cli).
    gc.collect()
    gc.freeze()
    return gateway


def serve_workers(
    config_path: str | None,
    workers: int,
    *,
    host: str,
    port: int,
    log_level: str,
    access_log: bool,
    log_format: str = "text",
    metrics: bool = False,
) -> int:
    if config_path is not None:
        os.environ[CONFIG_VARIABLE] = os.path.abspath(config_path)
    else:
        os.environ.pop(CONFIG_VARIABLE, None)
    os.environ[_LOG_FORMAT] = log_format
    os.environ[_LOG_LEVEL] = log_level
    os.environ[_ACCESS_LOG] = "1" if access_log else "0"
    with metrics_directory(metrics):
        uvicorn.run(
            "routemw.workers:worker_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            access_log=False,  # routemw.access replaces uvicorn's line
        )
    return 0
