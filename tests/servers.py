"""Real uvicorn servers on loopback ports, for end-to-end tests (no internet).

`serve(app)` runs an ASGI app on uvicorn in a background thread, on a socket bound to a free
127.0.0.1 port, and stops it on exit. Every wait has a deadline, so a server that cannot start
or stop fails the test instead of hanging it. uvicorn owns its own event loop in that thread,
which is also what a deployed gateway sees: nothing here runs on the test's loop.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import uvicorn

__all__ = ["LiveServer", "free_port", "serve", "wait_until"]

Lifespan = Literal["on", "off", "auto"]


@dataclass(frozen=True, slots=True)
class LiveServer:
    """A running server: where to reach it, and the uvicorn object behind it."""

    port: int
    server: uvicorn.Server

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
    app: Any, *, lifespan: Lifespan = "on", start_timeout: float = 10.0, stop_timeout: float = 10.0
) -> Iterator[LiveServer]:
    """Serve `app` on uvicorn in a thread for the duration of the `with` block."""
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
