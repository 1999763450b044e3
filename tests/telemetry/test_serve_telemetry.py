"""`routemw serve` as a real process, on both servers: JSON access lines on stdout instead of the
server's own, a scrape right after a response that already counts it, and `--workers 2` (routemw's
own supervisor on uvicorn, granian's forked workers) whose metrics are summed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from servers import free_port

from routemw.telemetry import ACCESS_FIELDS

CONFIG = """
models:
  echo: {routes: [{provider: echo, model: echo}]}
metrics: {prometheus: true}
"""
CHAT = {"model": "echo", "messages": [{"role": "user", "content": "count me"}]}
SERVERS = ["uvicorn", "granian"]


@contextmanager
def routemw_serve(tmp_path: Path, *args: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path, Path]]:
    """`routemw serve` on a free port with CONFIG; yields (url, process, stdout file, stderr file)."""
    config = tmp_path / "routemw.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    port = free_port()
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["TMPDIR"] = str(tmp_path)  # where `serve` makes its metrics directory, so the test can see it
    command = [sys.executable, "-m", "routemw", "serve", "--config", str(config), "--port", str(port), *args]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_for_health(process, url, err)
            yield url, process, out, err
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_for_health(process: subprocess.Popen[bytes], url: str, err: Path) -> None:
    deadline = time.monotonic() + 60.0
    with httpx.Client(timeout=1.0) as http:
        while True:
            if process.poll() is not None:
                pytest.fail(f"routemw serve exited with {process.returncode}:\n{err.read_text()}")
            try:
                if http.get(url + "/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"routemw serve did not answer within 60s:\n{err.read_text()}")
            time.sleep(0.05)


def requests_total(text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "routemw_requests_total":
                total += sample.value
    return total


@pytest.mark.parametrize("server", SERVERS)
def test_serve_writes_json_access_lines_and_a_scrape_right_after_an_answer_counts_it(
    tmp_path: Path, server: str
) -> None:
    with routemw_serve(tmp_path, "--log-format", "json", "--server", server) as (url, process, out, err):
        with httpx.Client(base_url=url, timeout=10.0) as http:
            counts = []
            for body in (CHAT, {**CHAT, "stream": True}, CHAT):
                assert http.post("/v1/chat/completions", json=body).status_code == 200
                counts.append(requests_total(http.get("/metrics").text))
            ids = [http.post("/v1/chat/completions", json=CHAT).headers["x-request-id"]]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0

    assert counts == [1, 2, 3]  # each scrape, sent the moment the answer arrived, already counts it
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [list(line) for line in lines] == [list(ACCESS_FIELDS)] * 4  # no /metrics, no /healthz lines
    assert [(line["status"], line["stream"], line["model"]) for line in lines] == [
        (200, False, "echo"),
        (200, True, "echo"),
        (200, False, "echo"),
        (200, False, "echo"),
    ]
    assert lines[-1]["request_id"] == ids[0]
    assert "count me" not in out.read_text()
    # The server's own access line is gone (uvicorn's and granian's both hold `"POST ... HTTP/1.1"`).
    assert "HTTP/1.1" not in err.read_text() + out.read_text()


def test_serve_text_lines_and_no_access_log(tmp_path: Path) -> None:
    with routemw_serve(tmp_path) as (url, process, out, _):
        httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=10.0)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    (line,) = out.read_text().splitlines()
    assert line.startswith("time=") and " method=POST path=/v1/chat/completions status=200 " in line

    quiet = tmp_path / "quiet"
    quiet.mkdir()
    with routemw_serve(quiet, "--no-access-log") as (url, process, out, _):
        httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=10.0)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert out.read_text() == ""


@pytest.mark.parametrize("server", SERVERS)
def test_two_workers_sum_their_metrics_in_a_directory_serve_makes_and_removes(tmp_path: Path, server: str) -> None:
    with routemw_serve(tmp_path, "--workers", "2", "--server", server) as (url, process, out, _):
        (directory,) = tmp_path.glob("routemw-metrics-*")
        prefixes: set[str] = set()
        sent = 0
        with httpx.Client(timeout=10.0, limits=httpx.Limits(max_keepalive_connections=0)) as http:

            def one(_: int) -> str:
                answer = http.post(url + "/v1/chat/completions", json=CHAT)
                assert answer.status_code == 200
                return answer.headers["x-request-id"][:16]  # each gateway has its own random prefix

            with ThreadPoolExecutor(8) as pool:
                deadline = time.monotonic() + 60
                while len(prefixes) < 2 and time.monotonic() < deadline:
                    prefixes.update(pool.map(one, range(16)))
                    sent += 16
            assert len(prefixes) == 2, "both workers answered"
            scrapes = [requests_total(http.get(url + "/metrics").text) for _ in range(6)]
        # One file per worker that counted (the supervisor, which built a gateway to check the
        # config, may have one of zeros too).
        counted = {p.name.rsplit("_", 1)[-1] for p in directory.glob("counter_*.db")} - {f"{process.pid}.db"}
        assert len(counted) == 2
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0

    assert scrapes == [sent] * 6  # whichever worker answered the scrape, it counted both
    assert not directory.exists()
    assert len(out.read_bytes().splitlines()) == sent
