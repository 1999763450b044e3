"""The default upstream transport: aiohttp's connection pool behind httpx's transport protocol.

Why aiohttp: under 32 concurrent requests on our 2-core machines, httpx's own pool measured
10-17x slower (encode/httpx#3215). Why our own adapter rather than the `httpx-aiohttp`
package: that one hands aiohttp an `httpx.Headers`, whose `items()` re-detects the header
encoding and decodes every header on each call, and rebuilds the URL and timeout objects per
request; profiled under load it was the largest cost of a passthrough request after the
server itself. Here headers go over as plain pairs, URLs and timeouts are cached, and a
response body is handed on piece by piece as it arrives (`iter_any`), which SSE needs.

The session keeps no cookies (`DummyCookieJar`): a `Set-Cookie` from one upstream response must
never ride along on another user's request. aiohttp errors become httpx's transport errors,
which is what adapters classify.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import httpx
import yarl

from .upstream import UPSTREAM_HEADERS

__all__ = ["AiohttpTransport", "default_transport"]

# aiohttp would add `Accept-Encoding: gzip, deflate`; LLM answers are small and often streamed,
# and decompressing them costs more CPU than the bytes save on a datacenter link. Adapters send
# `accept-encoding: identity` themselves (`UPSTREAM_HEADERS`), and the body reader bounds and
# decodes whatever an upstream compresses anyway: aiohttp's own decompression is off.
_SKIP_AUTO_HEADERS: Final = frozenset({"Accept-Encoding"})
# For an adapter that sets none: aiohttp's own (`Python/3.x aiohttp/3.x`) says nothing useful.
_SESSION_HEADERS: Final = {"User-Agent": UPSTREAM_HEADERS["user-agent"]}
_URL_CACHE_LIMIT: Final = 256


class AiohttpTransport(httpx.AsyncBaseTransport):
    """`httpx.AsyncBaseTransport` over one aiohttp session, created lazily in the running loop."""

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        trust_env: bool = False,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            ssl=self._ssl,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=self._trust_env,
            headers=_SESSION_HEADERS,
        )
        return self._session

    def _url(self, url: httpx.URL) -> yarl.URL:
        text = str(url)
        cached = self._urls.get(text)
        if cached is None:
            if len(self._urls) >= _URL_CACHE_LIMIT:
                self._urls.clear()  # routes are few; a flood of distinct URLs just stops caching
            cached = self._urls[text] = yarl.URL(text, encoded=True)
        return cached

    def _timeout(self, request: httpx.Request) -> aiohttp.ClientTimeout:
        spec = request.extensions.get("timeout") or {}
        key = (spec.get("connect"), spec.get("read"), spec.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, sock_connect=key[0], sock_read=key[1], connect=key[2]
            )
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]
        try:
            response = await session.request(
                request.method,
                self._url(request.url),
                headers=headers,
                data=request.content or None,
                skip_auto_headers=_SKIP_AUTO_HEADERS,
                allow_redirects=False,
                auto_decompress=False,
                timeout=self._timeout(request),
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _mapped(exc, request) from exc
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _Body(httpx.AsyncByteStream):
    __slots__ = ("_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._response.content.iter_any():
                yield piece
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _mapped(exc, self._request) from exc

    async def read_all(self, limit: int) -> bytes:
        """The whole body, read straight from aiohttp's buffer rather than through an iteration.

        It stops as soon as more than `limit` bytes have come, and returns those: the caller
        refuses a body that long, and must not have to hold more of it first.
        """
        content = self._response.content
        pieces: list[bytes] = []
        size = 0
        try:
            while size <= limit:
                piece = await content.readany()
                if not piece:
                    break
                pieces.append(piece)
                size += len(piece)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _mapped(exc, self._request) from exc
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def aclose(self) -> None:
        # Back to the pool when fully read; closed when abandoned midway (a cancelled stream).
        self._response.release()


def _mapped(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(message, request=request)
    return httpx.ReadError(message, request=request)


def default_transport(*, max_connections: int = 1000, keepalive_expiry: float = 30.0) -> httpx.AsyncBaseTransport:
    return AiohttpTransport(max_connections=max_connections, keepalive_expiry=keepalive_expiry)
