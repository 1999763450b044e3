"""`routemw check` says whether the configured Redis answers, without showing its password."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis_server import RedisServer

from routemw.cli import main

PASSWORD = "hunter2-redis-password"


def write(tmp_path: Path, url: str, on_error: str = "open") -> str:
    path = tmp_path / "routemw.yaml"
    path.write_text(
        "models: {echo: {routes: [{provider: echo, model: echo}]}}\n"
        f'state: {{redis: {{url: "{url}", prefix: "gw:"}}, on_error: {on_error}, timeout: 2}}\n',
        encoding="utf-8",
    )
    return str(path)


def test_check_reports_a_redis_that_answers(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", write(tmp_path, redis_url)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].endswith("(prefix 'gw:', on_error open): answers")


def test_check_reports_a_redis_that_does_not_answer_without_its_password(
    tmp_path: Path, own_redis: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    own_redis.stop()  # its port is now one where nothing answers
    url = f"redis://:{PASSWORD}@127.0.0.1:{own_redis.port}/0"

    assert main(["check", "--config", write(tmp_path, url)]) == 0  # open: the gateway still serves
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith(f"state: redis redis://***@127.0.0.1:{own_redis.port}/0 (prefix 'gw:', on_error open)")
    assert "does NOT answer (" in line
    assert PASSWORD not in line

    assert main(["check", "--config", write(tmp_path, url, on_error="closed")]) == 2  # closed: all 503
    assert "does NOT answer" in capsys.readouterr().out
