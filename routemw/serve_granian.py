"""`routemw serve --server granian`: the gateway on granian (the `routemw[granian]` extra), draining at shutdown.

How granian stops (2.8, read in `granian/server/mp.py` and its Rust `serve.rs`, `workers.rs`):
the main process supervises worker processes (one at least) and, on SIGTERM or SIGINT, sends
each worker SIGTERM and waits for it, killing it after `workers_kill_timeout` if set. In a
worker, the signal sets a `WorkerSignal`: the Rust side stops accepting (the listening socket
closes), asks every connection for a graceful shutdown (idle keep-alive connections close, busy
ones finish their response first) and waits for all of them, with no bound. Only then does the
worker's event loop stop and the ASGI lifespan shutdown run, too late to end anything.

So each worker starts `Gateway.drain()` when the signal arrives, beside granian's own shutdown,
exactly as on uvicorn: the drain refuses what still arrives on an open connection, gives
requests in flight up to the deadline and then ends the rest itself (`routemw.shutdown`); their
responses complete, granian's connections close, and its wait ends on its own.
`workers_kill_timeout`, a little past the deadline, is the backstop for a client that has stopped
reading. The hook: granian's ASGI worker installs its signal handlers through
`granian._signals.set_loop_signals(loop)`, imported when the worker starts; the worker function
here (a `spawn_target`, which granian's `serve()` takes) replaces that function in the worker
process, which routemw owns, with one that also starts the drain, and then runs granian's own
ASGI worker unchanged. tests/test_serve_shutdown.py runs the drain on both servers, so a granian
release that moves this hook fails there, not in production.

What routemw relies on in granian's ASGI interface, checked by the end-to-end tests run on both
servers: a `text/event-stream` response starts at `http.response.start` (any other waits for
its first body, which is fine); once the body is read, `receive()` returns `http.disconnect`
when the client leaves (the gateway then cancels its upstream request); `send()` to a client
that left returns quietly instead of raising, which the disconnect covers.

Requests run as asyncio tasks on uvloop (`task_impl=asyncio`, the default): the drain
interrupts a request by cancelling its task, so it needs real tasks.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import signal
import socket
from collections.abc import Callable
from typing import Any, Final

import granian._signals
from granian.constants import Interfaces, Loops
from granian.log import LogLevels
from granian.server.mp import MPServer, WorkerProcess

from .app import Gateway
from .serve import BACKSTOP, STARTUP_FAILURE, GatewaySource, Options
from .telemetry import stop_access_log

__all__ = ["run"]

logger = logging.getLogger("routemw")

# granian's own lines go to routemw's root handler (stderr, in `--log-format`), as uvicorn's go to
# stderr: stdout is the access log's alone. granian merges this over its defaults key by key, so
# its `loggers` are replaced; the handlers it defines for stdout are left unused.
_GRANIAN_LOGGING: Final = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": False},
    },
}

# granian's ASGI worker with lifespan, unwrapped: it takes the loaded app and the event loop.
_asgi_worker = MPServer._spawn_asgi_lifespan_worker.__wrapped__


def run(source: GatewaySource, options: Options) -> int:
    # granian reports an address in use with a Rust backtrace; a trial bind says it in one line.
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    try:
        with socket.create_server((options.host, options.port), family=family):
            pass
    except OSError as exc:
        logger.error("routemw: cannot listen on %s port %s: %s", options.host, options.port, exc)
        return STARTUP_FAILURE
    uvloop = importlib.util.find_spec("uvloop") is not None
    server = MPServer(
        "routemw",  # a name for granian's own log lines: the app comes from `target_loader`
        address=options.host,
        port=options.port,
        interface=Interfaces.ASGI,
        workers=options.workers,
        loop=Loops.uvloop if uvloop else Loops.asyncio,
        websockets=False,  # the gateway refuses them
        backlog=2048,  # uvicorn's default
        log_level=LogLevels(options.log_level),
        log_access=False,  # routemw's own line (routemw.access) replaces granian's
        log_dictconfig=_GRANIAN_LOGGING,
        workers_kill_timeout=math.ceil(options.shutdown_timeout + BACKSTOP),
    )
    spawn = functools.partial(_worker, shutdown_timeout=options.shutdown_timeout)
    try:
        server.serve(spawn_target=spawn, target_loader=source, wrap_loader=False)
    except SystemExit as exc:  # a worker failed (granian logged why), or granian refused its settings
        return STARTUP_FAILURE if exc.code else 0
    return 0


@WorkerProcess.wrap_target  # type: ignore[untyped-decorator]
def _worker(
    worker_id: int, gateway: Gateway, sock: Any, ipc: Any, loop: Any, *args: Any, shutdown_timeout: float
) -> None:
    """One granian worker process: granian's ASGI worker, with the drain started by the stop signal."""
    gateway.renew_request_ids()  # a fork: each worker numbers its own requests
    drains: list[Any] = []
    installed: Callable[[Any], Any] = granian._signals.set_loop_signals

    def set_loop_signals(loop: Any) -> Any:
        stop = installed(loop)

        def begin() -> None:
            # Once only: Ctrl+C reaches the workers both from the terminal and from the main
            # process, and setting granian's signal a second time leaves the worker hanging.
            if drains:
                return
            drains.append(loop.create_task(gateway.drain(shutdown_timeout)))
            stop.set()  # granian's own shutdown, beside the drain

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, begin)
        return stop

    granian._signals.set_loop_signals = set_loop_signals
    _asgi_worker(worker_id, gateway, sock, ipc, loop, *args)
    for drain in drains:  # normally done: granian waited for the very requests it ended
        loop.run_until_complete(drain)
    # A forked worker ends with os._exit, without atexit: write out the queued access lines now.
    stop_access_log()
