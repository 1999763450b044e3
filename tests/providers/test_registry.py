"""ProviderRegistry: built-ins, plugins through entry points, refusals, and the read-only view."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from routemw.config import ProviderConfig
from routemw.errors import ConfigError
from routemw.providers import registry as registry_module
from routemw.providers.base import Provider
from routemw.providers.echo import EchoProvider
from routemw.providers.openai import OpenAIProvider
from routemw.providers.registry import BUILTINS, ENTRY_POINT_GROUP, ProviderRegistry

# One type per built-in register hook: routemw.providers.<type>:register.
BUILTIN_TYPES = tuple(path.split(":")[0].rsplit(".", 1)[1] for path in BUILTINS)
KNOWN = ", ".join(sorted(ProviderRegistry.default(plugins=False).types))

Hook = Callable[[ProviderRegistry], object]


@dataclass
class FakeEntryPoint:
    """Just what load_entry_points uses of importlib.metadata.EntryPoint."""

    name: str
    value: str
    hook: Hook | None = None
    error: Exception | None = None

    def load(self) -> Hook:
        if self.error is not None:
            raise self.error
        assert self.hook is not None
        return self.hook


def install(monkeypatch: pytest.MonkeyPatch, *entry_points: FakeEntryPoint) -> list[str]:
    """Make the registry see `entry_points`; returns the groups it asked for."""
    groups: list[str] = []

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        groups.append(group)
        return list(entry_points)

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    return groups


def factory(config: ProviderConfig) -> Provider:
    return OpenAIProvider(config)


def registering(name: str, options: tuple[str, ...] = ()) -> Hook:
    def register(registry: ProviderRegistry) -> None:
        registry.register(name, factory, options=options)

    return register


# --- built-ins --------------------------------------------------------------------------------


def test_default_has_openai_and_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch)
    registry = ProviderRegistry.default()
    assert "openai" in registry and "echo" in registry
    assert set(registry.types) == {name for name in BUILTIN_TYPES}
    assert registry.types["openai"] == frozenset({"organization", "project", "profiles"})
    assert registry.types["echo"] == frozenset({"script", "chunk_delay"})


def test_default_without_plugins_does_not_read_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = install(monkeypatch, FakeEntryPoint("x", "x:register", registering("x")))
    registry = ProviderRegistry.default(plugins=False)
    assert groups == []
    assert set(registry.types) == set(BUILTIN_TYPES)


def test_create_builds_the_adapter_for_the_type() -> None:
    registry = ProviderRegistry.default(plugins=False)
    openai = registry.create(ProviderConfig(name="main", type="openai", base_url="https://example.test/v1"))
    echo = registry.create(ProviderConfig(name="echo", type="echo"))
    assert isinstance(openai, OpenAIProvider) and not isinstance(openai, EchoProvider)
    assert isinstance(echo, EchoProvider)
    assert openai.name == "main"
    assert isinstance(openai, Provider)


def test_unknown_type_in_create_names_the_known_types() -> None:
    registry = ProviderRegistry.default(plugins=False)
    with pytest.raises(ConfigError) as info:
        registry.create(ProviderConfig(name="claude", type="claude-native"))
    assert info.value.problems == (
        f"providers.claude.type: unknown provider type 'claude-native'; known types: {KNOWN}",
    )


def test_empty_registry_knows_nothing() -> None:
    registry = ProviderRegistry()
    assert dict(registry.types) == {}
    with pytest.raises(ConfigError, match=r"known types: $"):
        registry.create(ProviderConfig(name="p", type="openai"))


# --- registration -----------------------------------------------------------------------------


def test_register_and_create_a_new_type() -> None:
    created: list[ProviderConfig] = []

    def make(config: ProviderConfig) -> Provider:
        created.append(config)
        return OpenAIProvider(config)

    registry = ProviderRegistry()
    registry.register("my-llm_2", make, options=["region", "region"])
    assert registry.types == {"my-llm_2": frozenset({"region"})}
    config = ProviderConfig(name="mine", type="my-llm_2")
    provider = registry.create(config)
    assert created == [config]
    assert provider.name == "mine"


def test_duplicate_registration_names_the_builtin_origin() -> None:
    registry = ProviderRegistry.default(plugins=False)
    with pytest.raises(ValueError, match=r"'openai' is already registered \(by routemw\.providers\.openai:register\)"):
        registry.register("openai", factory)
    assert isinstance(registry.create(ProviderConfig(name="p", type="openai")), OpenAIProvider)


def test_duplicate_direct_registration_names_the_direct_origin() -> None:
    registry = ProviderRegistry()
    registry.register("mine", factory)
    with pytest.raises(ValueError, match=r"'mine' is already registered \(by <direct>\)"):
        registry.register("mine", factory)


def test_duplicate_from_a_plugin_names_the_first_plugin(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install(
        monkeypatch,
        FakeEntryPoint("first", "first_pkg:register", registering("shared")),
        FakeEntryPoint("second", "second_pkg:register", registering("shared")),
    )
    registry = ProviderRegistry.default(plugins=False)
    with caplog.at_level(logging.WARNING, logger="routemw"):
        registry.load_entry_points()
    # The clash is logged with both origins and the second plugin is skipped, not fatal.
    assert "shared" in registry
    assert any(
        "second_pkg:register" in r.getMessage() and "by first_pkg:register (entry point 'first')" in r.getMessage()
        for r in caplog.records
    )


def test_load_by_dotted_path_records_the_origin() -> None:
    registry = ProviderRegistry()
    registry.load([BUILTINS[1]])
    assert set(registry.types) == {"echo"}
    with pytest.raises(ValueError, match=r"by routemw\.providers\.echo:register"):
        registry.register("echo", factory)


@pytest.mark.parametrize("name", ["", "has space", "dot.ted", "slash/ed", "colon:"])
def test_register_refuses_bad_names(name: str) -> None:
    registry = ProviderRegistry()
    with pytest.raises(ValueError, match="alphanumeric"):
        registry.register(name, factory)
    assert dict(registry.types) == {}


def test_register_refuses_a_non_callable_factory() -> None:
    registry = ProviderRegistry()
    not_callable: Any = "OpenAIProvider"
    with pytest.raises(TypeError, match="factory must be callable"):
        registry.register("x", not_callable)
    assert "x" not in registry


# --- plugins ----------------------------------------------------------------------------------


def test_plugin_entry_point_registers_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = install(monkeypatch, FakeEntryPoint("acme", "acme_routemw:register", registering("acme", ("region",))))
    registry = ProviderRegistry.default()
    assert groups == [ENTRY_POINT_GROUP] == ["routemw.providers"]
    assert registry.types["acme"] == frozenset({"region"})
    assert {"openai", "echo"} <= set(registry.types)
    assert isinstance(registry.create(ProviderConfig(name="a", type="acme")), OpenAIProvider)
    with pytest.raises(ValueError, match=r"by acme_routemw:register \(entry point 'acme'\)"):
        registry.register("acme", factory)


def test_load_entry_points_uses_the_given_group(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = install(monkeypatch)
    ProviderRegistry().load_entry_points("other.group")
    assert groups == ["other.group"]


def test_broken_plugin_logs_a_warning_and_others_still_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    install(
        monkeypatch,
        FakeEntryPoint("before", "before_pkg:register", registering("before")),
        FakeEntryPoint("broken", "broken_pkg:register", error=ImportError("No module named 'broken_pkg'")),
        FakeEntryPoint("after", "after_pkg:register", registering("after")),
    )
    with caplog.at_level(logging.WARNING, logger="routemw"):
        registry = ProviderRegistry.default()
    assert {"before", "after", *BUILTIN_TYPES} == set(registry.types)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "routemw"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "broken_pkg:register" in message
    assert "No module named 'broken_pkg'" in message


def test_registration_after_a_plugin_is_direct_again(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeEntryPoint("acme", "acme:register", registering("acme")))
    registry = ProviderRegistry.default()
    registry.register("mine", factory)
    with pytest.raises(ValueError, match=r"by <direct>"):
        registry.register("mine", factory)


# --- the read-only view -----------------------------------------------------------------------


def test_types_view_is_read_only() -> None:
    registry = ProviderRegistry.default(plugins=False)
    types: Any = registry.types
    with pytest.raises(TypeError):
        types["evil"] = frozenset()
    with pytest.raises(TypeError):
        del types["openai"]
    with pytest.raises(AttributeError):
        types["openai"].add("api_version")
    assert "evil" not in registry
    assert registry.types["openai"] == frozenset({"organization", "project", "profiles"})
