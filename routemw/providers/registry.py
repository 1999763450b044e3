"""Adapters by type name: built-ins and plugins register through the same door.

A plugin package exposes a `register(registry)` callable under the entry point group
`routemw.providers`; the built-ins are listed in `BUILTINS` and loaded the same way, by dotted
path, so nothing about them is special. Registration refuses a name that is taken (a silent
overwrite would let one installed package hijack another's provider type), and an unknown type
names the known ones. Each Gateway owns its registry: there is no module-level state.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import Final

from ..config import ProviderConfig
from ..errors import ConfigError
from .base import Provider

__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "ProviderFactory", "ProviderRegistry", "ProviderType"]

logger = logging.getLogger("routemw")

ENTRY_POINT_GROUP: Final = "routemw.providers"
BUILTINS: Final = (
    "routemw.providers.openai:register",
    "routemw.providers.echo:register",
    "routemw.providers.anthropic:register",
    "routemw.providers.openai.azure:register",
    "routemw.providers.gemini:register",
)

ProviderFactory = Callable[[ProviderConfig], Provider]


@dataclass(frozen=True, slots=True)
class ProviderType:
    name: str
    factory: ProviderFactory
    options: frozenset[str]  # config keys the adapter takes beyond type/base_url/api_key/timeout/headers
    origin: str


class ProviderRegistry:
    """Provider types by name. `ProviderRegistry.default()` has the built-ins and plugins."""

    def __init__(self) -> None:
        self._types: dict[str, ProviderType] = {}
        self._loading = "<direct>"

    @classmethod
    def default(cls, *, plugins: bool = True) -> ProviderRegistry:
        registry = cls()
        registry.load(BUILTINS)
        if plugins:
            registry.load_entry_points()
        return registry

    def register(self, name: str, factory: ProviderFactory, *, options: Iterable[str] = ()) -> None:
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"provider type name must be alphanumeric (with - or _), got {name!r}")
        if not callable(factory):
            raise TypeError(f"provider type {name!r}: factory must be callable, got {factory!r}")
        if name in self._types:
            taken = self._types[name].origin
            raise ValueError(f"provider type {name!r} is already registered (by {taken})")
        self._types[name] = ProviderType(name, factory, frozenset(options), self._loading)

    def load(self, paths: Iterable[str]) -> None:
        """Call each `module:function` register hook with this registry."""
        for path in paths:
            module_name, _, attr = path.partition(":")
            hook = getattr(importlib.import_module(module_name), attr)
            self._call_hook(hook, path)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        for entry_point in entry_points(group=group):
            try:
                hook = entry_point.load()
                self._call_hook(hook, f"{entry_point.value} (entry point {entry_point.name!r})")
            except Exception as exc:
                # One broken plugin (an import error, a type name already taken) must not take
                # the gateway down with it; its types stay unknown, and a config that uses one
                # fails with the list of known types.
                logger.warning("routemw: cannot load provider plugin %r: %s", entry_point.value, exc)

    def _call_hook(self, hook: Callable[[ProviderRegistry], object], origin: str) -> None:
        self._loading = origin
        try:
            hook(self)
        finally:
            self._loading = "<direct>"

    @property
    def types(self) -> Mapping[str, frozenset[str]]:
        """Type name to its option names: what the config loader validates against."""
        return MappingProxyType({name: t.options for name, t in self._types.items()})

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def create(self, config: ProviderConfig) -> Provider:
        provider_type = self._types.get(config.type)
        if provider_type is None:
            known = ", ".join(sorted(self._types))
            raise ConfigError(
                [f"providers.{config.name}.type: unknown provider type {config.type!r}; known types: {known}"]
            )
        return provider_type.factory(config)
