"""Real servers on loopback ports, for end-to-end tests (no internet).

`serve(app)` runs an ASGI app on uvicorn in a background thread, on a socket bound to a free
127.0.0.1 port, and stops it on exit; `serve(app, engine="granian")` runs it on granian's
embedded server (its Rust HTTP stack and ASGI interface, the same as `routemw serve --server
granian` uses, in this process so that tests can hand it an object). Every wait has a deadline,
so a server that cannot start or stop fails the test instead of hanging it. The server owns its
own event loop in that thread, which is also what a deployed gateway sees: nothing here runs on
the test's loop.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn

__all__ = ["ENGINES", "LiveServer", "free_port", "serve", "wait_until"]

Lifespan = Literal["on", "off", "auto"]
ENGINES = ("uvicorn", "granian")


@dataclass(frozen=True, slots=True)
class LiveServer:
    """A running server: where to reach it, and the server object behind it (uvicorn's or granian's)."""

    port: int
    server: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    """A port that was free a moment ago (for a server in another process, which binds it itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    predicate: Callable[[], object], *, timeout: float, interval: float = 0.01, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout:g}s")
        time.sleep(interval)


@contextmanager
def serve(
    app: Any,
    *,
    lifespan: Lifespan = "on",
    engine: str = "uvicorn",
    start_timeout: float = 10.0,
    stop_timeout: float = 10.0,
) -> Iterator[LiveServer]:
    """Serve `app` on `engine` in a thread for the duration of the `with` block."""
    if engine == "granian":
        with _serve_granian(app, lifespan, start_timeout, stop_timeout) as live:
            yield live
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan=lifespan,
        ws="none",  # no websocket library is imported, so none of its deprecations can fire
        timeout_graceful_shutdown=2,  # an open stream must not hold up the shutdown for long
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # SystemExit from a failed startup included
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=start_timeout, what="server start")
        if not server.started:
            raise RuntimeError(f"uvicorn did not start on port {port}") from (failure[0] if failure else None)
        yield LiveServer(port, server)
    finally:
        server.should_exit = True
        thread.join(stop_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(stop_timeout)
        sock.close()  # uvicorn closes it on a normal shutdown; this covers a failed start
        if thread.is_alive():
            raise RuntimeError(f"uvicorn on port {port} did not stop within {2 * stop_timeout:g}s")
        if failure and server.started:
            raise RuntimeError(f"uvicorn on port {port} failed") from failure[0]


@contextmanager
def _serve_granian(app: Any, lifespan: Lifespan, start_timeout: float, stop_timeout: float) -> Iterator[LiveServer]:
    import asyncio

    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    port = free_port()
    interface = Interfaces.ASGINL if lifespan == "off" else Interfaces.ASGI
    server = Server(app, port=port, interface=interface, websockets=False, log_level=LogLevels.warning)
    loop = asyncio.new_event_loop()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            loop.run_until_complete(server.serve())
        except BaseException as exc:
            failure.append(exc)
        finally:
            loop.close()

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    thread = threading.Thread(target=run, name=f"granian-{port}", daemon=True)
    thread.start()
    try:
        wait_until(lambda: listening() or not thread.is_alive(), timeout=start_timeout, what="server start")
        if not thread.is_alive():
            raise RuntimeError(f"granian did not start on port {port}") from (failure[0] if failure else None)
        yield LiveServer(port, server)
    finally:
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(server.stop)
        thread.join(2 * stop_timeout)
        if thread.is_alive():
            raise RuntimeError(f"granian on port {port} did not stop within {2 * stop_timeout:g}s")
        if failure:
            raise RuntimeError(f"granian on port {port} failed") from failure[0]
