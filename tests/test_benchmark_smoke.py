"""The benchmark keeps working: a tiny run of it, with no thresholds (figures are for people)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_runs_every_target_without_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    details, summary = result.stdout.split("What each feature costs", 1)
    rows = [line for line in details.splitlines() if line.startswith("| ") and not line.startswith("| target")]
    targets = {row.split("|")[1].strip() for row in rows}
    assert {
        "direct",
        "bare proxy",
        "routemw",
        "bare proxy on granian",
        "routemw on granian",
        "routemw -> gemini",
        "routemw + limits",
        "routemw + telemetry",
    } <= targets
    json_only = {"embeddings x16"}  # no stream to measure
    assert json_only <= targets
    assert len(rows) == 2 * len(targets) - len(json_only)  # a JSON and an SSE row for each other target
    for row in rows:
        assert row.rstrip(" |").rsplit("|", 1)[1].strip() == "0", f"requests failed: {row}"
    # The one table: every target but the upstream itself, each with a ratio to routemw's passthrough.
    table = [line.split("|") for line in summary.splitlines() if line.startswith("| ") and "target" not in line]
    assert {cells[1].strip() for cells in table} == targets - {"direct"}
    passthrough = next(cells for cells in table if cells[1].strip() == "routemw")
    assert passthrough[4].strip() == passthrough[8].strip() == "1.00"
    assert "soak:" in result.stdout


def test_stream_scale_smoke_runs_on_each_server_without_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--scenario", "streams", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split("|") for line in result.stdout.splitlines() if line.startswith("| ") and "server" not in line]
    assert {row[1].strip() for row in rows} == {"uvicorn", "granian"}
    for row in rows:
        completed, left, errors = (int(row[i]) for i in (2, 3, 4))
        assert errors == 0, result.stdout
        assert completed > 0 and left > 0  # some streams ran to the end, some clients left midway
