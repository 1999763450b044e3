"""`routemw serve --server` / `server.engine` and `--workers`: which server runs, with what, and
the refusal when granian is asked for but not installed. Nothing is started here (`serve` is
replaced by a recorder); running each server is `test_serve_shutdown.py` and `test_e2e_sdk.py`.
"""

from __future__ import annotations

import importlib.util
import pickle
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

import pytest

import routemw.serve
from routemw import Gateway
from routemw.cli import main
from routemw.serve import GatewaySource

CONFIG = """\
server: {engine: %s}
models:
  echo: {routes: [{provider: echo, model: echo}]}
"""


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What `serve` was called with, instead of serving."""
    calls: list[dict[str, Any]] = []

    def record(gateway: object, **options: Any) -> int:
        calls.append(options)
        return 0

    monkeypatch.setattr(routemw.serve, "serve", record)
    return calls


@pytest.fixture
def without_granian(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec

    def hide(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name == "granian" else find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", hide)


def config(tmp_path: Path, engine: str) -> str:
    path = tmp_path / "routemw.yaml"
    path.write_text(CONFIG % engine, encoding="utf-8")
    return str(path)


def test_uvicorn_one_worker_by_default(served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTEMW_CONFIG", raising=False)
    assert main(["serve"]) == 0
    assert served[0]["engine"] == "uvicorn" and served[0]["workers"] == 1


def test_the_config_picks_the_server_and_the_flag_wins(tmp_path: Path, served: list[dict[str, Any]]) -> None:
    path = config(tmp_path, "granian")
    assert main(["serve", "-c", path, "--workers", "3"]) == 0
    assert main(["serve", "-c", path, "--server", "uvicorn"]) == 0
    assert [(call["engine"], call["workers"]) for call in served] == [("granian", 3), ("uvicorn", 1)]
    assert served[0]["config_path"] == path  # where workers started afresh find the config


@pytest.mark.usefixtures("without_granian")
@pytest.mark.parametrize("how", ["flag", "config"])
def test_granian_missing_names_the_extra_and_starts_nothing(
    how: str, tmp_path: Path, served: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--server", "granian"] if how == "flag" else ["-c", config(tmp_path, "granian")]
    assert main(["serve", *args]) == 2
    assert "pip install 'routemw[granian]'" in capsys.readouterr().err
    assert served == []


def test_an_unknown_engine_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "-c", config(tmp_path, "tornado")]) == 2
    assert "server.engine: expected one of uvicorn, granian, got 'tornado'" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "two"])
def test_workers_must_be_a_positive_number(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--workers", bad])
    assert info.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_a_spawned_worker_builds_its_own_gateway_from_the_config(tmp_path: Path) -> None:
    path = config(tmp_path, "uvicorn")
    built = Gateway.from_config(path)
    source = GatewaySource(built, path)
    assert source() is built  # in this process, or a fork of it: the gateway already built

    copy = pickle.loads(pickle.dumps(source))  # how a spawned worker receives it
    rebuilt = copy()
    assert rebuilt is not built
    assert [entry.id for entry in rebuilt.catalog] == ["echo"]
    assert copy() is rebuilt  # built once per worker
