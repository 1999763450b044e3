"""What `routemw check` prints about limits and prices: each key's limits, each route's price."""

from __future__ import annotations

from ..config.schema import GatewayConfig, LimitsConfig
from ..routing import Catalog
from .admission import Limits

__all__ = ["describe"]


def _limits(limits: LimitsConfig) -> str:
    parts: list[str] = []
    for name in ("rpm", "tpm", "concurrency"):
        value = getattr(limits, name)
        if value is not None:
            parts.append(f"{name} {value}")
    if limits.budget is not None:
        parts.append(f"budget ${limits.budget.micro_usd / 1_000_000:,.2f}/{limits.budget.period}")
    if limits.tokens is not None:
        parts.append(f"tokens {limits.tokens.total}/{limits.tokens.period}")
    return ", ".join(parts) or "none"


def describe(config: GatewayConfig, catalog: Catalog, limits: Limits) -> list[str]:
    lines = [f"limits (defaults): {_limits(config.limits)}"]
    for key in config.keys:
        own = key.limits if key.limits is not None else config.limits
        origin = "" if key.limits is not None else " (defaults)"
        expires = f", expires {key.expires.isoformat().replace('+00:00', 'Z')}" if key.expires else ""
        lines.append(f"  key {key.name}: {_limits(own)}{origin}{expires}")
    for name, model_limits in limits.models.items():
        lines.append(f"  model {name}: {_limits(model_limits)}")
    for route, route_limits in limits.routes.items():
        lines.append(f"  route {route}: {_limits(route_limits)}")
    lines.append(f"prices (USD per 1M tokens, input/cached input/output; table of {limits.prices.date}):")
    for entry in catalog:
        for target in entry.targets:
            price = limits.price(target)
            if price is None:
                text = "unknown"
            else:
                card = price.card()
                text = f"{card['input']:g}/{card['cached_input']:g}/{card['output']:g}"
            lines.append(f"  {entry.id} via {target.key}: {text}")
    return lines
