"""load_config and default_document: sources, interpolation, and every problem reported with its path."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from routemw.cli import main
from routemw.config import GatewayConfig, ModelConfig, ProviderConfig, RouteConfig, default_document, load_config
from routemw.errors import ConfigError
from routemw.providers.registry import ProviderRegistry

KNOWN = ", ".join(sorted(ProviderRegistry.default(plugins=False).types))

EXAMPLE = """\
server: {host: 127.0.0.1, port: 8000, max_body_bytes: 8388608}
providers:
  openai:   {type: openai, base_url: "https://api.openai.com/v1", api_key: "${OPENAI_API_KEY}", timeout: 60}
  local:    {type: openai, base_url: "http://127.0.0.1:11434/v1"}
models:
  gpt-4o:
    routes:
      - {provider: openai, model: gpt-4o}
      - {provider: local, model: llama3.1}
    capabilities: {tools: true, json_schema: true, vision: true}
    fallbacks: [echo]
  echo:
    routes: [{provider: echo, model: echo}]
keys:
  - {name: team-a, key: "${TEAM_A_KEY}", models: ["*"]}
auth: {mode: keys}
retry: {attempts: 3, backoff_initial: 0.25, backoff_max: 8, timeout: 120}
params: {unsupported: reject}
"""
ENV = {"OPENAI_API_KEY": "sk-test-openai", "TEAM_A_KEY": "team-a-secret"}
SHA = "ab" * 32
ECHO_MODEL = {"routes": [{"provider": "echo", "model": "echo"}]}


@pytest.fixture(scope="module")
def types() -> Mapping[str, frozenset[str]]:
    return ProviderRegistry.default(plugins=False).types


def serving(source: Any) -> Any:
    """A document about other sections gets the echo model, since a config serving nothing is refused."""
    if isinstance(source, Mapping) and "models" not in source:
        return {**source, "models": {"echo": ECHO_MODEL}}
    return source


def problems_of(source: Any, environ: Mapping[str, str] | None = None, **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        load_config(serving(source), environ={} if environ is None else environ, **kwargs)
    problems = info.value.problems
    for problem in problems:  # every problem is also in the exception's message
        assert problem in str(info.value)
    return problems


def load(source: Any, environ: Mapping[str, str] | None = None, **kwargs: Any) -> GatewayConfig:
    return load_config(serving(source), environ={} if environ is None else environ, **kwargs)


# --- sources ----------------------------------------------------------------------------------


def check_example(config: GatewayConfig, source: str) -> None:
    assert config.source == source
    assert (config.server.host, config.server.port, config.server.max_body_bytes) == ("127.0.0.1", 8000, 8388608)
    assert config.providers["openai"] == ProviderConfig(
        name="openai", type="openai", base_url="https://api.openai.com/v1", api_key="sk-test-openai", timeout=60.0
    )
    assert config.providers["local"].base_url == "http://127.0.0.1:11434/v1"
    assert config.providers["local"].api_key is None
    assert set(config.providers) == {"openai", "local"}
    gpt = config.models["gpt-4o"]
    assert gpt.routes == (RouteConfig("openai", "gpt-4o"), RouteConfig("local", "llama3.1"))
    assert dict(gpt.capabilities) == {"tools": True, "json_schema": True, "vision": True}
    assert gpt.fallbacks == ("echo",)
    assert config.models["echo"] == ModelConfig(name="echo", routes=(RouteConfig("echo", "echo"),))
    assert len(config.keys) == 1
    key = config.keys[0]
    assert (key.name, key.key, key.sha256, key.models) == ("team-a", "team-a-secret", None, ("*",))
    assert config.auth.mode == "keys"
    retry = config.retry
    assert (retry.attempts, retry.backoff_initial, retry.backoff_max, retry.timeout) == (3, 0.25, 8.0, 120.0)
    assert config.params.unsupported == "reject"


def test_example_yaml_file(tmp_path: Path, types: Mapping[str, frozenset[str]]) -> None:
    path = tmp_path / "routemw.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    check_example(load(path, ENV, provider_types=types), str(path))
    check_example(load(str(path), ENV, provider_types=types), str(path))


def test_example_json_file(tmp_path: Path, types: Mapping[str, frozenset[str]]) -> None:
    path = tmp_path / "routemw.json"
    path.write_text(json.dumps(yaml.safe_load(EXAMPLE)), encoding="utf-8")
    check_example(load(path, ENV, provider_types=types), str(path))


def test_example_mapping(types: Mapping[str, frozenset[str]]) -> None:
    check_example(load(yaml.safe_load(EXAMPLE), ENV, provider_types=types), "<mapping>")


def test_example_without_provider_types() -> None:
    check_example(load(yaml.safe_load(EXAMPLE), ENV), "<mapping>")


SERVES_NOTHING = (
    "models: required: at least one model, routed to a provider declared under `providers` "
    "(or to the built-in `echo`); this configuration serves nothing"
)


@pytest.mark.parametrize("document", [{}, {"models": None}, {"models": {}}, {"providers": {"p": {"type": "openai"}}}])
def test_a_config_that_serves_nothing_is_refused_saying_what_is_missing(document: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(document, environ={})
    assert info.value.problems == (SERVES_NOTHING,)


def test_an_empty_yaml_file_is_refused_saying_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here\n", encoding="utf-8")
    assert problems_of(path) == (SERVES_NOTHING,)


@pytest.mark.parametrize("text", ["", "# nothing here\n", "providers:\n  openai: {type: openai}\n"])
def test_routemw_check_refuses_a_config_that_serves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "routemw.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["check", "--config", str(path)]) != 0
    captured = capsys.readouterr()
    assert f"  - {SERVES_NOTHING}" in captured.err.splitlines()
    assert "ok" not in captured.out


def test_a_document_with_only_the_echo_model_gives_defaults_for_the_rest() -> None:
    config = load({"models": {"echo": ECHO_MODEL}})
    assert config == GatewayConfig(models=config.models)
    assert config.models["echo"].routes == (RouteConfig("echo", "echo"),)


def test_loaded_config_is_read_only() -> None:
    config = load({"providers": {"p": {"type": "openai"}}, "models": {"echo": ECHO_MODEL}})
    with pytest.raises(TypeError):
        config.models["other"] = config.models["echo"]  # type: ignore[index]
    with pytest.raises(TypeError):
        config.providers["p"].options["x"] = 1  # type: ignore[index]


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("models: {gpt-4o: [unclosed\n", encoding="utf-8")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: not valid YAML")


SECRET = "sk-live-0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (f"providers:\n  openai: {{type: openai, api_key: {SECRET}: x}}\n", "line 2, column"),
        (f"providers:\n  openai:\n    api_key: {SECRET}\n   type: openai\n", "line 4, column 4"),
        (f"providers:\n  openai:\n    api_key: *{SECRET}\n", "line 3, column 14"),
        (f'providers:\n  openai:\n    api_key: "{SECRET}\\q"\n', "line 3, column 40"),
        (f"providers:\n  openai:\n\tapi_key: {SECRET}\n", "line 3, column 1"),
    ],
)
def test_a_yaml_syntax_error_gives_file_line_and_column_but_no_text_of_the_line(
    tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: not valid YAML at {where}")
    # Not the secret, nor any piece of it; and not through the exception chain (a traceback) either.
    for text_piece in (SECRET, SECRET[:8], SECRET[-8:], "api_key"):
        assert text_piece not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_json_syntax_error_gives_file_line_and_column_but_no_text_of_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(f'{{"providers": {{\n  "openai": {{"api_key": "{SECRET}" "type": "openai"}}}}}}', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == (f"{path}: not valid JSON at line 2, column 52: Expecting ',' delimiter",)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"models": }', encoding="utf-8")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: not valid JSON")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: cannot read")


def test_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    assert problems_of(path) == ("<root>: expected a mapping, got list",)


# --- interpolation ----------------------------------------------------------------------------


def test_variables_and_defaults() -> None:
    document = {
        "server": {"host": "${HOST}"},
        "providers": {
            "p": {
                "type": "openai",
                "base_url": "${SCHEME:-https}://${API_HOST:-api.example.com}/v${VERSION:-1}",
                "headers": {"x-team": "team-${TEAM}", "x-fixed": "${UNSET:-fallback value}"},
            }
        },
    }
    config = load(document, {"HOST": "0.0.0.0", "TEAM": "a", "API_HOST": "llm.internal"})
    assert config.server.host == "0.0.0.0"
    assert config.providers["p"].base_url == "https://llm.internal/v1"
    assert dict(config.providers["p"].headers) == {"x-team": "team-a", "x-fixed": "fallback value"}


def test_double_dollar_is_a_literal_dollar() -> None:
    headers = {"x": "$${NOT_A_VAR}", "y": "cost: $$5", "z": "pa$$word$$", "w": "$$$${A}"}
    config = load({"providers": {"p": {"type": "openai", "headers": headers}}, "models": {"echo": ECHO_MODEL}})
    assert dict(config.providers["p"].headers) == {"x": "${NOT_A_VAR}", "y": "cost: $5", "z": "pa$word$", "w": "$${A}"}


UNTERMINATED = "`${` must be followed by a variable name and a closing `}`; write `$$` for a literal `$`"
SHELL_STYLE = "a shell-style `$VAR` is not interpolated: write `${VAR}`, or write `$$` for a literal `$`"
LONE_DOLLAR = "a `$` must start `${VAR}`; write `$$` for a literal `$`"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${OPENAI_API_KEY", UNTERMINATED),
        ("${1BAD}", UNTERMINATED),
        ("$OPENAI_API_KEY", SHELL_STYLE),
        ("sk-$ecret", SHELL_STYLE),
        ("cost: $5", LONE_DOLLAR),
        ("trailing$", LONE_DOLLAR),
    ],
)
def test_a_dollar_that_is_not_a_reference_is_an_error_naming_the_path(value: str, message: str) -> None:
    document = {"providers": {"p": {"type": "openai", "api_key": value}}, "models": {"echo": ECHO_MODEL}}
    problems = problems_of(document, {"OPENAI_API_KEY": "sk-from-env"})
    assert problems == (f"providers.p.api_key: {message}",)


def test_malformed_references_are_reported_everywhere_without_quoting_the_value() -> None:
    document = {
        "providers": {"p": {"type": "openai", "api_key": "sk-$ecret-$ecret-${A", "headers": {"h": "${B"}}},
        "models": {"echo": ECHO_MODEL},
    }
    problems = problems_of(document, {"A": "a", "B": "b"})
    paths = [p.split(":")[0] for p in problems]
    assert paths == ["providers.p.api_key", "providers.p.api_key", "providers.p.headers.h"]
    assert not any("ecret" in p for p in problems)


def test_substituted_values_are_not_interpolated_again() -> None:
    config = load({"providers": {"p": {"type": "openai", "api_key": "${KEY}"}}}, {"KEY": "a${OTHER}b"})
    assert config.providers["p"].api_key == "a${OTHER}b"


def test_unset_variable_names_the_variable_and_the_path() -> None:
    problems = problems_of(yaml.safe_load(EXAMPLE), {"TEAM_A_KEY": "k"})
    assert problems == ("providers.openai.api_key: environment variable OPENAI_API_KEY is not set and has no default",)


def test_every_unset_variable_is_reported() -> None:
    problems = problems_of(yaml.safe_load(EXAMPLE), {})
    assert len(problems) == 2
    assert any(p.startswith("providers.openai.api_key:") and "OPENAI_API_KEY" in p for p in problems)
    assert any(p.startswith("keys[0].key:") and "TEAM_A_KEY" in p for p in problems)


def test_unset_variable_in_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    problems = problems_of(path, {"OPENAI_API_KEY": "sk"})
    assert problems == ("keys[0].key: environment variable TEAM_A_KEY is not set and has no default",)


def test_set_but_empty_variable_is_used_when_there_is_no_default() -> None:
    config = load({"providers": {"p": {"type": "openai", "api_key": "${KEY}"}}}, {"KEY": ""})
    assert config.providers["p"].api_key is None


def test_default_applies_when_variable_is_empty() -> None:
    config = load({"server": {"host": "${HOST:-localhost}"}}, {"HOST": ""})
    assert config.server.host == "localhost"


def test_empty_api_key_becomes_none() -> None:
    config = load({"providers": {"p": {"type": "openai", "api_key": "${OPENAI_API_KEY:-}"}}}, {})
    assert config.providers["p"].api_key is None
    assert config.secrets() == ()


# --- unknown keys and several problems at once ------------------------------------------------


def test_unknown_keys_are_reported_with_full_paths() -> None:
    document = {
        "server": {"prot": 8000},
        "modles": {},
        "models": {"gpt-4o": {"routs": [{"provider": "echo", "model": "echo"}]}, "echo": ECHO_MODEL},
        "auth": {"mode": "none", "header": "x"},
        "retry": {"attempt": 2},
        "params": {"unsuported": "drop"},
    }
    problems = problems_of(document)
    for expected in (
        "server.prot: unknown key",
        "modles: unknown key",
        "models.gpt-4o.routs: unknown key",
        "auth.header: unknown key",
        "retry.attempt: unknown key",
        "params.unsuported: unknown key",
    ):
        assert expected in problems
    assert "models.gpt-4o.routes: required: a non-empty list of {provider, model}" in problems


def test_unknown_keys_in_routes_and_keys() -> None:
    document = {
        "models": {"echo": {"routes": [{"provider": "echo", "model": "echo", "wieght": 2}]}},
        "keys": [{"name": "k", "key": "secret", "models": ["*"], "model": "echo"}],
    }
    assert set(problems_of(document)) == {
        "models.echo.routes[0].wieght: unknown key",
        "keys[0].model: unknown key",
    }


def test_several_problems_are_reported_together(types: Mapping[str, frozenset[str]]) -> None:
    document = {
        "server": {"port": 70000, "host": ""},
        "providers": {
            "a": {"type": "nope"},
            "b": {"base_url": "https://x"},
            "c": {"type": "openai", "base_url": "ftp://x", "timeout": 0},
        },
        "models": {
            "m": {"routes": [{"provider": "missing", "model": "x"}], "fallbacks": ["ghost"]},
            "n": {"routes": []},
        },
        "keys": [{"name": "k", "models": ["m"]}],
        "retry": {"attempts": 0},
        "params": {"unsupported": "ignore"},
    }
    problems = problems_of(document, provider_types=types)
    expected = {
        "server.port: must be at most 65535, got 70000",
        "server.host: expected a non-empty string, got string",
        f"providers.a.type: unknown provider type 'nope'; known types: {KNOWN}",
        "providers.b.type: required (the adapter to use, for example `openai`)",
        "providers.c.base_url: expected an http:// or https:// URL, got 'ftp://x'",
        "providers.c.timeout: must be greater than 0",
        "models.m.routes[0].provider: unknown provider 'missing'; declared providers: a, b, c, echo",
        "models.m.fallbacks[0]: unknown model 'ghost'",
        "models.n.routes: required: a non-empty list of {provider, model}",
        "keys[0]: needs exactly one of `key` and `sha256`",
        "retry.attempts: must be at least 1, got 0",
        "params.unsupported: expected one of reject, drop, clamp, got 'ignore'",
    }
    assert expected <= set(problems), expected - set(problems)
    assert len(problems) == len(expected)


# --- providers --------------------------------------------------------------------------------


def test_unknown_provider_type_lists_known_types(types: Mapping[str, frozenset[str]]) -> None:
    problems = problems_of({"providers": {"claude": {"type": "claude-native"}}}, provider_types=types)
    assert problems == (f"providers.claude.type: unknown provider type 'claude-native'; known types: {KNOWN}",)


def test_an_unknown_provider_type_is_reported_once_not_again_in_each_route(types: Mapping[str, frozenset[str]]) -> None:
    route = {"provider": "claude", "model": "claude-sonnet-4-5"}
    document = {
        "providers": {"claude": {"type": "claude-native"}, "bad": {"base_url": "https://x"}},
        "models": {
            "a": {"routes": [route]},
            "b": {"routes": [route, {"provider": "bad", "model": "x", "weight": -1}]},
        },
    }
    assert problems_of(document, provider_types=types) == (
        f"providers.claude.type: unknown provider type 'claude-native'; known types: {KNOWN}",
        "providers.bad.type: required (the adapter to use, for example `openai`)",
        "models.b.routes[1].weight: must be at least 0, got -1",
    )


def test_any_provider_type_is_accepted_without_provider_types() -> None:
    config = load({"providers": {"claude": {"type": "anthropic", "version": "2023-06-01"}}})
    assert config.providers["claude"].type == "anthropic"
    assert dict(config.providers["claude"].options) == {"version": "2023-06-01"}


def test_provider_options_are_checked_per_type(types: Mapping[str, frozenset[str]]) -> None:
    document = {
        "providers": {
            "good": {"type": "openai", "organization": "org-1", "project": "proj"},
            "bad": {"type": "openai", "organisation": "org-1", "script": []},
            "fake": {"type": "echo", "chunk_delay": 0.1, "organization": "x"},
        }
    }
    assert set(problems_of(document, provider_types=types)) == {
        "providers.bad.organisation: unknown key",
        "providers.bad.script: unknown key",
        "providers.fake.organization: unknown key",
    }
    del document["providers"]["bad"]
    del document["providers"]["fake"]["organization"]
    config = load(document, provider_types=types)
    assert dict(config.providers["good"].options) == {"organization": "org-1", "project": "proj"}
    assert dict(config.providers["fake"].options) == {"chunk_delay": 0.1}


def test_provider_common_fields(types: Mapping[str, frozenset[str]]) -> None:
    document = {
        "providers": {
            "p": {"type": "openai", "base_url": "https://api.example.com/v1/", "timeout": 2.5, "headers": {"a": "b"}},
            "q": {"type": "openai", "base_url": "http://localhost:8080//"},
        }
    }
    config = load(document, provider_types=types)
    assert config.providers["p"].base_url == "https://api.example.com/v1"
    assert config.providers["p"].timeout == 2.5
    assert dict(config.providers["p"].headers) == {"a": "b"}
    assert config.providers["q"].base_url == "http://localhost:8080"
    assert config.providers["q"].timeout == 60.0


@pytest.mark.parametrize("url", ["api.openai.com/v1", "ftp://host", "HTTPS//x", "ws://x"])
def test_base_url_must_be_http_or_https(url: str) -> None:
    problems = problems_of({"providers": {"p": {"type": "openai", "base_url": url}}})
    assert problems == (f"providers.p.base_url: expected an http:// or https:// URL, got {url!r}",)


def test_provider_field_types() -> None:
    document = {
        "providers": {
            "p": {"type": "openai", "api_key": 123, "timeout": "fast", "headers": {"x": 1}},
            "q": {"type": 5},
            "r": "openai",
        }
    }
    assert set(problems_of(document)) == {
        "providers.p.api_key: expected a string, got number",
        "providers.p.timeout: expected a number, got string",
        "providers.p.headers.x: expected a string, got number",
        "providers.q.type: expected a non-empty string, got number",
        "providers.r: expected a mapping, got string",
    }


# --- models and routes ------------------------------------------------------------------------


def test_route_naming_an_undeclared_provider() -> None:
    document = {
        "providers": {"openai": {"type": "openai"}},
        "models": {"m": {"routes": [{"provider": "openia", "model": "gpt-4o"}]}},
    }
    assert problems_of(document) == (
        "models.m.routes[0].provider: unknown provider 'openia'; declared providers: echo, openai",
    )


def test_echo_is_a_provider_without_being_declared() -> None:
    config = load({"models": {"e": {"routes": [{"provider": "echo", "model": "anything"}]}}})
    assert config.providers == {}
    assert config.models["e"].routes == (RouteConfig("echo", "anything"),)


def test_the_config_remembers_whether_a_route_set_its_weight() -> None:
    routes = [{"provider": "echo", "model": "a", "weight": 1}, {"provider": "echo", "model": "b"}]
    config = load({"models": {"m": {"routes": routes}}})
    assert [r.weight for r in config.models["m"].routes] == [1.0, None]


def test_route_settings() -> None:
    route = {
        "provider": "echo",
        "model": "e",
        "weight": 3,
        "params": {"temperature": 0},
        "capabilities": {"tools": False},
    }
    config = load({"models": {"m": {"routes": [route], "owned_by": "me"}}})
    (loaded,) = config.models["m"].routes
    assert loaded.weight == 3.0
    assert dict(loaded.params) == {"temperature": 0}
    assert dict(loaded.capabilities) == {"tools": False}
    assert config.models["m"].owned_by == "me"


def test_route_and_model_field_problems() -> None:
    document = {
        "models": {
            "m": {
                "routes": [
                    {"provider": "echo"},
                    {"model": "x"},
                    "echo",
                    {"provider": "echo", "model": "e", "weight": 0},
                ],
                "capabilities": {"tools": "yes"},
                "fallbacks": "echo",
            },
            "echo": ECHO_MODEL,
        }
    }
    assert set(problems_of(document)) == {
        "models.m.routes[0].model: expected a non-empty string, got null",
        "models.m.routes[1].provider: expected a non-empty string, got null",
        "models.m.routes[2]: expected a mapping, got string",
        "models.m.routes[3].weight: must be greater than 0",
        "models.m.capabilities.tools: expected true or false, got string",
        "models.m.fallbacks: expected a list, got string",
    }


def test_fallbacks_must_name_another_known_model() -> None:
    document = {
        "models": {
            "a": {"routes": [{"provider": "echo", "model": "e"}], "fallbacks": ["b", "nope", "a"]},
            "b": {"routes": [{"provider": "echo", "model": "e"}]},
        }
    }
    assert set(problems_of(document)) == {
        "models.a.fallbacks[1]: unknown model 'nope'",
        "models.a.fallbacks[2]: a model cannot fall back to itself",
    }


# --- keys and auth ----------------------------------------------------------------------------


def test_key_with_sha256() -> None:
    config = load({"models": {"echo": ECHO_MODEL}, "keys": [{"name": "k", "sha256": SHA.upper(), "models": ["echo"]}]})
    (key,) = config.keys
    assert (key.key, key.sha256, key.models) == (None, SHA, ("echo",))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"name": "k", "models": ["*"]}, "keys[0]: needs exactly one of `key` and `sha256`"),
        ({"name": "k", "key": "s", "sha256": SHA, "models": ["*"]}, "keys[0]: needs exactly one of `key` and `sha256`"),
        ({"name": "k", "key": "", "models": ["*"]}, "keys[0].key: expected a non-empty string"),
        ({"name": "k", "sha256": 64, "models": ["*"]}, "keys[0].sha256: expected 64 hexadecimal characters"),
        ({"name": "k", "key": "s"}, 'keys[0].models: required: a list of model ids, or ["*"]'),
        ({"name": "k", "key": "s", "models": "*"}, "keys[0].models: expected a list, got string"),
        ({"key": "s", "models": ["*"]}, "keys[0].name: expected a non-empty string, got null"),
        ({"name": "k", "key": "s", "models": ["echo", "gpt-9"]}, "keys[0].models[1]: unknown model 'gpt-9'"),
    ],
)
def test_key_problems(entry: dict[str, Any], problem: str) -> None:
    assert problem in problems_of({"models": {"echo": ECHO_MODEL}, "keys": [entry]})


@pytest.mark.parametrize(
    "digest",
    [
        "ab" * 33,  # valid hex, wrong length: reported correctly
        "ab" * 31,
        "abc",
        "g" * 64,
        "ab" * 31 + "zz",
    ],
)
def test_bad_sha256_string_is_reported(digest: str) -> None:
    problems = problems_of({"keys": [{"name": "k", "sha256": digest, "models": ["*"]}]})
    assert "keys[0].sha256: expected 64 hexadecimal characters" in problems


def test_duplicate_account_names_and_secrets() -> None:
    secret_digest = hashlib.sha256(b"shared-secret").hexdigest()
    document = {
        "keys": [
            {"name": "a", "key": "shared-secret", "models": ["*"]},
            {"name": "a", "key": "other-secret", "models": ["*"]},
            {"name": "b", "sha256": secret_digest.upper(), "models": ["*"]},
        ]
    }
    problems = problems_of(document)
    assert "keys[1].name: account 'a' is already defined at keys[0]" in problems
    assert "keys[2]: uses the same secret as keys[0]" in problems
    assert not any("shared-secret" in p or secret_digest in p.lower() for p in problems)


def test_malformed_key_value_is_never_echoed() -> None:
    problems = problems_of({"keys": [{"name": "k", "key": 123456789, "models": ["*"]}]})
    assert "keys[0].key: expected a non-empty string" in problems
    assert not any("123456789" in p for p in problems)


def test_keys_must_be_a_list() -> None:
    assert problems_of({"keys": {"name": "k"}}) == ("keys: expected a list, got mapping",)


@pytest.mark.parametrize("keys", [None, []])
def test_auth_mode_keys_needs_keys(keys: list[Any] | None) -> None:
    document: dict[str, Any] = {"auth": {"mode": "keys"}}
    if keys is not None:
        document["keys"] = keys
    (problem,) = problems_of(document)
    assert problem.startswith("auth.mode: is 'keys' but no keys are configured")


def test_auth_mode_must_be_known() -> None:
    assert problems_of({"auth": {"mode": "oauth"}}) == ("auth.mode: expected one of none, keys, got 'oauth'",)


def test_auth_defaults_to_none_and_keys_allowed() -> None:
    assert load({}).auth.mode == "none"
    config = load({"auth": {"mode": "keys"}, "keys": [{"name": "k", "key": "secret", "models": ["*"]}]})
    assert config.auth.mode == "keys"


# --- server, retry, params --------------------------------------------------------------------


def test_retry_values() -> None:
    config = load({"retry": {"attempts": 1, "backoff_initial": 1, "backoff_max": 1, "timeout": 0.5}})
    assert (config.retry.attempts, config.retry.backoff_initial, config.retry.backoff_max) == (1, 1.0, 1.0)
    assert config.retry.timeout == 0.5


@pytest.mark.parametrize(
    ("retry", "problem"),
    [
        ({"attempts": 0}, "retry.attempts: must be at least 1, got 0"),
        ({"attempts": 2.5}, "retry.attempts: expected an integer, got number"),
        ({"attempts": True}, "retry.attempts: expected an integer, got boolean"),
        ({"backoff_initial": 2, "backoff_max": 1}, "retry.backoff_max: must not be smaller than backoff_initial"),
        ({"backoff_initial": 10}, "retry.backoff_max: must not be smaller than backoff_initial"),
        ({"backoff_initial": 0}, "retry.backoff_initial: must be greater than 0"),
        ({"timeout": -1}, "retry.timeout: must be at least 0, got -1"),
        ({"timeout": "60s"}, "retry.timeout: expected a number, got string"),
    ],
)
def test_retry_validation(retry: dict[str, Any], problem: str) -> None:
    assert problems_of({"retry": retry}) == (problem,)


def test_nan_timeout_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nan.yaml"
    path.write_text("retry: {timeout: .nan}\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load(path)


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ({"port": -1}, "server.port: must be at least 0, got -1"),
        ({"port": "80"}, "server.port: expected an integer, got string"),
        ({"max_body_bytes": 0}, "server.max_body_bytes: must be at least 1, got 0"),
        ({"keepalive": -1}, "server.keepalive: must be at least 0, got -1"),
    ],
)
def test_server_validation(server: dict[str, Any], problem: str) -> None:
    assert problems_of({"server": server}) == (problem,)


@pytest.mark.parametrize("policy", ["reject", "drop", "clamp"])
def test_params_policies(policy: str) -> None:
    assert load({"params": {"unsupported": policy}}).params.unsupported == policy


def test_section_of_the_wrong_kind() -> None:
    assert set(problems_of({"server": [1], "models": "echo"})) == {
        "server: expected a mapping, got list",
        "models: expected a mapping, got string",
    }


def test_non_string_keys_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  4: {routes: [{provider: echo, model: e}]}\n", encoding="utf-8")
    assert problems_of(path) == ("models.4: keys must be strings",)


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_lists_provider_keys_inbound_keys_and_headers() -> None:
    document = {
        "providers": {
            "p": {"type": "openai", "api_key": "${OPENAI_API_KEY}", "headers": {"x-api-key": "hdr-secret"}},
            "q": {"type": "openai", "api_key": "abc"},  # too short to scrub safely
            "r": {"type": "openai"},
        },
        "keys": [
            {"name": "a", "key": "${TEAM_A_KEY}", "models": ["*"]},
            {"name": "b", "sha256": SHA, "models": ["*"]},
        ],
    }
    secrets = load(document, ENV).secrets()
    assert set(secrets) == {"sk-test-openai", "team-a-secret", "hdr-secret"}
    assert SHA not in secrets


def test_secrets_of_the_example(types: Mapping[str, frozenset[str]]) -> None:
    config = load(yaml.safe_load(EXAMPLE), ENV, provider_types=types)
    assert set(config.secrets()) == {"sk-test-openai", "team-a-secret"}


def test_secrets_are_not_in_reprs(types: Mapping[str, frozenset[str]]) -> None:
    config = load(yaml.safe_load(EXAMPLE), ENV, provider_types=types)
    assert "sk-test-openai" not in repr(config)
    assert "team-a-secret" not in repr(config)


# --- the embedded default ---------------------------------------------------------------------


def test_default_without_openai_key_serves_only_echo(types: Mapping[str, frozenset[str]]) -> None:
    environ = {"PATH": "/usr/bin"}
    config = load(default_document(environ), environ, provider_types=types)
    assert list(config.models) == ["echo"]
    assert config.models["echo"].routes == (RouteConfig("echo", "echo"),)
    assert config.providers == {}
    assert config.auth.mode == "none"
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8000)


def test_default_with_empty_openai_key_serves_only_echo() -> None:
    assert list(default_document({"OPENAI_API_KEY": ""})["models"]) == ["echo"]


def test_default_with_openai_key(types: Mapping[str, frozenset[str]]) -> None:
    environ = {"OPENAI_API_KEY": "sk-from-environ"}
    document = default_document(environ)
    assert document["providers"]["openai"]["api_key"] == "${OPENAI_API_KEY}"  # resolved by the loader
    config = load(document, environ, provider_types=types)
    assert config.providers["openai"].type == "openai"
    assert config.providers["openai"].api_key == "sk-from-environ"
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3"):
        assert config.models[model].routes == (RouteConfig("openai", model),)
        assert config.models[model].owned_by == "openai"
    assert "echo" in config.models
    assert config.secrets() == ("sk-from-environ",)


def test_default_document_is_fresh_each_time() -> None:
    first = default_document({})
    first["models"]["extra"] = {}
    assert "extra" not in default_document({})["models"]
