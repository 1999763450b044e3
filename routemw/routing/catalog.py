"""Public model ids and their ordered candidate targets, built once from the configuration."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..config import GatewayConfig
from ..providers.base import Provider, Target

__all__ = ["Catalog", "ModelEntry"]


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A public model: its own routes in order, then the models it falls back to."""

    id: str
    targets: tuple[Target, ...]
    fallbacks: tuple[str, ...]
    owned_by: str
    capabilities: Mapping[str, bool]

    def card(self, created: int) -> dict[str, Any]:
        """The `GET /v1/models` entry: OpenAI's fields, plus the capability flags."""
        return {
            "id": self.id,
            "object": "model",
            "created": created,
            "owned_by": self.owned_by,
            "capabilities": dict(self.capabilities),
        }


class Catalog:
    def __init__(self, entries: Mapping[str, ModelEntry]) -> None:
        self._entries = MappingProxyType(dict(entries))

    @classmethod
    def build(cls, config: GatewayConfig, providers: Mapping[str, Provider]) -> Catalog:
        entries: dict[str, ModelEntry] = {}
        for model in config.models.values():
            targets = tuple(
                Target(
                    provider=providers[route.provider],
                    model=route.model,
                    public_model=model.name,
                    params=route.params,
                    capabilities=route.capabilities,
                    weight=route.weight,
                )
                for route in model.routes
            )
            owned_by = model.owned_by or (model.routes[0].provider if model.routes else "routemw")
            entries[model.name] = ModelEntry(model.name, targets, model.fallbacks, owned_by, model.capabilities)
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
