"""Reading upstream response bodies without paying for decoding that is not needed.

httpx's `aread()` / `aiter_bytes()` run every piece through a content decoder and a chunker,
even when the body is not encoded at all, which measured as the largest single cost of a
passthrough request. When the upstream sent no `content-encoding` the transport's bytes are the
body, so they are read from the stream directly; otherwise httpx decodes as usual.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

__all__ = ["RequestTemplate", "body_pieces", "read_body", "upstream_request_id"]


def _encoded(response: httpx.Response) -> bool:
    # One pass over the raw list: httpx's own lookup re-encodes the key and scans every header.
    return any(name.lower() == b"content-encoding" for name, _ in response.headers.raw)


def upstream_request_id(response: httpx.Response) -> str | None:
    """The upstream's request id (`x-request-id`, or Anthropic's `request-id`), for support tickets."""
    for name, value in response.headers.raw:
        lowered = name.lower()
        if lowered == b"x-request-id" or lowered == b"request-id":
            return value.decode("latin-1")
    return None


def body_pieces(response: httpx.Response) -> AsyncIterator[bytes]:
    if _encoded(response) or not isinstance(response.stream, httpx.AsyncByteStream):
        return response.aiter_bytes()
    return response.stream.__aiter__()


async def read_body(response: httpx.Response) -> bytes:
    if _encoded(response) or not isinstance(response.stream, httpx.AsyncByteStream):
        return await response.aread()
    read_all = getattr(response.stream, "read_all", None)
    if read_all is not None:  # our aiohttp transport reads a whole body in one call
        body: bytes = await read_all()
        return body
    pieces = [piece async for piece in response.stream]
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class RequestTemplate:
    """POST requests to one URL with fixed headers, made for a tenth of `httpx.Request`'s cost.

    httpx normalises headers, encodes the body and adds `Host` and `Content-Length` anew for
    every request (about 12 microseconds each, measured). All of that is the same for every
    request to one target except the body and its length, so it is done once here, and a request
    is assembled from the prepared parts. That touches two of httpx's private fields
    (`Headers._list`, `Request._content`); `tests/http/test_upstream.py` checks the result is
    identical to httpx's own, and if a future httpx drops those fields the template falls back to
    the ordinary constructor.
    """

    __slots__ = ("_extensions", "_headers", "_prepared", "_url")

    def __init__(self, url: httpx.URL, headers: httpx.Headers, extensions: dict[str, Any]) -> None:
        self._url = url
        self._headers = headers
        self._extensions = extensions
        probe = httpx.Request("POST", url, headers=headers, content=b"")
        listed = getattr(probe.headers, "_list", None)
        self._prepared: list[tuple[bytes, bytes, bytes]] | None = None
        if _FAST and isinstance(listed, list):
            self._prepared = [item for item in listed if item[1] != b"content-length"]

    def build(self, body: bytes) -> httpx.Request:
        if self._prepared is None:
            return httpx.Request(
                "POST", self._url, headers=self._headers, content=body, extensions=dict(self._extensions)
            )
        request = httpx.Request.__new__(httpx.Request)
        request.method = "POST"
        request.url = self._url
        headers = httpx.Headers.__new__(httpx.Headers)
        length = (b"Content-Length", b"content-length", str(len(body)).encode())
        # httpx puts the length of an empty body right after Host, and any other at the end.
        headers._list = [*self._prepared, length] if body else [self._prepared[0], length, *self._prepared[1:]]
        headers._encoding = None
        request.headers = headers
        request.extensions = dict(self._extensions)
        request.stream = httpx.ByteStream(body)
        request._content = body
        return request


# The fields the fast path sets are the ones httpx's own constructor sets (0.23 to 0.28 at least).
_FAST = all(
    hasattr(httpx.Request("POST", "http://x", content=b"."), name) for name in ("_content", "stream", "extensions")
)
