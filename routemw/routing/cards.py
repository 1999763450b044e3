"""What `GET /v1/models` says of each model: the catalog's card, and its price.

Built once per gateway: the cards change only with the config, so a request pays for a lookup
and an encode, and the price shown is the model's first route's (None when unknown).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..accounts import Account
from ..middleware.resolve import model_not_found
from ..prices import PriceTable
from .catalog import Catalog

__all__ = ["ModelCards"]


class ModelCards:
    def __init__(self, catalog: Catalog, prices: PriceTable, created: int) -> None:
        self._catalog = catalog
        self._created = created
        self._pricing: dict[str, dict[str, float] | None] = {}
        for entry in catalog:
            first = entry.targets[0] if entry.targets else None
            price = prices.lookup(first.provider.name, first.model, first.public_model) if first else None
            self._pricing[entry.id] = price.card() if price is not None else None

    def listing(self, account: Account) -> bytes:
        """The `/v1/models` list: only the models `account` may use."""
        cards = [self._card(entry.id) for entry in self._catalog if account.may_use(entry.id)]
        return orjson.dumps({"object": "list", "data": cards})

    def one(self, model: str, account: Account) -> bytes:
        """`/v1/models/{model}`; the same 404 for an unknown model and one the account may not use."""
        if self._catalog.get(model) is None or not account.may_use(model):
            raise model_not_found(model)
        return orjson.dumps(self._card(model))

    def _card(self, model: str) -> dict[str, Any]:
        entry = self._catalog.get(model)
        assert entry is not None
        return {**entry.card(self._created), "pricing": self._pricing.get(model)}
