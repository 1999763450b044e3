"""A real Redis for the tests: `REDIS_URL` when set, else a `redis-server` of the suite's own.

The server the suite starts listens on a free loopback port, keeps nothing on disk and lives in
a temporary folder. Tests that stop or pause Redis get a server of their own (`RedisServer`), so
they never disturb another test's, nor a Redis named by `REDIS_URL`.

Without `REDIS_URL` and without `redis-server` on PATH (or without the `redis` package), the
tests that need Redis skip and say why; CI turns such skips into failures (`conftest.py`).
Every test gets its own key prefix, so tests can share one server without flushing it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["RedisServer", "new_client", "redis_prefix", "redis_url", "require_redis_package"]


def require_redis_package() -> None:
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        pytest.skip("the redis package is not installed (pip install -e '.[test]')")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A `redis-server` process on a free loopback port; `stop()` and `start()` again on the same port."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("no redis-server on PATH and REDIS_URL is not set (apt-get install redis-server)")
        self.binary = binary
        self.folder = folder
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited with {self.process.returncode} on port {self.port}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"redis-server did not answer on port {self.port} within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a Redis every test may use (with its own `redis_prefix`)."""
    require_redis_package()
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_prefix() -> str:
    return f"routemw-test-{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis for this test alone, which it may stop, restart or pause."""
    require_redis_package()
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Any]:
    client = new_client(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def new_client(url: str) -> Any:
    """A client as the gateway opens one (RESP2 pinned, short timeouts)."""
    from routemw.state import redis_client

    return redis_client(url, timeout=2.0)
