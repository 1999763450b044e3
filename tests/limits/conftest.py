"""The limit stores every behavioural test in this folder runs against: memory and Redis.

`make_store(clock)` builds the store under test on a clock the test moves (epoch seconds). The
Redis store gets the clock as its script's time instead of Redis `TIME`, so the two stores see
exactly the same instants and the same assertions hold for both; everything else about the
Redis store (scripts, keys, expiry) is the real thing, on a real server (`redis_server`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from limit_stores import MakeStore
from redis_server import new_client

from routemw.limits import LimitStore, MemoryLimitStore
from routemw.state.limits import RedisLimits


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    if request.param == "memory":
        yield lambda clock: MemoryLimitStore(clock=clock)
        return
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    client = new_client(url)
    stores: list[RedisLimits] = []

    def make(clock: Callable[[], float]) -> LimitStore:
        # A generous timeout: on a loaded machine a slow answer must not turn into Redis "away".
        store = RedisLimits(client=client, prefix=prefix, timeout=5.0, clock=clock)
        stores.append(store)
        return store

    try:
        yield make
        # Every answer came from Redis: a script error would otherwise hide behind the local stand-in.
        assert [store.guard.failures for store in stores] == [0] * len(stores)
    finally:
        for store in stores:
            await store.aclose()
        await client.aclose()
