"""`routemw check` prints each key's limits and the price used for each route."""

from __future__ import annotations

from pathlib import Path

import pytest

from routemw.cli import EXIT_USAGE, main

CONFIG = """
prices:
  local/llama3.1: {input: 0.5, output: 1.5}
providers:
  openai: {type: openai}
  local: {type: openai, base_url: "http://localhost:11434/v1"}
keys:
  - name: team-a
    key: sk-team-a-secret-value-1
    models: ["*"]
    expires: 2027-01-31T00:00:00Z
    limits: {rpm: 60, budget: {usd: 100, period: month}}
  - {name: team-b, key: sk-team-b-secret-value-2, models: ["*"]}
limits: {rpm: 600}
auth: {mode: keys}
models:
  gpt-4o:
    limits: {tpm: 2000000}
    routes: [{provider: openai, model: gpt-4o, limits: {rpm: 10000}}]
  llama: {routes: [{provider: local, model: llama3.1}]}
"""


def test_check_prints_limits_and_prices(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "routemw.yaml"
    path.write_text(CONFIG)
    assert main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "key team-a: rpm 60, budget $100.00/month, expires 2027-01-31T00:00:00Z" in out
    assert "key team-b: rpm 600 (defaults)" in out
    assert "model gpt-4o: tpm 2000000" in out
    assert "route openai/gpt-4o: rpm 10000" in out
    assert "gpt-4o via openai/gpt-4o: 2.5/1.25/10" in out
    assert "llama via local/llama3.1: 0.5/0.5/1.5" in out
    assert "secret" not in out


def test_check_refuses_a_budget_over_an_unpriced_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "routemw.yaml"
    path.write_text(CONFIG.replace("local/llama3.1: {input: 0.5, output: 1.5}", "{}"))
    assert main(["check", "-c", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "keys[0] (team-a)" in err and "'llama'" in err and "local/llama3.1" in err
