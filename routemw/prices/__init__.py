"""Model prices as data, and the cost of a request in integer micro-USD.

The package ships a dated table of list prices (`table.json`, keyed by the upstream model
name); the config's `prices` are merged over it. The price of a request is the price of the
route that answered it, looked up from the most specific name to the least:
`provider/upstream-model`, the upstream model name, that name without a date suffix
(`-2024-08-06`, `-20250514`) or `-latest`, and last the public model id. A provider of type
`echo` costs nothing.

A price in USD per 1M tokens is, conveniently, micro-USD per token. Rates are kept as integer
pico-USD per token, so a cost is a sum of integer products, rounded up once to whole micro-USD:
no float drift however many requests a budget adds up, and never rounded in the caller's favour.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from ..config.schema import PriceConfig

__all__ = ["FREE", "Price", "PriceTable", "TokenCounts", "builtin_prices"]

_DATED: Final = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
_PICO: Final = 1_000_000  # pico-USD per micro-USD


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Normalized usage: OpenAI's counting, where `prompt` includes `cached` and `completion` includes `reasoning`."""

    prompt: int = 0
    cached: int = 0
    completion: int = 0
    reasoning: int = 0

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass(frozen=True, slots=True)
class Price:
    """Rates in pico-USD per token (= USD per 1M tokens x 10^6)."""

    input: int
    output: int
    cached_input: int
    reasoning: int

    @classmethod
    def from_config(cls, config: PriceConfig) -> Price:
        def pico(usd_per_million: float) -> int:
            return round(usd_per_million * _PICO)

        cached = config.input if config.cached_input is None else config.cached_input
        reasoning = config.output if config.reasoning is None else config.reasoning
        return cls(pico(config.input), pico(config.output), pico(cached), pico(reasoning))

    def cost(self, usage: TokenCounts) -> int:
        """Micro-USD, rounded up."""
        cached = min(usage.cached, usage.prompt)
        reasoning = min(usage.reasoning, usage.completion)
        pico = (
            (usage.prompt - cached) * self.input
            + cached * self.cached_input
            + (usage.completion - reasoning) * self.output
            + reasoning * self.reasoning
        )
        return -(-pico // _PICO)

    def bound(self, prompt: int, completion: int) -> int:
        """The most `prompt` and `completion` tokens can cost here, whatever is cached or reasoned."""
        pico = prompt * max(self.input, self.cached_input) + completion * max(self.output, self.reasoning)
        return -(-pico // _PICO)

    def card(self) -> dict[str, float]:
        """USD per 1M tokens, for `GET /v1/models`."""
        return {"input": self.input / _PICO, "output": self.output / _PICO, "cached_input": self.cached_input / _PICO}


FREE: Final = Price(0, 0, 0, 0)


def builtin_prices() -> tuple[str, dict[str, PriceConfig]]:
    """The shipped table's date, and its prices by upstream model name."""
    document: Any = json.loads(resources.files(__package__).joinpath("table.json").read_text(encoding="utf-8"))
    models = {
        name: PriceConfig(
            input=float(entry["input"]),
            output=float(entry["output"]),
            cached_input=entry.get("cached_input"),
            reasoning=entry.get("reasoning"),
        )
        for name, entry in document["models"].items()
    }
    return str(document["date"]), models


class PriceTable:
    """Prices by name: the shipped table with the config's `prices` over it."""

    def __init__(self, overrides: Mapping[str, PriceConfig] | None = None, *, free_providers: frozenset[str]) -> None:
        self.date, table = builtin_prices()
        table.update(overrides or {})
        self._prices = {name: Price.from_config(config) for name, config in table.items()}
        self._free = free_providers

    def lookup(self, provider: str, upstream_model: str, public_model: str) -> Price | None:
        """The most specific price known for a route, or None."""
        if provider in self._free:
            return FREE
        for name in (f"{provider}/{upstream_model}", upstream_model, _DATED.sub("", upstream_model), public_model):
            price = self._prices.get(name)
            if price is not None:
                return price
        return None
