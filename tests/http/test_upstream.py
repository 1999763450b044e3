"""Upstream plumbing: requests from a template equal httpx's own, bodies read within bounds and decoded."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fakes import gzip_bomb

from routemw.config import UpstreamConfig
from routemw.http.upstream import (
    RequestTemplate,
    UpstreamBodyError,
    body_pieces,
    read_body,
    read_error_body,
    upstream_request_id,
)

URL = httpx.URL("https://api.example.test:8443/v1/chat/completions?x=1")
HEADERS = httpx.Headers(
    {"content-type": "application/json", "authorization": "Bearer sk-secret", "x-extra": "value, with; punctuation"}
)
EXTENSIONS = {"timeout": {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}}


@pytest.mark.parametrize("body", [b"", b"{}", b'{"model":"m","messages":[{"role":"user","content":"\xe2\x80\xa8"}]}'])
async def test_template_request_equals_httpx_request(body: bytes) -> None:
    ours = RequestTemplate(URL, HEADERS, EXTENSIONS).build(body)
    theirs = httpx.Request("POST", URL, headers=HEADERS, content=body, extensions=EXTENSIONS)
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert ours.headers.raw == theirs.headers.raw
    assert ours.headers["host"] == "api.example.test:8443"
    assert ours.headers["content-length"] == str(len(body))
    assert dict(ours.headers) == dict(theirs.headers)
    assert ours.content == theirs.content == ours.read() == await ours.aread()
    assert b"".join([piece async for piece in ours.stream]) == body  # type: ignore[union-attr]
    assert ours.extensions == theirs.extensions


def test_each_request_gets_its_own_headers_and_extensions() -> None:
    template = RequestTemplate(URL, HEADERS, EXTENSIONS)
    first, second = template.build(b"1"), template.build(b"22")
    first.headers["x-added"] = "1"
    first.extensions["extra"] = True
    assert "x-added" not in second.headers and "extra" not in second.extensions
    assert second.headers["content-length"] == "2"


async def test_read_body_decodes_only_when_encoded() -> None:
    plain = httpx.Response(200, stream=httpx.ByteStream(b"hello"), headers={"x-request-id": "req_1"})
    assert await read_body(plain) == b"hello"
    assert upstream_request_id(plain) == "req_1"
    packed = httpx.Response(200, content=gzip.compress(b"hello"), headers={"content-encoding": "gzip"})
    assert await read_body(packed) == b"hello"
    packed_stream = httpx.Response(
        200, stream=httpx.ByteStream(gzip.compress(b"streamed")), headers={"content-encoding": "gzip"}
    )
    assert b"".join([piece async for piece in body_pieces(packed_stream)]) == b"streamed"
    anthropic_style = httpx.Response(200, content=b"", headers={"request-id": "req_a"})
    assert upstream_request_id(anthropic_style) == "req_a"
    assert upstream_request_id(httpx.Response(200, content=b"")) is None


# -- bounds on what an upstream sends -----------------------------------------------------------

SMALL = UpstreamConfig(max_body_bytes=1000, max_event_bytes=100, max_decompression_ratio=100.0)


class CountedStream(httpx.AsyncByteStream):
    """A body delivered in fixed pieces that counts how many were read."""

    def __init__(self, data: bytes, size: int = 4096) -> None:
        self.pieces = [data[i : i + size] for i in range(0, len(data), size)]
        self.reads = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            self.reads += 1
            yield piece


def test_the_bomb_helper_makes_a_real_gzip_body() -> None:
    bomb = gzip_bomb(3)
    assert gzip.decompress(bomb) == bytes(3 << 20)
    assert len(bomb) < 4096


async def test_a_body_declared_longer_than_the_limit_is_refused_unread() -> None:
    stream = CountedStream(b"x" * 2000)
    response = httpx.Response(200, headers={"content-length": "2000"}, stream=stream)
    with pytest.raises(UpstreamBodyError, match=r"larger than 1000 bytes \(upstream.max_body_bytes\)"):
        await read_body(response, SMALL)
    assert stream.reads == 0


async def test_an_undeclared_body_is_refused_once_it_passes_the_limit() -> None:
    stream = CountedStream(b"x" * 100_000, size=300)
    with pytest.raises(UpstreamBodyError, match="larger than 1000 bytes"):
        await read_body(httpx.Response(200, stream=stream), SMALL)
    assert stream.reads == 4  # 1200 bytes read of 100 000: no more than it took to know


async def test_a_body_at_the_limit_is_read() -> None:
    body = b"x" * 1000
    assert await read_body(httpx.Response(200, stream=CountedStream(body, size=333)), SMALL) == body
    assert await read_body(httpx.Response(200, content=body), SMALL) == body


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_gzip_bomb_is_refused_by_its_ratio_after_about_a_mebibyte(declared: bool) -> None:
    bomb = gzip_bomb(300)
    headers = {"content-encoding": "gzip", **({"content-length": str(len(bomb))} if declared else {})}
    stream = CountedStream(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamBodyError, match=r"inflating more than 100 times \(upstream.max_decompression"):
            await read_body(httpx.Response(200, headers=headers, stream=stream))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # 300 MiB if it had been inflated
    assert stream.reads < len(stream.pieces)


async def test_without_a_ratio_bound_a_bomb_still_stops_at_the_body_limit() -> None:
    limits = UpstreamConfig(max_body_bytes=4 << 20, max_decompression_ratio=1e9)
    response = httpx.Response(200, headers={"content-encoding": "gzip"}, stream=CountedStream(gzip_bomb(300)))
    with pytest.raises(UpstreamBodyError, match="larger than 4194304 bytes"):
        await read_body(response, limits)


async def test_a_streamed_bomb_is_refused_and_comes_out_in_bounded_slices() -> None:
    response = httpx.Response(200, headers={"content-encoding": "gzip"}, stream=CountedStream(gzip_bomb(300)))
    sizes: list[int] = []
    with pytest.raises(UpstreamBodyError, match="inflating more than 100 times"):
        async for piece in body_pieces(response):
            sizes.append(len(piece))
    assert 0 < sum(sizes) <= 2 << 20
    assert max(sizes) <= 256 * 1024


async def test_concatenated_gzip_members_count_towards_one_ratio() -> None:
    member = gzip.compress(bytes(1 << 20), 9)
    response = httpx.Response(200, headers={"content-encoding": "gzip"}, stream=CountedStream(member * 300))
    with pytest.raises(UpstreamBodyError, match="inflating more than"):
        await read_body(response)
    members = CountedStream(gzip.compress(b"ab") + gzip.compress(b"c"))
    assert await read_body(httpx.Response(200, headers={"content-encoding": "gzip"}, stream=members)) == b"abc"


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", gzip.compress(b'{"a": 1}')),
        ("x-gzip", gzip.compress(b'{"a": 1}')),
        ("GZIP", gzip.compress(b'{"a": 1}')),
        ("deflate", zlib.compress(b'{"a": 1}')),  # HTTP's deflate: zlib-wrapped
        ("deflate", zlib.compress(b'{"a": 1}')[2:-4]),  # what many servers send: raw deflate
        ("identity", b'{"a": 1}'),
        ("gzip, identity", gzip.compress(b'{"a": 1}')),
    ],
)
@pytest.mark.parametrize("size", [1, 4096])
async def test_the_codings_servers_send_unasked_are_decoded(coding: str, data: bytes, size: int) -> None:
    response = httpx.Response(200, headers={"content-encoding": coding}, stream=CountedStream(data, size))
    assert await read_body(response) == b'{"a": 1}'
    again = httpx.Response(200, headers={"content-encoding": coding}, stream=CountedStream(data, size))
    assert b"".join([piece async for piece in body_pieces(again)]) == b'{"a": 1}'


@pytest.mark.parametrize(
    ("coding", "data", "says"),
    [
        ("gzip", b'{"choices": []}', "does not decode"),  # marked gzip, sent plain
        ("deflate", b"\x78\x9c garbage", "does not decode"),
        ("gzip", gzip.compress(b"x" * 1000)[:-12], "ends before"),  # cut short
        ("deflate", zlib.compress(b"x") + b"trailing", "after its end"),
        ("br", b"\x0b\x02\x80{}\x03", "does not decode (br)"),
        ("gzip, gzip", gzip.compress(gzip.compress(b"x")), "does not decode (gzip, gzip)"),
    ],
)
async def test_a_body_that_does_not_decode_is_an_upstream_body_error(coding: str, data: bytes, says: str) -> None:
    # A stream, not `content=`: httpx would decode that itself on construction.
    response = httpx.Response(200, headers={"content-encoding": coding}, stream=CountedStream(data))
    with pytest.raises(UpstreamBodyError) as caught:
        await read_body(response)
    assert says in str(caught.value)
    assert isinstance(caught.value, httpx.DecodingError)


async def test_a_stream_that_does_not_decode_fails_as_it_is_read() -> None:
    response = httpx.Response(200, headers={"content-encoding": "gzip"}, stream=CountedStream(b"data: {}\n\n"))
    with pytest.raises(UpstreamBodyError, match="does not decode"):
        async for _ in body_pieces(response):
            pass


async def test_an_error_body_is_cut_and_decoded_only_as_far_as_it_decodes() -> None:
    long = httpx.Response(500, stream=CountedStream(b"e" * 10_000, size=300))
    assert await read_error_body(long, 1000) == b"e" * 1000
    packed = httpx.Response(500, headers={"content-encoding": "gzip"}, stream=CountedStream(gzip.compress(b"busy")))
    assert await read_error_body(packed, 1000) == b"busy"
    corrupt = httpx.Response(500, headers={"content-encoding": "gzip"}, stream=CountedStream(b"not gzip at all"))
    assert await read_error_body(corrupt, 1000) == b""
    bomb = httpx.Response(429, headers={"content-encoding": "gzip"}, stream=CountedStream(gzip_bomb(300)))
    assert await read_error_body(bomb, 1000) == bytes(1000)
