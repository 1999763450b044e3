"""The default upstream transport: aiohttp's connection pool behind httpx's transport protocol.

Why not httpx's own pool: under 32 concurrent requests on our 2-core machines it measured
10-17x slower than aiohttp (encode/httpx#3215); the benchmark in `benchmarks/` re-measures it.
The session is built with a cookie jar that keeps nothing, so a `Set-Cookie` from one upstream
response can never ride along on another user's request.
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["default_transport"]


def default_transport(*, max_connections: int = 1000, keepalive_expiry: float = 30.0) -> httpx.AsyncBaseTransport:
    """A pooled transport; the aiohttp session is created lazily inside the running event loop."""

    def session() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, keepalive_timeout=keepalive_expiry)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return AiohttpTransport(client=session)
