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


@pytest.mark.parametrize("state", ["", 'state: {redis: {url: "redis://127.0.0.1:1/0"}}\n'])
def test_more_than_one_worker_is_refused_while_limits_are_counted_per_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], state: str
) -> None:
    path = tmp_path / "limited.yaml"
    path.write_text("models: {echo: {routes: [{provider: echo, model: echo}]}}\nlimits: {rpm: 50}\n" + state)

    assert main(["serve", "--config", str(path), "--workers", "2"]) == 2

    err = capsys.readouterr().err
    assert "refusing --workers 2: limits, quotas or budgets are configured" in err
    assert "up to 100 a minute" in err
    assert "state.redis" in err
