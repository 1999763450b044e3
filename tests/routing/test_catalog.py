"""The catalog's route choice: a route list where any route sets `weight` is a weighted choice
(equal weights included), one where none does is an ordered preference.

The distribution is checked with a seeded RNG over many draws and loose bounds, so the outcome
is fixed for a given seed and far from the bounds: never flaky.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from fakes import drive

from routemw import FallbackMiddleware, Gateway
from routemw.middleware.fallback import weighted_order

CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def gateway(routes: list[dict[str, Any]], *, seed: int = 0) -> Gateway:
    """Routes to the network-free echo provider; the fallback middleware draws from a seeded RNG."""

    def seeded(defaults: list[Any]) -> list[Any]:
        rand = random.Random(seed).random
        return [
            FallbackMiddleware(timeout=layer.timeout, health=None, rand=rand)
            if isinstance(layer, FallbackMiddleware)
            else layer
            for layer in defaults
        ]

    document: Mapping[str, Any] = {"models": {"m": {"routes": routes}}}
    return Gateway.from_config(document, environ={}, middleware=seeded)


def weights(routes: list[dict[str, Any]]) -> list[float | None]:
    entry = gateway(routes).catalog.get("m")
    assert entry is not None
    return [t.weight for t in entry.targets]


def test_weights_are_given_to_every_route_when_any_route_sets_one() -> None:
    a, b = {"provider": "echo", "model": "a"}, {"provider": "echo", "model": "b"}
    assert weights([a, b]) == [None, None]
    assert weights([{**a, "weight": 1}, {**b, "weight": 1}]) == [1.0, 1.0]
    assert weights([{**a, "weight": 3}, b]) == [3.0, 1.0]
    assert weights([a, {**b, "weight": 1}]) == [1.0, 1.0]


def test_two_routes_with_weight_1_each_come_first_about_equally_often() -> None:
    routes = [{"provider": "echo", "model": "a", "weight": 1}, {"provider": "echo", "model": "b", "weight": 1}]
    entry = gateway(routes).catalog.get("m")
    assert entry is not None
    rng = random.Random(20240917)
    firsts = Counter(weighted_order(entry.targets, rng.random)[0].model for _ in range(2000))

    assert 0.4 <= firsts["a"] / 2000 <= 0.6
    assert firsts["a"] + firsts["b"] == 2000


async def test_equal_explicit_weights_spread_requests_through_the_gateway() -> None:
    routes = [{"provider": "echo", "model": "a", "weight": 1}, {"provider": "echo", "model": "b", "weight": 1}]
    app = gateway(routes, seed=424242)
    answered: Counter[str | None] = Counter()
    for _ in range(200):
        driver = await drive(app, json=CHAT)
        assert driver.status == 200
        answered[driver.header("x-routemw-route-model")] += 1

    assert answered["a"] + answered["b"] == 200
    assert 0.3 <= answered["a"] / 200 <= 0.7


async def test_routes_without_weights_are_an_ordered_preference() -> None:
    routes = [{"provider": "echo", "model": "a"}, {"provider": "echo", "model": "b"}]
    app = gateway(routes, seed=424242)
    for _ in range(50):
        driver = await drive(app, json=CHAT)
        assert driver.header("x-routemw-route-model") == "a"
