"""`routemw serve --workers N`: N processes on one port, sharing state through Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from servers import free_port, serve, wait_until
from test_redis_processes import CHAT, CONFIG, FailingUpstream

from routemw.cli import main


def test_workers_must_be_a_positive_count(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", "0"])
    assert exited.value.code == 2
    assert "--workers: must be at least 1, got '0'" in capsys.readouterr().err


def test_two_workers_serve_one_port_and_share_cooldowns(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    upstream = FailingUpstream()
    with serve(upstream) as live:
        path = tmp_path / "routemw.yaml"
        path.write_text(CONFIG.format(upstream=live.port, redis=redis_url, prefix=redis_prefix), encoding="utf-8")
        port = free_port()
        command = [sys.executable, "-m", "routemw", "serve", "--config", str(path), "--port", str(port), "--workers"]
        log = tmp_path / "serve.log"
        with log.open("wb") as sink:
            process = subprocess.Popen([*command, "2"], env=dict(os.environ), stdout=sink, stderr=sink)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_until(
                    lambda: log.read_text().count("Application startup complete") == 2, timeout=60, what="2 workers"
                )
                answers = [httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=30) for _ in range(8)]
            finally:
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=30) == 0

    assert [a.status_code for a in answers] == [200] * 8
    assert {a.headers["x-routemw-provider"] for a in answers} == {"echo"}
    assert upstream.calls == 1  # whichever worker answered, the cooldown was shared
    assert log.read_text().count("Started server process") == 2


def test_more_than_one_worker_is_refused_while_limits_are_counted_per_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "limited.yaml"
    path.write_text("models: {echo: {routes: [{provider: echo, model: echo}]}}\nlimits: {rpm: 50}\n")

    assert main(["serve", "--config", str(path), "--workers", "2"]) == 2

    err = capsys.readouterr().err
    assert "refusing --workers 2: limits, quotas or budgets are configured" in err
    assert "up to 100 a minute" in err
    assert "set state.redis" in err


LIMITED = """
models: {echo: {routes: [{provider: echo, model: echo}]}}
limits: {rpm: 6}
state:
  redis: {url: "{redis}", prefix: "{prefix}"}
  timeout: 2
"""


def test_two_workers_with_limits_on_redis_share_one_rpm(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    path = tmp_path / "limited.yaml"
    path.write_text(LIMITED.replace("{redis}", redis_url).replace("{prefix}", redis_prefix), encoding="utf-8")
    port = free_port()
    command = [sys.executable, "-m", "routemw", "serve", "--config", str(path), "--port", str(port), "--workers", "2"]
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=dict(os.environ), stdout=sink, stderr=sink)
        try:
            wait_until(lambda: log.read_text().count("Application startup complete") == 2, timeout=60, what="2 workers")
            body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
            # A fresh connection per request, so the kernel spreads them over both workers.
            statuses = [
                httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=30).status_code
                for _ in range(12)
            ]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0

    assert sorted(statuses) == [200] * 6 + [429] * 6  # 6 a minute for both workers together, not 6 each
