"""Readers for the `limits`, `prices` and `usage` sections and a key's `expires`.

They live apart from `sections` so that it only names where each section goes. A budget is
read in USD and kept as integer micro-USD, the unit every cost is computed in, so that summing
many small costs never drifts the way float dollars do.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, Final

from . import keys as accepted
from .fields import FieldReader, join, kind
from .schema import BudgetConfig, LimitsConfig, Period, PriceConfig, TokenQuotaConfig, UsageConfig

__all__ = ["LimitFields"]

_PERIODS: Final = ("day", "week", "month", "total")


class LimitFields(FieldReader):
    """Typed readers for limits, prices, usage and expiry; mixed into the config validator."""

    def limits(self, value: Any, path: str, allowed: frozenset[str] = accepted.LIMITS.names) -> LimitsConfig:
        data = self.mapping(value, path, allowed) or {}
        return LimitsConfig(
            rpm=self.field(data, "rpm", path, self.integer(1), None),
            tpm=self.field(data, "tpm", path, self.integer(1), None),
            concurrency=self.field(data, "concurrency", path, self.integer(1), None),
            budget=self.field(data, "budget", path, self.budget, None),
            tokens=self.field(data, "tokens", path, self.token_quota, None),
        )

    def route_limits(self, value: Any, path: str) -> LimitsConfig:
        # A route's limits are the upstream's own quota: rates only. Concurrency and budgets
        # belong to accounts and models, where a refusal has someone to answer to.
        return self.limits(value, path, accepted.ROUTE_LIMITS.names)

    def budget(self, value: Any, path: str) -> BudgetConfig | None:
        data = self.mapping(value, path, accepted.BUDGET.names)
        if data is None:
            return None
        if "usd" not in data:
            self.problem(join(path, "usd"), "required: the budget in USD per period")
            return None
        usd = self.number(data["usd"], join(path, "usd"))
        if usd is None:
            return None
        return BudgetConfig(micro_usd=round(usd * 1_000_000), period=self._period(data, path))

    def token_quota(self, value: Any, path: str) -> TokenQuotaConfig | None:
        data = self.mapping(value, path, accepted.TOKEN_QUOTA.names)
        if data is None:
            return None
        if "total" not in data:
            self.problem(join(path, "total"), "required: the tokens allowed per period")
            return None
        total = self.integer(0)(data["total"], join(path, "total"))
        if total is None:
            return None
        return TokenQuotaConfig(total=total, period=self._period(data, path))

    def _period(self, data: Mapping[str, Any], path: str) -> Period:
        period = self.field(data, "period", path, self.choice(*_PERIODS), "month")
        return "day" if period == "day" else "week" if period == "week" else "total" if period == "total" else "month"

    def prices(self, value: Any, path: str) -> Mapping[str, PriceConfig]:
        data = self.mapping(value, path) or {}
        out: dict[str, PriceConfig] = {}
        for name, item in data.items():
            price = self.price(item, join(path, name))
            if price is not None:
                out[name] = price
        return MappingProxyType(out)

    def price(self, value: Any, path: str) -> PriceConfig | None:
        data = self.mapping(value, path, accepted.PRICE.names)
        if data is None:
            return None
        missing = [key for key in ("input", "output") if key not in data]
        for key in missing:
            self.problem(join(path, key), "required: USD per 1M tokens")
        rates = {key: self.number(item, join(path, key)) for key, item in data.items()}
        if missing or any(rate is None for rate in rates.values()):
            return None
        return PriceConfig(
            input=float(rates["input"]),
            output=float(rates["output"]),
            cached_input=None if rates.get("cached_input") is None else float(rates["cached_input"]),
            reasoning=None if rates.get("reasoning") is None else float(rates["reasoning"]),
        )

    def usage(self, value: Any, path: str) -> UsageConfig:
        data = self.mapping(value, path, accepted.USAGE.names) or {}
        return UsageConfig(jsonl=self.field(data, "jsonl", path, self.string, None))

    def expires(self, value: Any, path: str) -> datetime | None:
        """A YAML timestamp, or an ISO 8601 string; without a zone it is UTC."""
        moment: datetime | None = None
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                moment = None
        if moment is None:
            self.problem(path, f"expected an ISO 8601 time such as 2027-01-31T00:00:00Z, got {kind(value)} {value!r}")
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
