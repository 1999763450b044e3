"""`routemw serve --server uvicorn` (the default): the gateway on uvicorn, draining at shutdown.

How uvicorn stops (0.30 and later, read in `uvicorn/server.py`): SIGTERM or SIGINT sets
`should_exit`; the main loop sees it within 0.1 s and calls `Server.shutdown`, which closes the
listening sockets (new connections are refused from then on), closes idle keep-alive
connections, and then waits for the busy ones: with no bound by default, and with
`timeout_graceful_shutdown` by cancelling the request tasks at the bound, which cuts a stream
mid-body with no error event and logs a traceback for each. The ASGI `lifespan.shutdown` event
comes only after all that, too late to end anything.

So `DrainingServer.shutdown` starts `Gateway.drain()` beside uvicorn's own shutdown, at its
start: uvicorn still closes its sockets at once, while the gateway refuses whatever still
arrives on an open connection, gives requests in flight up to the deadline, and then ends the
rest itself, each in the way its state allows (`routemw.shutdown`). Their responses then
complete, uvicorn's connections close, and its wait ends on its own. `timeout_graceful_shutdown`
stays set, a little past the deadline, only as a backstop for what the gateway cannot end: a
client that has stopped reading the last bytes it was sent.

Several workers: uvicorn's own supervisor (`uvicorn.supervisors.Multiprocess`) builds a plain
`uvicorn.Server` in each worker, with no place to start the drain, so `_supervise` is a small
one of our own: it binds the socket once, starts each worker (spawned, as uvicorn does) running
a `DrainingServer` on it, replaces a worker that dies, and on SIGTERM/SIGINT passes SIGTERM on
to each and waits for their drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
import socket
import sys
import threading
from multiprocessing.process import BaseProcess

import uvicorn

from .serve import BACKSTOP, STARTUP_FAILURE, GatewaySource, Options
from .telemetry import stop_access_log

__all__ = ["DrainingServer", "run"]

logger = logging.getLogger("routemw")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with the gateway's drain running from the start of its shutdown."""

    def __init__(self, config: uvicorn.Config, shutdown_timeout: float) -> None:
        super().__init__(config)
        self._shutdown_timeout = shutdown_timeout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        source = self.config.app
        assert isinstance(source, GatewaySource)
        drain = asyncio.get_running_loop().create_task(source().drain(self._shutdown_timeout))
        try:
            await super().shutdown(sockets)
        finally:
            # Normally finished by now: uvicorn waited for the very requests the drain ended.
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain


def run(source: GatewaySource, options: Options) -> int:
    config = uvicorn.Config(
        source,
        factory=True,  # the app is `source()`: in a spawned worker, that builds the gateway there
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        lifespan="on",
        access_log=False,  # routemw's own line (routemw.access) replaces uvicorn's
        timeout_graceful_shutdown=math.ceil(options.shutdown_timeout + BACKSTOP),  # whole seconds only
    )
    if options.workers > 1:
        return _supervise(config, options)
    server = DrainingServer(config, options.shutdown_timeout)
    # After a clean shutdown on Ctrl+C, uvicorn raises the SIGINT it handled once more.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE


def _worker(config: uvicorn.Config, sockets: list[socket.socket], shutdown_timeout: float) -> None:
    """One worker process: a draining uvicorn on the socket its supervisor bound."""
    config.configure_logging()  # a spawned process starts with none
    server = DrainingServer(config, shutdown_timeout)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    stop_access_log()  # what is queued is written before the process ends
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _supervise(config: uvicorn.Config, options: Options) -> int:
    try:
        sock = config.bind_socket()
    except SystemExit:  # uvicorn has logged why (the address is in use)
        return STARTUP_FAILURE
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    context = multiprocessing.get_context("spawn")

    def start() -> BaseProcess:
        process: BaseProcess = context.Process(
            target=_worker, args=(config, [sock], options.shutdown_timeout), name="routemw-worker"
        )
        process.start()
        return process

    status = 0
    try:
        workers = [start() for _ in range(options.workers)]
        logger.info("routemw: %d uvicorn workers started (pids %s)", len(workers), [w.pid for w in workers])
        while not stop.wait(0.5):
            for index, process in enumerate(workers):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:  # it would fail the same way again
                    logger.error("routemw: worker %s could not start; stopping", process.pid)
                    status = STARTUP_FAILURE
                    stop.set()
                    break
                logger.warning("routemw: worker %s exited with %s; starting another", process.pid, process.exitcode)
                workers[index] = start()
        # The workers close their copies as they begin to stop; this one must go too, or the
        # kernel goes on queueing new connections that nobody will accept.
        sock.close()
        for process in workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)  # each drains, then exits
        for process in workers:
            process.join()
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
