"""Reading upstream response bodies: within bounds, and without decoding that is not needed.

httpx's `aread()` / `aiter_bytes()` run every piece through a content decoder and a chunker,
even when the body is not encoded at all, which measured as the largest single cost of a
passthrough request. When the upstream sent no `content-encoding` the transport's bytes are the
body, so they are read from the stream directly.

Nothing an upstream sends may take the gateway down, so every read is bounded (`upstream:` in
the config, `UpstreamConfig`):

- a whole body is refused past `max_body_bytes` of decoded content; before a byte is read when
  its `content-length` already says so, else as soon as the count passes it;
- a compressed body, whole or streamed, is refused once it has inflated to more than
  `max_decompression_ratio` times the compressed bytes received (checked only past 1 MiB of
  output, so a small, repetitive answer is never taken for a bomb).

Compressed bodies are inflated here, never by httpx: its decoders inflate each piece whole, and
one 64 KiB piece of a gzip bomb is 64 MiB. zlib's `max_length` keeps every step to one slice.
routemw asks for `identity`, so an upstream that compresses anyway gets gzip and deflate (the
codings HTTP servers use unasked) decoded; any other coding, or several stacked, is refused
rather than guessed at. Every refusal, and every body that fails to inflate, is an
`UpstreamBodyError`, an `httpx.DecodingError`: adapters classify it as an invalid upstream
response, retryable, like any other answer that is not the protocol.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

import httpx

from .._version import __version__
from ..config import UpstreamConfig

__all__ = [
    "UPSTREAM_HEADERS",
    "RequestTemplate",
    "UpstreamBodyError",
    "body_pieces",
    "read_body",
    "read_error_body",
    "upstream_request_id",
]

# Sent with every request an adapter built on `HTTPProvider` makes. aiohttp would otherwise say
# `Python/3.x aiohttp/3.x`, and sending no `accept-encoding` at all means "any coding is fine"
# (RFC 9110, 12.5.3): the upstream would be free to compress.
UPSTREAM_HEADERS: Final = {"user-agent": f"routemw/{__version__}", "accept-encoding": "identity"}

_DEFAULT_LIMITS: Final = UpstreamConfig()
_SLICE: Final = 256 * 1024  # the most one call into zlib may produce
_RATIO_FLOOR: Final = 1024 * 1024  # below this much output the ratio is not checked
_GZIP: Final = frozenset({"gzip", "x-gzip"})


class UpstreamBodyError(httpx.DecodingError):
    """A body the gateway will not take: too large, inflating too far, or not decodable.

    The message completes "Provider 'x' sent ...", the way adapters report an invalid response.
    """


def upstream_request_id(response: httpx.Response) -> str | None:
    """The upstream's request id (`x-request-id`, or Anthropic's `request-id`), for support tickets."""
    for name, value in response.headers.raw:
        lowered = name.lower()
        if lowered == b"x-request-id" or lowered == b"request-id":
            return value.decode("latin-1")
    return None


def _framing(response: httpx.Response) -> tuple[str | None, int | None]:
    """The content coding (None for identity) and the declared length, in one pass over the headers.

    One pass over the raw list: httpx's own lookup re-encodes the key and scans every header.
    """
    codings: list[str] = []
    length: int | None = None
    for name, value in response.headers.raw:
        lowered = name.lower()
        if lowered == b"content-encoding":
            codings += [c for c in value.decode("latin-1").lower().replace(" ", "").split(",") if c != "identity" and c]
        elif lowered == b"content-length" and value.isdigit():
            length = int(value)
    if not codings:
        return None, length
    if len(codings) == 1 and (codings[0] in _GZIP or codings[0] == "deflate"):
        return codings[0], length
    listed = ", ".join(codings)
    raise UpstreamBodyError(f"a body in a content encoding routemw did not ask for and does not decode ({listed})")


def _raw(response: httpx.Response) -> AsyncIterator[bytes]:
    stream = response.stream
    if isinstance(stream, httpx.AsyncByteStream):
        return stream.__aiter__()
    return response.aiter_raw()


def _too_large(limit: int) -> UpstreamBodyError:
    return UpstreamBodyError(f"a body larger than {limit} bytes (upstream.max_body_bytes)")


def body_pieces(response: httpx.Response, limits: UpstreamConfig = _DEFAULT_LIMITS) -> AsyncIterator[bytes]:
    """A stream body piece by piece, inflated when compressed; no bound on its total length.

    A stream is never held whole, so its length costs no memory; what a reader buffers is bounded
    by the SSE decoder's `max_event_bytes`. Raises `UpstreamBodyError` for a coding it refuses.
    """
    coding, _ = _framing(response)
    if coding is None:
        return _raw(response)
    return _inflated(_raw(response), _Inflater(coding, limits.max_decompression_ratio))


async def _inflated(raw: AsyncIterator[bytes], inflater: _Inflater) -> AsyncIterator[bytes]:
    async for piece in raw:
        for part in inflater.feed(piece):
            yield part


async def read_body(response: httpx.Response, limits: UpstreamConfig = _DEFAULT_LIMITS) -> bytes:
    """The whole body, decoded, or `UpstreamBodyError` once it passes `limits`."""
    limit = limits.max_body_bytes
    coding, length = _framing(response)
    if length is not None and length > limit:
        # Refused unread (the connection is closed, not drained). A compressed length past the
        # limit is refused too: what it inflates to would be larger still.
        raise _too_large(limit)
    if coding is not None:
        inflater = _Inflater(coding, limits.max_decompression_ratio)
        decoded = bytearray()
        async for piece in _raw(response):
            for part in inflater.feed(piece):
                decoded += part
                if len(decoded) > limit:
                    raise _too_large(limit)
        inflater.finish()
        return bytes(decoded)
    read_all = getattr(response.stream, "read_all", None)
    if read_all is not None:  # our aiohttp transport reads a whole body in one call
        body: bytes = await read_all(limit)
    else:
        pieces: list[bytes] = []
        size = 0
        async for piece in _raw(response):
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                raise _too_large(limit)
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
    if len(body) > limit:
        raise _too_large(limit)
    return body


async def read_error_body(response: httpx.Response, limit: int) -> bytes:
    """At most `limit` bytes of an error answer's body, decoded as far as it decodes.

    It is read only to classify and report the error, so a body that is too long is cut and one
    that fails to inflate gives what came out before the failure: the status still tells enough.
    """
    body = bytearray()
    try:
        coding, _ = _framing(response)
        inflater = _Inflater(coding, _DEFAULT_LIMITS.max_decompression_ratio) if coding is not None else None
        async for piece in _raw(response):
            for part in inflater.feed(piece) if inflater is not None else (piece,):
                body += part
                if len(body) >= limit:
                    return bytes(body[:limit])
    except UpstreamBodyError:
        pass
    return bytes(body)


class _Inflater:
    """gzip or deflate, inflated one bounded slice at a time, with the ratio checked as it goes."""

    __slots__ = ("_coding", "_compressed", "_decoded", "_head", "_ratio", "_zlib")

    def __init__(self, coding: str, ratio: float) -> None:
        self._coding = coding
        self._ratio = ratio
        self._compressed = 0
        self._decoded = 0
        self._head = b""  # deflate: the first bytes, until they show whether a zlib header leads
        self._zlib: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if coding in _GZIP else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._compressed += len(data)
        if self._zlib is None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if _zlib_header(data) else -zlib.MAX_WBITS)
        while data:
            if self._zlib.eof:
                if self._coding == "deflate":
                    raise UpstreamBodyError("a deflate body with data after its end")
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip allows several members
            try:
                out = self._zlib.decompress(data, _SLICE)
            except zlib.error as exc:
                raise UpstreamBodyError(f"a {self._coding} body that does not decode ({exc})") from exc
            # Input left over: past the end of the compressed data, or not inflated yet for want of room.
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
            if out:
                self._decoded += len(out)
                if self._decoded > _RATIO_FLOOR and self._decoded > self._ratio * self._compressed:
                    raise UpstreamBodyError(
                        f"a {self._coding} body inflating more than {self._ratio:g} times"
                        " (upstream.max_decompression_ratio)"
                    )
                yield out

    def finish(self) -> None:
        """The end of a whole body: it must be the end of the compressed data too."""
        if self._zlib is None or not self._zlib.eof:
            raise UpstreamBodyError(f"a {self._coding} body that ends before its compressed data does")


def _zlib_header(data: bytes) -> bool:
    """Whether `data` starts with a zlib header, as HTTP's deflate should (many servers send raw deflate)."""
    return data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and ((data[0] << 8) | data[1]) % 31 == 0


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
