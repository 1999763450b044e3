"""Upstream plumbing: requests from a template equal httpx's own, bodies read without decoding."""

from __future__ import annotations

import gzip

import httpx
import pytest

from routemw.http.upstream import RequestTemplate, body_pieces, read_body, upstream_request_id

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
