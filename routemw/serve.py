"""`routemw serve`: the gateway on uvicorn or granian, in one or more worker processes.

Both servers get the same treatment, each in its own module: a bounded drain at shutdown
(`Gateway.drain()` started when the server begins to stop; `routemw.shutdown`), `gc.freeze` once
the gateway is built, the ASGI lifespan (it closes the upstream connections), the log level and
the access log. uvicorn comes with routemw; granian (`routemw.serve_granian`) with the extra
`routemw[granian]`, and is imported only when asked for.

The access log is routemw's own (`routemw.telemetry.access_log`), on both servers: each server's
own access line is turned off, and every worker process sets up its logging as `routemw serve`
was told to (`--log-format`, `--log-level`, `--no-access-log`), whether it was spawned afresh
(uvicorn's workers, where `GatewaySource` does it) or forked (granian's, where the access
writer's thread is started again in the child). With Prometheus metrics and more than one worker,
`routemw serve` sets up prometheus-client's multiprocess directory before the gateway is built
(`routemw.telemetry.multiprocess`, used by the CLI), so that every worker counts into it.

With `workers` above 1 each worker process has a gateway of its own (its own upstream
connections, its own in-memory state, its own Redis client), built from the same config by
`GatewaySource` in the worker itself: nothing bound to this process's event loop is inherited.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any, Final

from .app import Gateway
from .telemetry import configure_logging

__all__ = ["ENGINES", "GatewaySource", "Options", "missing_engine", "serve"]

logger = logging.getLogger("routemw")

ENGINES: Final = ("uvicorn", "granian")
# Exit status of a server that could not start (a port in use, a failed lifespan): uvicorn's own
# number, kept for granian so that one status means the same whatever the server.
STARTUP_FAILURE: Final = 3
# The server's own cut-off, this long after the drain deadline: time for the gateway's last writes.
BACKSTOP: Final = 2.0
_LOOPBACK: Final = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True, slots=True)
class Options:
    host: str
    port: int
    workers: int
    log_level: str
    access_log: bool  # routemw's access log (`routemw.access`); the servers' own lines stay off
    shutdown_timeout: float
    log_format: str = "text"


class GatewaySource:
    """A worker's gateway: the one given (single-process serving), or one built from the config.

    Pickling (how a spawned worker gets its arguments) keeps only the config's path and the
    logging settings: a gateway, with its locks and pools, does not cross a process boundary.
    `logging` is (format, level, access log on), applied in a process that builds its own
    gateway, before it does; None leaves that process's logging alone.
    """

    def __init__(
        self, gateway: Gateway | None, config_path: str | None, logging: tuple[str, str, bool] | None = None
    ) -> None:
        self._gateway = gateway
        self._config_path = config_path
        self._logging = logging

    def __call__(self) -> Gateway:
        if self._gateway is None:
            access = False
            if self._logging is not None:
                log_format, level, access = self._logging
                configure_logging("json" if log_format == "json" else "text", level, access=access)
            self._gateway = Gateway.from_config(self._config_path, access_log=access)
            freeze()
        return self._gateway

    def __getstate__(self) -> dict[str, Any]:
        return {"config_path": self._config_path, "logging": self._logging}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._gateway = None
        self._config_path = state["config_path"]
        self._logging = state.get("logging")


def freeze() -> None:
    """Move everything alive now (modules, config, adapters) out of the collector's sight.

    It lives as long as the process, and each collection gets cheaper (about 15% less CPU per
    request measured under load). Only in `routemw serve`, which owns the process; a host that
    mounts the gateway decides this for itself.
    """
    gc.collect()
    gc.freeze()


def missing_engine(engine: str) -> str | None:
    """What to install when `engine` is not installed, or None when it is."""
    if engine == "granian" and importlib.util.find_spec("granian") is None:
        return "the granian server is not installed; install it with routemw's extra: pip install 'routemw[granian]'"
    return None


def serve(
    gateway: Gateway,
    *,
    engine: str = "uvicorn",
    host: str,
    port: int,
    workers: int = 1,
    log_level: str,
    access_log: bool,
    shutdown_timeout: float,
    config_path: str | None = None,
    log_format: str = "text",
) -> int:
    """Run `gateway` on `engine` until a signal stops it, draining for up to `shutdown_timeout` seconds.

    `config_path` (None: the embedded default) is where worker processes started afresh find
    the config `gateway` was built from, and they log in `log_format` at `log_level`, with
    routemw's access log when `access_log` (the gateway was built with the same). Returns the
    exit status: 0 after a normal stop, `STARTUP_FAILURE` (3) if the server could not start.
    """
    if gateway.config.auth.mode == "none" and host not in _LOOPBACK:
        logger.warning(
            "routemw: auth is off and the gateway listens on %s: anyone who can reach it can use your providers", host
        )
    options = Options(host, port, max(1, workers), log_level, access_log, shutdown_timeout, log_format)
    # Several workers each build their own gateway in the worker: a forked copy of this one would
    # carry whatever it already holds (a Redis client's pool, a store's background task, its
    # request-id counter), which belongs to this process; building it afresh costs milliseconds.
    source = GatewaySource(gateway if options.workers == 1 else None, config_path, (log_format, log_level, access_log))
    freeze()
    if engine == "granian":
        from . import serve_granian

        return serve_granian.run(source, options)
    from . import serve_uvicorn

    return serve_uvicorn.run(source, options)
