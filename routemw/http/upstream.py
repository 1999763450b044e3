"""Reading upstream response bodies without paying for decoding that is not needed.

httpx's `aread()` / `aiter_bytes()` run every piece through a content decoder and a chunker,
even when the body is not encoded at all, which measured as the largest single cost of a
passthrough request. When the upstream sent no `content-encoding` the transport's bytes are the
body, so they are read from the stream directly; otherwise httpx decodes as usual.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

__all__ = ["body_pieces", "read_body", "upstream_request_id"]


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
    pieces = [piece async for piece in response.stream]
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
