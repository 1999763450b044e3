"""`routemw check`: validate a config and print what it serves; `serve` is not started here.

`serve` only goes as far as refusing a bad config; running and stopping it is `test_serve_shutdown.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from routemw.cli import main
from routemw.providers.registry import ProviderRegistry

KNOWN = ", ".join(sorted(ProviderRegistry.default(plugins=False).types))

GOOD = """\
providers:
  openai: {type: openai, base_url: "https://api.openai.com/v1/", api_key: "${OPENAI_API_KEY}"}
  local:  {type: openai, base_url: "http://127.0.0.1:11434/v1"}
models:
  gpt-4o:
    routes:
      - {provider: openai, model: gpt-4o}
      - {provider: local, model: llama3.1}
    fallbacks: [echo]
  echo:
    routes: [{provider: echo, model: echo}]
keys:
  - {name: team-a, key: "${TEAM_A_KEY}", models: ["*"]}
auth: {mode: keys}
"""

BAD = """\
server: {prot: 8000}
providers:
  openai: {type: opnai}
models:
  gpt-4o:
    routs: [{provider: openai, model: gpt-4o}]
    fallbacks: [gpt-5]
retry: {attempts: 0}
"""

OPENAI_KEY = "sk-cli-test-secret"
TEAM_KEY = "team-a-cli-secret"


@pytest.fixture
def good_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("TEAM_A_KEY", TEAM_KEY)
    path = tmp_path / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    return path


def test_check_good_config(good_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(good_file)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"{good_file}: ok"
    assert "  openai: openai https://api.openai.com/v1" in lines  # trailing slash stripped
    assert "  local: openai http://127.0.0.1:11434/v1" in lines
    assert "  echo: echo (built-in)" in lines
    assert "  gpt-4o: openai/gpt-4o, local/llama3.1; fallbacks: echo" in lines
    assert "  echo: echo/echo" in lines
    assert lines[-1] == "auth: keys, keys: 1"
    assert lines.index("providers:") < lines.index("models:")


def test_check_never_prints_secrets(good_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(good_file)]) == 0
    out, err = capsys.readouterr()
    assert OPENAI_KEY not in out + err
    assert TEAM_KEY not in out + err


def test_check_invalid_config_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD, encoding="utf-8")
    assert main(["check", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    problems = [line.removeprefix("  - ") for line in err.splitlines()[1:]]
    assert err.splitlines()[0] == f"{path}: invalid, {len(problems)} problem(s):"
    assert all(line.startswith("  - ") for line in err.splitlines()[1:])
    expected = [
        "server.prot: unknown key",
        f"providers.openai.type: unknown provider type 'opnai'; known types: {KNOWN}",
        "models.gpt-4o.routs: unknown key",
        "models.gpt-4o.routes: required: a non-empty list of {provider, model}",
        "models.gpt-4o.fallbacks[0]: unknown model 'gpt-5'",
        "retry.attempts: must be at least 1, got 0",
    ]
    assert sorted(problems) == sorted(expected)


def test_check_unset_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TEAM_A_KEY", TEAM_KEY)
    path = tmp_path / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert main(["check", "--config", str(path)]) != 0
    err = capsys.readouterr().err
    assert "providers.openai.api_key: environment variable OPENAI_API_KEY is not set and has no default" in err


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nope.yaml"
    assert main(["check", "--config", str(path)]) != 0
    err = capsys.readouterr().err
    assert f"{path}: cannot read" in err


def test_check_default_without_openai_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "<embedded default>: ok",
        "providers:",
        "  echo: echo (built-in)",
        "models:",
        "  echo: echo/echo",
        "auth: none, keys: 0",
    ]


def test_check_default_with_openai_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "<embedded default>: ok"
    assert "  openai: openai" in lines
    assert "  echo: echo (built-in)" in lines
    for model in ("gpt-4o", "gpt-4o-mini", "o3"):
        assert f"  {model}: openai/{model}" in lines
    assert OPENAI_KEY not in out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "command" in capsys.readouterr().err


def test_python_dash_m_check(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "TEAM_A_KEY")}
    env |= {"OPENAI_API_KEY": OPENAI_KEY, "TEAM_A_KEY": TEAM_KEY}
    result = subprocess.run(
        [sys.executable, "-m", "routemw", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"{path}: ok"
    assert "  gpt-4o: openai/gpt-4o, local/llama3.1; fallbacks: echo" in result.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "routemw", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "models.gpt-4o.routs: unknown key" in result.stderr


# -- exit status, config from the environment, version ------------------------------------------


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["check", "serve"])
def test_an_unusable_config_exits_2_whatever_the_command(
    command: str, bad_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--config", str(bad_file)]) == 2
    assert main([command, "--config", str(bad_file.with_name("missing.yaml"))]) == 2
    err = capsys.readouterr().err
    assert "models.gpt-4o.routs: unknown key" in err
    assert "missing.yaml: cannot read" in err


def test_a_usage_error_exits_2_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--shutdown-timeout", "-1"])
    assert info.value.code == 2
    assert "--shutdown-timeout: must be a number of seconds, at least 0, got '-1'" in capsys.readouterr().err


def test_routemw_config_names_the_config_when_config_is_absent(
    good_file: Path, bad_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROUTEMW_CONFIG", str(good_file))
    assert main(["check"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{good_file}: ok"

    monkeypatch.setenv("ROUTEMW_CONFIG", str(bad_file))
    assert main(["check", "--config", str(good_file)]) == 0  # the flag wins
    assert capsys.readouterr().out.splitlines()[0] == f"{good_file}: ok"
    assert main(["serve"]) == 2  # serve reads it too, and refuses the bad file before binding
    assert "models.gpt-4o.routs: unknown key" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"routemw {metadata.version('routemw')}\n"


def test_check_never_prints_userinfo_of_a_base_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROXY_PASSWORD", "pr0xy-pa55word")
    path = tmp_path / "proxy.yaml"
    path.write_text(
        """\
providers:
  corp: {type: openai, base_url: "https://gw-user:${PROXY_PASSWORD}@llm.corp.example:8443/v1?tenant=a@b"}
  bare: {type: openai, base_url: "http://token@10.0.0.7/v1"}
models:
  m: {routes: [{provider: corp, model: m}, {provider: bare, model: m}]}
""",
        encoding="utf-8",
    )
    assert main(["check", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "  corp: openai https://***@llm.corp.example:8443/v1?tenant=a@b" in out.splitlines()
    assert "  bare: openai http://***@10.0.0.7/v1" in out.splitlines()
    for secret in ("pr0xy-pa55word", "gw-user", "token"):
        assert secret not in out + err
