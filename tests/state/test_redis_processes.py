"""Two `routemw serve` processes on one Redis behave as one gateway.

A real upstream on a loopback port always fails; each gateway falls back to the built-in echo.
Whatever one process learns about the upstream (it is cooling down) the other must honour.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from servers import free_port, serve, wait_until

CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


class FailingUpstream:
    """An OpenAI-shaped upstream that answers every chat request with a 500, and counts them."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        body = orjson.dumps({"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


CONFIG = """
providers:
  up: {{type: openai, base_url: "http://127.0.0.1:{upstream}/v1", api_key: sk-test-processes}}
models:
  gpt-4o:
    routes:
      - {{provider: up, model: gpt-4o}}
      - {{provider: echo, model: echo}}
retry: {{attempts: 1, cooldown_after: 1, cooldown: 120}}
state:
  redis: {{url: "{redis}", prefix: "{prefix}"}}
"""


@pytest.fixture
def gateway_processes(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[tuple[FailingUpstream, list[str]]]:
    upstream = FailingUpstream()
    with serve(upstream) as live:
        path = tmp_path / "routemw.yaml"
        path.write_text(CONFIG.format(upstream=live.port, redis=redis_url, prefix=redis_prefix), encoding="utf-8")
        processes: list[subprocess.Popen[bytes]] = []
        urls: list[str] = []
        try:
            for _ in range(2):
                port = free_port()
                command = [sys.executable, "-m", "routemw", "serve", "--config", str(path), "--port", str(port)]
                command += ["--log-level", "warning"]
                processes.append(subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.DEVNULL))
                urls.append(f"http://127.0.0.1:{port}")
            for url in urls:
                wait_until(lambda url=url: _answers(url), timeout=30, interval=0.05, what=f"routemw at {url}")
            yield upstream, urls
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/models", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_cooldown_triggered_through_one_process_is_honoured_by_the_other(
    gateway_processes: tuple[FailingUpstream, list[str]],
) -> None:
    upstream, (first, second) = gateway_processes

    response = httpx.post(f"{first}/v1/chat/completions", json=CHAT, timeout=30)
    assert response.status_code == 200
    assert response.headers["x-routemw-provider"] == "echo"
    assert upstream.calls == 1

    for _ in range(3):
        response = httpx.post(f"{second}/v1/chat/completions", json=CHAT, timeout=30)
        assert response.status_code == 200
        assert response.headers["x-routemw-provider"] == "echo"
    assert upstream.calls == 1  # the other process skipped the cooling upstream every time
