"""Response headers built from request, upstream and configuration data are always sendable.

A field name is the client's choice; under `drop` or `clamp` it is disclosed in a header. Names
with `€`, CR/LF, spaces or commas must neither fail the response (after the upstream was paid)
nor inject anything: they are percent-encoded, and `unquote` gives them back. Checked at the
ASGI message level and through a real uvicorn server, which validates what it writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest
from conformance.fake_anthropic import FakeAnthropic
from fakes import API_KEY, FakeOpenAI, answer_error, answer_json, drive, recording, route_hosts
from servers import serve

from routemw import Call, Gateway, Handler, Reply
from routemw.http.headers import MAX_LIST_CHARS, header_list, header_value

ANTHROPIC_KEY = "sk-ant-test-key-0000000"
# Field names a client may send; the Anthropic adapter knows none of them, so `drop` drops them.
ODD_NAMES = ("a€b", "x\r\nx-injected: 1", "has space", "co,mma", "50%", "+1")
USER = {"role": "user", "content": "hi"}


def anthropic_gateway(fake: FakeAnthropic, policy: str = "drop") -> Gateway:
    config = {
        "providers": {"claude": {**fake.provider_config, "api_key": ANTHROPIC_KEY}},
        "models": {"claude": {"routes": [{"provider": "claude", "model": "claude-sonnet-4-5"}]}},
        "params": {"unsupported": policy},
    }
    return Gateway.from_config(config, environ={}, transport=fake.transport())


def plain_gateway(upstream: FakeOpenAI, **options: Any) -> Gateway:
    config = {
        "providers": {"up": {"type": "openai", "base_url": "https://upstream.test/v1", "api_key": API_KEY}},
        "models": {"m": {"routes": [{"provider": "up", "model": "gpt-4o"}]}},
    }
    transport = httpx.MockTransport(route_hosts({"upstream.test": upstream}))
    return Gateway.from_config(config, environ={}, transport=transport, **options)


def odd_body(stream: bool) -> dict[str, Any]:
    return {"model": "claude", "messages": [USER], "stream": stream, **dict.fromkeys(ODD_NAMES, 1)}


def dropped(value: str | None) -> set[str]:
    assert value is not None
    return {unquote(name) for name in value.split(", ")}


def check_plain(headers: Mapping[str, str] | list[tuple[str, str]]) -> None:
    """Every header value is visible ASCII with inner spaces only, as HTTP/1.1 requires."""
    pairs = headers if isinstance(headers, list) else list(headers.items())
    for name, value in pairs:
        assert value.isascii() and value.isprintable() and value == value.strip(), (name, value)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("policy", ["drop", "clamp"])
async def test_odd_field_names_are_disclosed_percent_encoded(stream: bool, policy: str) -> None:
    fake = FakeAnthropic(ANTHROPIC_KEY)
    driver = await drive(anthropic_gateway(fake, policy), json=odd_body(stream))

    assert driver.status == 200, driver.body
    check_plain(driver.header_list)
    value = driver.header("x-routemw-dropped-params")
    assert value == "%2B1, 50%25, a%E2%82%ACb, co%2Cmma, has%20space, x%0D%0Ax-injected:%201"
    assert dropped(value) == set(ODD_NAMES)
    assert driver.header("x-injected") is None
    assert fake.requests and not set(ODD_NAMES) & set(fake.requests[0])  # really sent without them
    assert driver.body.endswith(b"data: [DONE]\n\n") if stream else driver.json()["choices"]


@pytest.mark.parametrize("stream", [False, True])
def test_odd_field_names_through_a_real_server(stream: bool) -> None:
    fake = FakeAnthropic(ANTHROPIC_KEY)
    with serve(anthropic_gateway(fake), lifespan="off") as live, httpx.Client(base_url=live.url, timeout=10) as client:
        response = client.post("/v1/chat/completions", json=odd_body(stream))
    assert response.status_code == 200, response.text
    assert dropped(response.headers["x-routemw-dropped-params"]) == set(ODD_NAMES)
    assert "x-injected" not in response.headers
    if stream:
        assert response.text.endswith("data: [DONE]\n\n")
    else:
        assert response.json()["choices"][0]["message"]["content"]


def test_a_long_list_is_cut_and_says_how_many_more() -> None:
    names = [f"field_{i:04d}" for i in range(500)]
    value = header_list(names)
    assert len(value) <= MAX_LIST_CHARS
    *shown, more = value.split(", ")
    assert shown == names[: len(shown)]
    assert more == f"+{len(names) - len(shown)}"
    assert header_list(["x" * 5000]) == "+1"
    assert header_list(["a", "b"]) == "a, b"


def test_plain_values_are_kept_and_others_encoded_reversibly() -> None:
    for plain in ("gpt-4o", "models/gemini-2.5-pro", "llama3.1:8b", "req_01AB"):
        assert header_value(plain) == plain
    for odd in ("modèle", "a b", " lead", "tab\t", "50%", "a,b", "a+b", "", "€"):
        encoded = header_value(odd)
        assert unquote(encoded) == odd
        assert encoded.isascii() and encoded.isprintable() and " " not in encoded


@pytest.mark.parametrize("stream", [False, True])
async def test_config_names_that_are_not_plain_are_encoded_not_fatal(stream: bool) -> None:
    config = {
        "providers": {"fournisseur é": {"type": "echo"}},
        "models": {"m": {"routes": [{"provider": "fournisseur é", "model": "modèle €"}]}},
    }
    body = {"model": "m", "messages": [USER], "stream": stream}
    driver = await drive(Gateway.from_config(config, environ={}), json=body)

    assert driver.status == 200
    check_plain(driver.header_list)
    assert unquote(driver.header("x-routemw-provider") or "") == "fournisseur é"
    assert unquote(driver.header("x-routemw-route-model") or "") == "modèle €"


@pytest.mark.parametrize(
    ("upstream_id", "relayed"),
    [("req_ok-1", "req_ok-1"), ("id with, comma", "id%20with%2C%20comma"), ("x" * 300, None)],
)
@pytest.mark.parametrize("status", [200, 400])
async def test_an_upstream_request_id_is_relayed_only_as_a_plain_short_value(
    upstream: FakeOpenAI, upstream_id: str, relayed: str | None, status: int
) -> None:
    gateway = plain_gateway(upstream)
    headers = {"x-request-id": upstream_id}
    if status == 200:
        upstream.queue(answer_json(recording("openai/completion-text.json"), headers=headers))
    else:
        upstream.queue(answer_error(400, headers=headers, message="bad", param="messages"))
    driver = await drive(gateway, json={"model": "m", "messages": [USER]})

    assert driver.status == status
    check_plain(driver.header_list)
    assert driver.header("x-upstream-request-id") == relayed


async def test_a_header_a_middleware_sets_from_request_data_cannot_break_the_response(upstream: FakeOpenAI) -> None:
    class Echo:
        async def __call__(self, call: Call, next: Handler) -> Reply:
            call.response_headers["x-echo"] = str(call.request.body.get("user"))
            call.response_headers["bad name"] = "dropped"
            return await next(call)

    gateway = plain_gateway(upstream, middleware=[Echo()])
    for user in ("€uro\r\nset-cookie: a=b", " padded "):
        upstream.queue(answer_json(recording("openai/completion-text.json")))
        driver = await drive(gateway, json={"model": "m", "messages": [USER], "user": user})
        assert driver.status == 200
        check_plain(driver.header_list)
        assert unquote(driver.header("x-echo") or "") == user
        assert driver.header("set-cookie") is None and driver.header("bad name") is None
        assert orjson.loads(driver.body)["choices"]
