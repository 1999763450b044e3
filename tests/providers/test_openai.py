"""The OpenAI adapter on its own: request building, response and stream parsing, error classification.

Everything here is pure or fed from in-memory streams; the inputs are the genuine recordings.
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson
import pytest
from fakes import (
    API_KEY,
    FakeByteStream,
    FakeOpenAI,
    answer_error,
    awkward_pieces,
    data_payloads,
    drive,
    recording,
    route_hosts,
    split_events,
    sse_from_jsonl,
)

import routemw
from routemw import (
    Action,
    ConfigError,
    Gateway,
    OpenAIProvider,
    ProviderConfig,
    Target,
    UpstreamError,
    UpstreamTimeoutError,
)
from routemw.capabilities import Profile
from routemw.chat import ChatRequest, parse_chat_request
from routemw.config import load_config
from routemw.providers.base import parse_stream
from routemw.providers.classify import retry_after_seconds
from routemw.providers.registry import ProviderRegistry
from routemw.reply import Chunk, Completion

BASE_URL = "https://upstream.test/v1"
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def make_provider(**overrides: Any) -> OpenAIProvider:
    settings: dict[str, Any] = {"name": "up", "type": "openai", "base_url": BASE_URL, "api_key": API_KEY}
    settings.update(overrides)
    return OpenAIProvider(ProviderConfig(**settings))


def make_target(provider: OpenAIProvider, model: str = "gpt-4o", **params: Any) -> Target:
    return Target(provider=provider, model=model, public_model="gpt-4o", params=params)


def make_request(body: Mapping[str, Any] | bytes) -> ChatRequest:
    return parse_chat_request(body if isinstance(body, bytes) else orjson.dumps(body))


def stream_response(body: bytes, sizes: list[int] | None = None) -> httpx.Response:
    pieces = awkward_pieces(body, sizes) if sizes else awkward_pieces(body)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=FakeByteStream(pieces))


STREAM_REQUEST = make_request({**CHAT, "stream": True})


def stream_chunks(provider: OpenAIProvider, response: httpx.Response) -> AsyncIterator[Chunk]:
    return parse_stream(provider, response, STREAM_REQUEST, make_target(provider))


async def collect(provider: OpenAIProvider, response: httpx.Response) -> list[Chunk]:
    return [chunk async for chunk in stream_chunks(provider, response)]


def parse(provider: OpenAIProvider, body: bytes) -> Completion:
    return provider.parse_response(httpx.Response(200, content=body), body, make_request(CHAT), make_target(provider))


def upstream_payloads(sse: bytes) -> list[bytes]:
    return [p for p in data_payloads(sse) if p != b"[DONE]"]


# -- build_request ----------------------------------------------------------------------------


def test_build_request_forwards_the_client_bytes_with_the_configured_credentials() -> None:
    raw = b'{"model": "gpt-4o",   "messages": [{"role": "user", "content": "caf\\u00e9"}], "temperature": 0}'
    provider = make_provider()
    request = provider.build_request(make_request(raw), make_target(provider))

    assert request.method == "POST"
    assert str(request.url) == "https://upstream.test/v1/chat/completions"
    assert request.content == raw
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-length"] == str(len(raw))
    timeout = request.extensions["timeout"]
    assert timeout["read"] == timeout["connect"] == 60.0


def test_a_stream_request_asks_for_an_event_stream() -> None:
    provider = make_provider()
    request = provider.build_request(make_request({**CHAT, "stream": True}), make_target(provider))

    assert request.headers["accept"] == "text/event-stream"


def test_organization_project_and_custom_headers_are_sent_and_no_key_means_no_authorization() -> None:
    provider = make_provider(
        api_key=None,
        headers={"X-Custom": "1"},
        options={"organization": "org-123", "project": "proj_456"},
    )
    request = provider.build_request(make_request(CHAT), make_target(provider))

    assert "authorization" not in request.headers
    assert request.headers["openai-organization"] == "org-123"
    assert request.headers["openai-project"] == "proj_456"
    assert request.headers["x-custom"] == "1"


def test_requests_name_routemw_and_its_version_and_ask_for_no_compression() -> None:
    provider = make_provider()
    request = provider.build_request(make_request(CHAT), make_target(provider))

    assert request.headers["user-agent"] == f"routemw/{routemw.__version__}"
    assert routemw.__version__ == importlib.metadata.version("routemw")
    assert request.headers["accept-encoding"] == "identity"


def test_configured_headers_replace_the_user_agent_and_accept_encoding() -> None:
    provider = make_provider(headers={"User-Agent": "acme-gateway/2", "Accept-Encoding": "gzip"})
    request = provider.build_request(make_request(CHAT), make_target(provider))

    assert request.headers.get_list("user-agent") == ["acme-gateway/2"]
    assert request.headers.get_list("accept-encoding") == ["gzip"]


def test_without_a_base_url_the_request_goes_to_openai() -> None:
    provider = make_provider(base_url=None)
    request = provider.build_request(make_request(CHAT), make_target(provider))

    assert str(request.url) == "https://api.openai.com/v1/chat/completions"


def test_a_different_route_model_changes_only_the_model() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": ""}],
        "temperature": 0,
        "top_p": 0.0,
        "n": 1,
        "stream": False,
        "user": "",
        "stop": [],
        "seed": None,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "parallel_tool_calls": False,
        "foo_new_param": {"x": 1},
    }
    provider = make_provider()
    request = provider.build_request(make_request(body), make_target(provider, model="gpt-4o-mini"))

    assert request.content == orjson.dumps({**body, "model": "gpt-4o-mini"})


def test_route_params_fill_absent_keys_only_and_the_request_is_not_mutated() -> None:
    body = {**CHAT, "temperature": 0, "user": ""}
    client_request = make_request(body)
    provider = make_provider()
    target = make_target(provider, temperature=0.7, user="route", max_completion_tokens=99)
    first = provider.build_request(client_request, target)
    second = provider.build_request(client_request, target)

    sent = orjson.loads(first.content)
    assert sent == {**body, "max_completion_tokens": 99}
    assert orjson.dumps(sent["temperature"]) == b"0"
    assert first.content == second.content
    assert client_request.body == body


# -- parse_response ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "openai/completion-text.json",
        "openai/completion-tool-calls-parallel.json",
        "openai/completion-refusal.json",
        "azure/completion-content-filter-results.json",
    ],
)
def test_parse_response_keeps_every_recorded_completion_byte_for_byte(name: str) -> None:
    body = recording(name)
    provider = make_provider()
    completion = parse(provider, body)

    assert completion.data == orjson.loads(body)
    assert completion.encode() == body
    assert completion.data["choices"][0]["finish_reason"] in {"stop", "tool_calls"}


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"", b"[]", b'{"object": "chat.completion"}'])
def test_parse_response_refuses_what_is_not_a_chat_completion(body: bytes) -> None:
    provider = make_provider()
    with pytest.raises(UpstreamError) as caught:
        parse(provider, body)

    assert caught.value.action is Action.RETRY
    assert caught.value.code == "invalid_upstream_response"
    assert caught.value.provider == "up"


@pytest.mark.parametrize(
    "choices",
    [[], [1, "a", None], [None], "not a list", {"0": {"message": {}}}, [{"index": 0, "finish_reason": "stop"}]],
    ids=["empty", "scalars", "null", "string", "object", "no-message"],
)
def test_parse_response_refuses_a_completion_without_a_usable_choice(choices: Any) -> None:
    completion = orjson.loads(recording("openai/completion-text.json"))
    with pytest.raises(UpstreamError) as caught:
        parse(make_provider(), orjson.dumps({**completion, "choices": choices}))

    assert caught.value.code == "invalid_upstream_response"
    assert caught.value.action is Action.RETRY


# -- parse_stream -----------------------------------------------------------------------------

STREAMS = [
    "openai/stream-text.sse",
    "openai/stream-tool-call-single.sse",
    "openai/stream-tool-call-parallel.sse",
    "openai/stream-refusal.sse",
    "openai/stream-finish-length.sse",
    "openai/stream-n3-multiple-choices.sse",
]


@pytest.mark.parametrize("sizes", [None, [1], [4096]], ids=["awkward", "bytewise", "whole"])
@pytest.mark.parametrize("name", STREAMS)
async def test_parse_stream_yields_every_recorded_chunk_with_its_bytes(name: str, sizes: list[int] | None) -> None:
    sse = recording(name)
    chunks = await collect(make_provider(), stream_response(sse, sizes))

    assert [c.raw for c in chunks] == upstream_payloads(sse)
    assert [c.data for c in chunks] == [orjson.loads(p) for p in upstream_payloads(sse)]
    assert chunks[-1].data["choices"] == [] and chunks[-1].data["usage"]["total_tokens"] > 0


async def test_parse_stream_with_crlf_framing_and_comments() -> None:
    sse = recording("openai/stream-finish-length.sse")
    crlf = b": keep-alive\r\n\r\n" + sse.replace(b"\n", b"\r\n").replace(b"data: ", b"event: message\r\nid: 7\r\ndata:")
    chunks = await collect(make_provider(), stream_response(crlf))

    assert [c.raw for c in chunks] == upstream_payloads(sse)


async def test_parse_stream_skips_the_azure_preamble_but_keeps_the_usage_chunk() -> None:
    sse = sse_from_jsonl("azure/stream-prompt-filter-preamble.chunks.jsonl")
    chunks = await collect(make_provider(), stream_response(sse))

    payloads = upstream_payloads(sse)
    assert "prompt_filter_results" in orjson.loads(payloads[0])
    assert [c.raw for c in chunks] == payloads[1:]
    assert chunks[-1].data["choices"] == []
    assert chunks[-1].data["usage"]["completion_tokens_details"]["reasoning_tokens"] == 64


async def test_parse_stream_accepts_a_done_without_a_final_newline() -> None:
    sse = recording("azure/stream-async-filter.sse")
    assert sse.endswith(b"data: [DONE]")
    chunks = await collect(make_provider(), stream_response(sse))

    payloads = upstream_payloads(sse)
    assert [c.raw for c in chunks] == payloads[1:]  # the preamble is dropped
    assert any(c.data["choices"][0].get("finish_reason") == "stop" for c in chunks)


async def test_parse_stream_raises_when_the_stream_ends_before_it_finished() -> None:
    sse = recording("openai/stream-text.sse")
    provider = make_provider()
    received: list[Chunk] = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in stream_chunks(provider, stream_response(b"".join(split_events(sse)[:4]))):
            received.append(chunk)

    assert len(received) == 4
    assert caught.value.code == "upstream_stream_truncated"
    assert caught.value.action is Action.RETRY
    assert caught.value.status_code == 502


async def test_parse_stream_raises_on_an_event_that_is_not_json() -> None:
    with pytest.raises(UpstreamError) as caught:
        await collect(make_provider(), stream_response(b"data: {not json\n\n"))

    assert caught.value.code == "invalid_upstream_response"


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (b"null", "JSON null"),
        (b"[1, 2]", "a JSON array"),
        (b'"text"', "a JSON string"),
        (b"42", "a JSON number"),
        (b"true", "a JSON boolean"),
        (b'{"id": "x", "choices": [1, "a", null]}', "not a list of objects"),
        (b'{"id": "x", "choices": "none"}', "not a list of objects"),
    ],
)
async def test_parse_stream_refuses_an_event_that_is_not_a_chunk_object(payload: bytes, says: str) -> None:
    first = upstream_payloads(recording("openai/stream-text.sse"))[1]
    sse = b"data: " + first + b"\n\ndata: " + payload + b"\n\n"
    received: list[Chunk] = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in stream_chunks(make_provider(), stream_response(sse)):
            received.append(chunk)

    assert [c.raw for c in received] == [first]  # what came before still arrives
    assert caught.value.code == "invalid_upstream_response"
    assert caught.value.action is Action.RETRY
    assert says in caught.value.message
    assert "not JSON" not in caught.value.message


@pytest.mark.parametrize(
    ("error", "action", "status"),
    [
        ({"message": "The server had an error processing your request.", "type": "server_error"}, Action.RETRY, None),
        ({"code": 502, "message": "Provider returned error"}, Action.RETRY, 502),  # OpenRouter
        ({"code": 400, "message": "Invalid 'tools[0]'"}, Action.STOP, 400),
        ("Internal server error", Action.RETRY, None),  # a bare string
    ],
)
async def test_an_in_band_error_event_raises_a_classified_error(error: Any, action: Action, status: int | None) -> None:
    first = upstream_payloads(recording("openai/stream-text.sse"))[1]
    sse = b"data: " + first + b"\n\ndata: " + orjson.dumps({"error": error}) + b"\n\n"
    provider = make_provider()
    received: list[Chunk] = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in stream_chunks(provider, stream_response(sse)):
            received.append(chunk)

    assert [c.raw for c in received] == [first]
    assert caught.value.action is action
    assert caught.value.upstream_status == status
    expected = error if isinstance(error, str) else error["message"]
    assert caught.value.message == expected


# -- error_from_response ----------------------------------------------------------------------


def classify(status: int, body: Any, headers: Mapping[str, str] | None = None) -> UpstreamError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    response = httpx.Response(status, headers=headers or {}, content=raw)
    return make_provider().error_from_response(response, raw)


def envelope(message: str, type: str | None = None, code: str | None = None, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def test_a_400_about_the_request_stops_and_keeps_message_param_and_code() -> None:
    error = classify(
        400,
        envelope("Invalid 'stop': array too long.", "invalid_request_error", "array_above_max_length", param="stop"),
        {"x-request-id": "req_up_1"},
    )

    assert error.action is Action.STOP
    assert (error.status_code, error.error_type) == (400, "invalid_request_error")
    assert (error.message, error.param, error.code) == (
        "Invalid 'stop': array too long.",
        "stop",
        "array_above_max_length",
    )
    assert error.upstream_request_id == "req_up_1"
    assert error.provider == "up"
    assert error.envelope()["error"]["param"] == "stop"


@pytest.mark.parametrize(
    ("status", "body", "headers", "action"),
    [
        (400, envelope("Unsupported parameter: 'max_tokens'", code="unsupported_parameter"), None, Action.FALLBACK),
        (400, envelope("model not supported", code="model_not_supported"), None, Action.FALLBACK),
        (401, envelope("Incorrect API key provided", code="invalid_api_key"), None, Action.FALLBACK),
        (402, envelope("Payment required"), None, Action.FALLBACK),
        (403, envelope("Country not supported", code="unsupported_country_region_territory"), None, Action.FALLBACK),
        (404, envelope("The model `x` does not exist", code="model_not_found"), None, Action.FALLBACK),
        (408, envelope("Request timed out"), None, Action.RETRY),
        (409, envelope("Conflict"), None, Action.RETRY),
        (422, envelope("Unprocessable"), None, Action.STOP),
        (429, envelope("Rate limit reached for requests", "requests", "rate_limit_exceeded"), None, Action.RETRY),
        (500, envelope("The server had an error", "server_error"), None, Action.RETRY),
        (502, b"<html><body>502 Bad Gateway</body></html>", None, Action.RETRY),
        (503, envelope("The engine is currently overloaded", code="server_is_overloaded"), None, Action.RETRY),
        (504, b"", None, Action.RETRY),
        (529, envelope("Overloaded"), None, Action.RETRY),
        (599, envelope("Network connect timeout"), None, Action.RETRY),
        (
            429,
            envelope("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
            None,
            Action.FALLBACK,
        ),
        (429, envelope("You exceeded your current quota", "insufficient_quota", None), None, Action.FALLBACK),
        (429, envelope("Your credit balance is too low", code="credit_balance_exhausted"), None, Action.FALLBACK),
        (
            429,
            envelope(
                "Request too large for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, "
                "Requested 50000. The input or output tokens must be reduced in order to run successfully.",
                "tokens",
                "rate_limit_exceeded",
            ),
            None,
            Action.FALLBACK,
        ),
        (503, envelope("Overloaded"), {"x-should-retry": "false"}, Action.FALLBACK),
        (429, envelope("Rate limited"), {"x-should-retry": "false"}, Action.FALLBACK),
        (400, envelope("Try again"), {"x-should-retry": "true"}, Action.RETRY),
        (400, envelope("Bad request"), {"x-should-retry": "false"}, Action.STOP),
    ],
)
def test_error_classification(status: int, body: Any, headers: Mapping[str, str] | None, action: Action) -> None:
    error = classify(status, body, headers)

    assert error.action is action
    assert error.upstream_status == status


@pytest.mark.parametrize(
    ("status", "client_status", "error_type"),
    [
        (400, 400, "invalid_request_error"),
        (404, 404, "invalid_request_error"),
        (429, 502, "upstream_error"),
        (500, 502, "upstream_error"),
        (503, 502, "upstream_error"),
    ],
)
def test_what_the_client_would_see_of_an_upstream_error(status: int, client_status: int, error_type: str) -> None:
    error = classify(status, envelope("upstream says no", "invalid_request_error" if status < 500 else "server_error"))

    assert error.status_code == client_status
    if error.action is Action.STOP:
        assert error.error_type == error_type
    assert sorted(error.envelope()["error"]) == ["code", "message", "param", "type"]


def test_the_recorded_400_unsupported_value_falls_back_with_its_param() -> None:
    error = classify(400, recording("openai/error-400-unsupported-value.json"))

    assert error.action is Action.FALLBACK
    assert (error.code, error.param) == ("unsupported_value", "messages[0].role")
    assert error.message.startswith("Unsupported value: 'messages[0].role'")


def test_the_recorded_404_model_not_found_falls_back() -> None:
    error = classify(404, recording("openai/error-404-model-not-found.json"))

    assert error.action is Action.FALLBACK
    assert error.code == "model_not_found"
    assert "gpt-5.2-proo" in error.message


def test_the_recorded_azure_deployment_not_found_falls_back() -> None:
    error = classify(404, recording("azure/error-404-deployment-not-found.json"))

    assert error.action is Action.FALLBACK
    assert error.code == "DeploymentNotFound"
    assert error.message.startswith("The API deployment for this resource does not exist.")


def test_the_flat_vllm_error_shape() -> None:
    body = {
        "object": "error",
        "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    error = classify(400, body)

    assert error.action is Action.STOP
    assert error.message == body["message"]
    assert error.code == "400"
    assert error.error_type == "BadRequestError"


def test_the_flat_mistral_error_with_a_structured_message() -> None:
    detail = [{"type": "missing", "loc": ["body", "messages"], "msg": "Field required"}]
    error = classify(422, {"object": "error", "message": {"detail": detail}, "type": "invalid_request_message_error"})

    assert error.action is Action.STOP
    assert isinstance(error.message, str)
    assert orjson.loads(error.message) == {"detail": detail}


def test_the_openrouter_numeric_code() -> None:
    error = classify(402, {"error": {"code": 402, "message": "Insufficient credits. Add more using /credits"}})

    assert error.action is Action.FALLBACK
    assert error.code == "402"
    assert error.message == "Insufficient credits. Add more using /credits"


def test_an_array_wrapped_error() -> None:
    body = [{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "X"}}]
    error = classify(400, body)

    assert error.message == "API key not valid. Please pass a valid API key."
    assert error.code == "400"
    assert error.action is Action.STOP


def test_an_error_body_without_a_message_gets_one_naming_the_provider_and_status() -> None:
    error = classify(503, b"Service Unavailable")

    assert error.message == "Provider 'up' answered HTTP 503."
    assert error.code == "upstream_error"


def test_a_very_long_upstream_message_is_cut() -> None:
    error = classify(400, envelope("x" * 10_000))

    assert 0 < len(error.message) <= 2000


# -- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_retry_after_from_the_headers(headers: dict[str, str], seconds: float | None) -> None:
    error = classify(429, envelope("Rate limit reached"), headers)

    assert error.retry_after == seconds


def test_retry_after_as_an_http_date() -> None:
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)

    assert retry_after_seconds({"retry-after": header}, now=now) == 30.0
    assert retry_after_seconds({"retry-after": email.utils.formatdate(now - 30, usegmt=True)}, now=now) == 0.0
    error = classify(503, envelope("busy"), {"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)})
    assert error.retry_after is not None and 25.0 <= error.retry_after <= 31.0


# -- transport failures -----------------------------------------------------------------------


def test_a_connection_failure_is_retried_and_names_no_url() -> None:
    request = httpx.Request("POST", f"{BASE_URL}/chat/completions")
    error = make_provider().error_from_exception(httpx.ConnectError("connection refused", request=request))

    assert error.action is Action.RETRY
    assert error.code == "upstream_unreachable"
    assert "upstream.test" not in error.message


def test_a_read_timeout_is_an_upstream_timeout() -> None:
    error = make_provider().error_from_exception(httpx.ReadTimeout("timed out"))

    assert isinstance(error, UpstreamTimeoutError)
    assert error.action is Action.RETRY
    assert error.status_code == 504


# -- `profiles`: whether the upstream serves OpenAI's models ------------------------------------

PROXY_URL = "https://llm-proxy.corp.test/v1"
O3_MINI: dict[str, Any] = {"model": "o3-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("base_url", "profiles", "openai_models"),
    [
        (None, None, True),  # OpenAI's own URL: on by default
        ("https://api.openai.com/v1", None, True),
        (PROXY_URL, None, False),  # any other URL: off by default
        (PROXY_URL, "openai", True),
        (None, "none", False),
    ],
)
def test_profiles_decide_whether_openai_model_knowledge_applies(
    base_url: str | None, profiles: str | None, openai_models: bool
) -> None:
    options = {} if profiles is None else {"profiles": profiles}
    provider = OpenAIProvider(ProviderConfig(name="up", type="openai", base_url=base_url, options=options))
    profile = provider.profile("o3-mini")

    if openai_models:
        assert profile.output_tokens_field == "max_completion_tokens"
        assert profile.flags()["logprobs"] is False
    else:
        assert profile == Profile()


def proxied(upstream: FakeOpenAI, **extra: Any) -> Gateway:
    document: dict[str, Any] = {
        "providers": {"proxy": {"type": "openai", "base_url": PROXY_URL, "api_key": API_KEY, "profiles": "openai"}},
        "models": {"o3-mini": {"routes": [{"provider": "proxy", "model": "o3-mini"}]}},
        **extra,
    }
    transport = httpx.MockTransport(route_hosts({"llm-proxy.corp.test": upstream}))
    return Gateway.from_config(document, environ={}, transport=transport)


async def test_through_a_proxy_with_openai_profiles_a_reasoning_model_gets_max_completion_tokens() -> None:
    upstream = FakeOpenAI(models={"o3-mini"})
    driver = await drive(proxied(upstream), json={**O3_MINI, "max_tokens": 50})

    assert driver.status == 200
    (sent,) = upstream.requests
    assert sent.body["max_completion_tokens"] == 50
    assert "max_tokens" not in sent.body


async def test_through_a_proxy_with_openai_profiles_temperature_is_refused_before_any_upstream_call() -> None:
    upstream = FakeOpenAI(models={"o3-mini"})
    driver = await drive(proxied(upstream), json={**O3_MINI, "temperature": 0.2})

    assert driver.status == 400
    error = driver.json()["error"]
    assert (error["param"], error["code"]) == ("temperature", "unsupported_parameter")
    assert upstream.requests == []


async def test_through_a_proxy_with_openai_profiles_temperature_is_dropped_under_the_drop_policy() -> None:
    upstream = FakeOpenAI(models={"o3-mini"})
    app = proxied(upstream, params={"unsupported": "drop"})
    driver = await drive(app, json={**O3_MINI, "temperature": 0.2})

    assert driver.status == 200
    assert driver.header("x-routemw-dropped-params") == "temperature"
    (sent,) = upstream.requests
    assert "temperature" not in sent.body


def test_profiles_is_an_openai_option_and_its_value_is_checked_naming_the_path() -> None:
    types = ProviderRegistry.default(plugins=False).types
    document: dict[str, Any] = {
        "providers": {"proxy": {"type": "openai", "base_url": PROXY_URL, "profiles": "OpenAI"}},
        "models": {"m": {"routes": [{"provider": "proxy", "model": "o3-mini"}]}},
    }
    assert load_config(document, environ={}, provider_types=types).providers["proxy"].options["profiles"] == "OpenAI"
    with pytest.raises(ConfigError) as info:
        Gateway.from_config(document, environ={})
    assert info.value.problems == ("providers.proxy.profiles: expected one of openai, none, got 'OpenAI'",)


UNSUPPORTED_MAX_TOKENS = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
)


async def test_an_upstream_400_about_a_parameter_reaches_the_client_as_that_400_not_a_502() -> None:
    # Without profiles the proxy's upstream is the one to refuse `max_tokens`: the client must see
    # its 400 and the parameter to fix, not a 502 that says the gateway failed.
    upstream = FakeOpenAI(models={"o3-mini"})
    upstream.queue(answer_error(400, message=UNSUPPORTED_MAX_TOKENS, param="max_tokens", code="unsupported_parameter"))
    document: dict[str, Any] = {
        "providers": {"proxy": {"type": "openai", "base_url": PROXY_URL, "api_key": API_KEY}},
        "models": {"o3-mini": {"routes": [{"provider": "proxy", "model": "o3-mini"}]}},
    }
    transport = httpx.MockTransport(route_hosts({"llm-proxy.corp.test": upstream}))
    app = Gateway.from_config(document, environ={}, transport=transport)
    driver = await drive(app, json={**O3_MINI, "max_tokens": 50})

    assert driver.status == 400
    assert driver.json() == {
        "error": {
            "message": UNSUPPORTED_MAX_TOKENS,
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "unsupported_parameter",
        }
    }
    assert len(upstream.requests) == 1
