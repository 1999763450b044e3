"""The code base stays ruff clean and mypy strict clean; CI runs these with the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


# Everything of ours that is Python, as far as the checkout has it.
LINTED = [name for name in ("routemw", "tests", "examples", "benchmarks") if (ROOT / name).is_dir()]


def test_ruff_check_is_clean() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", *LINTED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_test_reads_outside_the_repository() -> None:
    # A fresh clone has nothing beside it; recordings live in tests/recordings.
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if any(marker in path.read_text(encoding="utf-8") for marker in ('"shared" / "reference"', "../" + "shared"))
        and path.name != "test_quality.py"
    ]
    assert offenders == []
