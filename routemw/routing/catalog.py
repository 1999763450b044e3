"""Public model ids and their ordered candidate targets, built once from the configuration.

A model's routes are either a weighted choice or an ordered preference, decided here once: if
any route sets `weight`, every route of the model gets one (1 where unset) and the fallback
middleware draws the order per request in proportion to them, equal weights included; if none
does, targets carry no weight and are tried in the order written. Looking at the values instead
(weighted only when some weight differs from 1) sent every request to the first of two routes
with `weight: 1` each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..capabilities import LIMITS
from ..config import GatewayConfig
from ..errors import ConfigError
from ..providers.base import ModelNameRules, Provider, Target

__all__ = ["Catalog", "ModelEntry"]


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A public model: its own routes in order, then the models it falls back to."""

    id: str
    targets: tuple[Target, ...]
    fallbacks: tuple[str, ...]
    owned_by: str
    # The `model` its answers report: the public id (this entry's `id`), or None for the upstream's.
    response_model: str | None = None

    def card(self, created: int) -> dict[str, Any]:
        """The `GET /v1/models` entry: OpenAI's fields, plus what the model can do.

        A flag is true when some route supports it, false when every route refuses it, and
        null when no route is known to support it; a limit is the largest any route allows.
        """
        return {
            "id": self.id,
            "object": "model",
            "created": created,
            "owned_by": self.owned_by,
            "capabilities": _merge_flags(t.profile.flags() for t in self.targets),
        }


def _merge_flags(all_flags: Iterable[dict[str, bool | int | None]]) -> dict[str, bool | int | None]:
    rows = list(all_flags)
    merged: dict[str, bool | int | None] = {}
    for key in rows[0] if rows else ():
        values = [row[key] for row in rows]
        if key in LIMITS:
            known = [v for v in values if v is not None]
            merged[key] = max(known) if known and len(known) == len(values) else None
        else:
            merged[key] = True if True in values else None if None in values else False
    return merged


class Catalog:
    def __init__(self, entries: Mapping[str, ModelEntry]) -> None:
        self._entries = MappingProxyType(dict(entries))

    @classmethod
    def build(cls, config: GatewayConfig, providers: Mapping[str, Provider]) -> Catalog:
        """The catalog; `ConfigError` listing every route whose model its provider refuses."""
        problems = [
            f"models.{model.name}.routes[{i}].model: {problem}"
            for model in config.models.values()
            for i, route in enumerate(model.routes)
            if isinstance(provider := providers[route.provider], ModelNameRules)
            and (problem := provider.model_name_problem(route.model)) is not None
        ]
        if problems:
            raise ConfigError(problems)
        entries: dict[str, ModelEntry] = {}
        for model in config.models.values():
            weighted = any(route.weight is not None for route in model.routes)
            targets = tuple(
                Target(
                    provider=providers[route.provider],
                    model=route.model,
                    public_model=model.name,
                    # Route overrides beat model overrides beat what the adapter declares.
                    profile=providers[route.provider]
                    .profile(route.model)
                    .override(model.capabilities)
                    .override(route.capabilities),
                    params=route.params,
                    weight=(1.0 if route.weight is None else route.weight) if weighted else None,
                )
                for route in model.routes
            )
            owned_by = model.owned_by or (model.routes[0].provider if model.routes else "routemw")
            response_model = model.name if model.response_model == "public" else None
            entries[model.name] = ModelEntry(model.name, targets, model.fallbacks, owned_by, response_model)
        return cls(entries)

    def get(self, model: str) -> ModelEntry | None:
        return self._entries.get(model)

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def candidates(self, model: str, allowed: Callable[[str], bool] = lambda _: True) -> list[Target]:
        """The model's own routes, then the routes of each fallback model that `allowed` admits."""
        entry = self._entries.get(model)
        if entry is None:
            return []
        targets = list(entry.targets)
        for name in entry.fallbacks:
            fallback = self._entries.get(name)
            if fallback is not None and allowed(name):
                targets.extend(fallback.targets)
        return targets
