"""The plumbing every network adapter shares, so each adapter file is only its translation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ..config import ProviderConfig
from ..errors import UpstreamError
from ..http.upstream import UPSTREAM_HEADERS, RequestTemplate
from .classify import error_from_transport

__all__ = ["HTTPProvider", "path_segment"]

_TEMPLATE_LIMIT = 512


def path_segment(name: str) -> str:
    """`name` as one URL path segment: nothing in it can end the segment or climb out of it.

    `quote` leaves dots alone, and a segment of dots alone (`.`, `..`) is resolved by httpx as a
    relative step, so such a name has its dots escaped too.
    """
    quoted = quote(name, safe="")
    return quoted.replace(".", "%2E") if not quoted.strip(".") else quoted


class HTTPProvider:
    """Name, timeout, the gateway's transport, transport-error classification, and requests.

    A subclass passes the headers every request of its own carries (protocol version,
    credentials, the operator's extra headers, in the precedence it wants) and builds each
    request with `post(url, stream, body)`, which keeps one prepared template per URL and
    mode so a request costs only its body. Keep one `httpx.URL` object per endpoint and pass
    that same object each time: templates are found by the object's identity, because hashing
    an `httpx.URL` re-serialises it (a few microseconds a request).
    """

    def __init__(self, config: ProviderConfig, headers: Mapping[str, str]) -> None:
        self._name = config.name
        self._timeout = config.timeout
        # `user-agent` and `accept-encoding` first, so an operator's configured headers can replace
        # them; names lower-cased so that `User-Agent` in config replaces rather than duplicates.
        base = {**UPSTREAM_HEADERS, "content-type": "application/json", **{k.lower(): v for k, v in headers.items()}}
        self._json_headers = httpx.Headers({**base, "accept": "application/json"})
        self._sse_headers = httpx.Headers({**base, "accept": "text/event-stream"})
        # httpx's per-request timeouts; the aiohttp transport uses `read` against a stalled stream.
        self._extensions: dict[str, Any] = {
            "timeout": dict.fromkeys(("connect", "read", "write", "pool"), config.timeout)
        }
        self._templates: dict[tuple[int, bool, tuple[tuple[str, str], ...]], tuple[httpx.URL, RequestTemplate]] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        return None

    def post(self, url: httpx.URL, stream: bool, body: bytes, extra: tuple[tuple[str, str], ...] = ()) -> httpx.Request:
        """A POST of `body`; `extra` headers (a few distinct sets, such as a client's protocol
        version) replace the provider's own of the same name and get templates of their own."""
        # The cached pair holds `url`, so its id cannot be reused by another object meanwhile.
        key = (id(url), stream, extra)
        cached = self._templates.get(key)
        if cached is None or cached[0] is not url:
            if len(self._templates) >= _TEMPLATE_LIMIT:
                self._templates.clear()  # an adapter making a URL per request just stops caching
            headers = self._sse_headers if stream else self._json_headers
            if extra:
                headers = httpx.Headers(headers)
                for name, value in extra:
                    headers[name] = value
            cached = self._templates[key] = (url, RequestTemplate(url, headers, self._extensions))
        return cached[1].build(body)

    def error_from_exception(self, exc: Exception) -> UpstreamError:
        return error_from_transport(self._name, exc)
