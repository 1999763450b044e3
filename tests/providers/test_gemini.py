"""The Gemini adapter on its own: request translation, responses, streams and error classification.

Everything is pure or fed from in-memory streams. Inputs are the genuine recordings in
`recordings/gemini/`; every request built is also checked against Google's OpenAPI description
of the API (through the conformance fake's checker, which walks it key by key).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson
import pytest
from conformance.gemini_checks import Rejection, check_request
from fakes import FakeByteStream, awkward_pieces, deltas, finishes, recording, sdk_completion

from routemw import Action, ProviderConfig, Target, UpstreamError, UpstreamTimeoutError
from routemw.capabilities import needs
from routemw.chat import ChatRequest, parse_chat_request
from routemw.config.default import default_document
from routemw.errors import InvalidRequestError
from routemw.middleware.capabilities import Refusal, assess
from routemw.providers.base import parse_stream
from routemw.providers.gemini.adapter import ACCEPTED_PARAMS, GeminiProvider
from routemw.providers.gemini.request import SKIP_SIGNATURE
from routemw.providers.registry import ProviderRegistry
from routemw.reply import Chunk

KEY = "gemini-test-key-0001"
USER = {"role": "user", "content": "hi"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def make_provider(**overrides: Any) -> GeminiProvider:
    settings: dict[str, Any] = {"name": "gem", "type": "gemini", "api_key": KEY}
    settings.update(overrides)
    return GeminiProvider(ProviderConfig(**settings))


def make_target(model: str = "gemini-2.5-flash", provider: GeminiProvider | None = None, **fields: Any) -> Target:
    provider = provider or make_provider()
    return Target(provider=provider, model=model, public_model="m", profile=provider.profile(model), **fields)


def make_request(body: Mapping[str, Any]) -> ChatRequest:
    return parse_chat_request(orjson.dumps({"model": "m", **body}))


def native(body: Mapping[str, Any], model: str = "gemini-2.5-flash", **fields: Any) -> dict[str, Any]:
    """The Gemini body built for `body`; it must pass the real API's checks."""
    target = make_target(model, **fields)
    request = target.provider.build_request(make_request(body), target)
    out: dict[str, Any] = orjson.loads(request.content)
    check_request(out, model)
    return out


def config_of(body: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = native({"messages": [USER], **body}).get("generationConfig", {})
    return config


def stream_response(body: bytes, pieces: Sequence[bytes] | None = None) -> httpx.Response:
    parts = list(pieces) if pieces is not None else [body]
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=FakeByteStream(parts))


async def collect(body: bytes, *, include_usage: bool = False, pieces: Sequence[bytes] | None = None) -> list[Chunk]:
    provider = make_provider()
    request = make_request({"messages": [USER], "stream": True, "stream_options": {"include_usage": include_usage}})
    response = stream_response(body, pieces)
    return [chunk async for chunk in parse_stream(provider, response, request, make_target(provider=provider))]


def sse(*events: Mapping[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events)


def event(*parts: dict[str, Any], finish: str | None = None, index: int | None = None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": list(parts), "role": "model"}}
    if finish is not None:
        candidate["finishReason"] = finish
    if index is not None:
        candidate["index"] = index
    return {"candidates": [candidate], "responseId": "resp-1", "modelVersion": "gemini-2.5-flash"}


def parse(data: Any, model: str = "gemini-2.5-flash") -> dict[str, Any]:
    provider = make_provider()
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    response = httpx.Response(200, content=body)
    completion = provider.parse_response(response, body, make_request({"messages": [USER]}), make_target(model))
    return completion.data


# -- endpoint, headers, registration ----------------------------------------------------------


def test_a_completion_posts_to_generate_content_with_the_key_in_its_header() -> None:
    provider = make_provider(headers={"X-Extra": "1"}, timeout=12.0)
    request = provider.build_request(make_request({"messages": [USER]}), make_target(provider=provider))
    assert request.method == "POST"
    assert (
        str(request.url) == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert request.headers["x-goog-api-key"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert request.headers["x-extra"] == "1"
    assert "authorization" not in request.headers
    assert request.extensions["timeout"] == {"connect": 12.0, "read": 12.0, "write": 12.0, "pool": 12.0}


def test_a_stream_asks_for_server_sent_events() -> None:
    provider = make_provider(base_url="https://gemini.test/")
    request = provider.build_request(make_request({"messages": [USER], "stream": True}), make_target(provider=provider))
    assert str(request.url) == "https://gemini.test/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert request.headers["accept"] == "text/event-stream"


@pytest.mark.parametrize(
    ("base_url", "model", "url"),
    [
        (
            "https://proxy.test/v1beta",
            "gemini-2.5-pro",
            "https://proxy.test/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        (
            "https://proxy.test",
            "models/gemini-2.5-pro",
            "https://proxy.test/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        # A model name stays one path segment whatever it holds (only config can set it).
        ("https://proxy.test", "../../admin", "https://proxy.test/v1beta/models/..%2F..%2Fadmin:generateContent"),
        ("https://proxy.test", "..", "https://proxy.test/v1beta/models/%2E%2E:generateContent"),
    ],
)
def test_base_url_and_model_spellings(base_url: str, model: str, url: str) -> None:
    provider = make_provider(base_url=base_url)
    request = provider.build_request(make_request({"messages": [USER]}), make_target(model, provider=provider))
    assert str(request.url) == url


def test_the_registry_and_the_default_config_know_gemini() -> None:
    registry = ProviderRegistry.default(plugins=False)
    assert "gemini" in registry
    assert isinstance(registry.create(ProviderConfig(name="g", type="gemini", api_key=KEY)), GeminiProvider)
    document = default_document({"GEMINI_API_KEY": "k"})
    assert document["providers"]["gemini"] == {"type": "gemini", "api_key": "${GEMINI_API_KEY}"}
    assert document["models"]["gemini-2.5-flash"]["routes"] == [{"provider": "gemini", "model": "gemini-2.5-flash"}]
    assert "gemini" not in default_document({})["providers"]


# -- profile ----------------------------------------------------------------------------------


def test_the_profile_accepts_exactly_the_translated_fields() -> None:
    profile = make_provider().profile("gemini-2.5-pro")
    assert profile.accepted_params == ACCEPTED_PARAMS
    assert {"user", "parallel_tool_calls", "reasoning_effort", "logit_bias", "metadata"}.isdisjoint(ACCEPTED_PARAMS)
    assert profile.ranges == {
        "temperature": (0.0, 2.0),
        "top_p": (0.0, 1.0),
        "n": (1, 8),
        "max_tokens": (1, math.inf),
        "max_completion_tokens": (1, math.inf),
    }
    assert profile.max_stop == 5
    assert (profile.max_output_tokens, profile.context_window) == (65_536, 1_048_576)
    flags = profile.flags()
    assert flags["parallel_tool_calls"] is False and flags["logprobs"] is False
    for name in ("streaming", "stream_usage", "tools", "tool_choice", "json_object", "json_schema", "vision"):
        assert flags[name] is True, name
    assert flags["audio_input"] is True and flags["multiple_choices"] is True


@pytest.mark.parametrize(
    ("model", "limits"),
    [
        ("gemini-2.5-flash-lite", (65_536, 1_048_576)),
        ("gemini-2.0-flash", (8_192, 1_048_576)),
        ("gemini-3-pro-preview", (65_536, 1_048_576)),
        ("some-tuned-model", (None, None)),
    ],
)
def test_limits_per_family(model: str, limits: tuple[int | None, int | None]) -> None:
    profile = make_provider().profile(model)
    assert (profile.max_output_tokens, profile.context_window) == limits


def test_fields_outside_the_translation_are_settled_by_policy() -> None:
    target = make_target()
    request = make_request({"messages": [USER], "user": "u-1", "stop": ["a", "b", "c", "d", "e", "f"]})
    refused = assess(target, needs(request), request.body, "reject")
    assert isinstance(refused, Refusal) and refused.param == "user"
    clamped = assess(target, needs(request), request.body, "clamp")
    assert isinstance(clamped, Target)
    assert clamped.drop == {"user"} and clamped.clamp == {"stop": ["a", "b", "c", "d", "e"]}
    tools = make_request({"messages": [USER], "tools": [WEATHER], "parallel_tool_calls": True})
    refused_tools = assess(target, needs(tools), tools.body, "reject")
    assert isinstance(refused_tools, Refusal) and refused_tools.param == "parallel_tool_calls"
    dropped = assess(target, needs(tools), tools.body, "drop")  # Gemini cannot express it at all
    assert isinstance(dropped, Target) and dropped.drop == {"parallel_tool_calls"}


# -- messages ---------------------------------------------------------------------------------


def test_roles_become_user_and_model_and_same_role_turns_merge() -> None:
    body = native(
        {
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "user", "content": [{"type": "text", "text": "two"}, {"type": "text", "text": ""}]},
                {"role": "assistant", "content": "three"},
                {"role": "assistant", "content": [{"type": "text", "text": "four"}]},
                {"role": "user", "content": "five"},
            ]
        }
    )
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"text": "three"}, {"text": "four"}]},
        {"role": "user", "parts": [{"text": "five"}]},
    ]


def test_system_and_developer_messages_become_the_system_instruction() -> None:
    body = native(
        {
            "messages": [
                {"role": "system", "content": "Be terse."},
                USER,
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "weather?"},
            ]
        }
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "Use metric units."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]


def test_a_request_of_system_messages_only_sends_them_as_the_user_turn() -> None:
    body = native({"messages": [{"role": "system", "content": "Say hello."}]})
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Say hello."}]}]
    assert "systemInstruction" not in body


def test_empty_turns_are_left_out() -> None:
    body = native({"messages": [USER, {"role": "assistant", "content": ""}, {"role": "user", "content": "again"}]})
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}, {"text": "again"}]}]


# -- generationConfig ------------------------------------------------------------------------


def test_every_generation_field_is_translated() -> None:
    config = config_of(
        {
            "temperature": 0.7,
            "top_p": 0.9,
            "max_tokens": 100,
            "stop": ["END", "STOP"],
            "n": 2,
            "seed": 42,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
        }
    )
    assert config == {
        "temperature": 0.7,
        "topP": 0.9,
        "maxOutputTokens": 100,
        "stopSequences": ["END", "STOP"],
        "candidateCount": 2,
        "seed": 42,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
    }


def test_explicit_zeros_arrive_as_zeros() -> None:
    config = config_of({"temperature": 0, "top_p": 0, "seed": 0, "presence_penalty": 0, "frequency_penalty": 0.0})
    assert config == {"temperature": 0, "topP": 0, "seed": 0, "presencePenalty": 0, "frequencyPenalty": 0.0}
    assert all(value is not None for value in config.values())


def test_nulls_ask_for_the_defaults() -> None:
    assert config_of({"temperature": None, "seed": None, "stop": None, "max_tokens": None}) == {}


def test_max_completion_tokens_wins_and_a_stop_string_is_a_list() -> None:
    assert config_of({"max_tokens": 10, "max_completion_tokens": 20, "stop": "END"}) == {
        "maxOutputTokens": 20,
        "stopSequences": ["END"],
    }


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "text"}, {}),
        ({"type": "json_object"}, {"responseMimeType": "application/json"}),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "r",
                    "strict": True,
                    "schema": {"type": "object", "properties": {"a": {"const": 1}}, "additionalProperties": False},
                },
            },
            {
                "responseMimeType": "application/json",
                "responseJsonSchema": {
                    "type": "object",
                    "properties": {"a": {"const": 1}},
                    "additionalProperties": False,
                },
            },
        ),
    ],
    ids=["text", "json_object", "json_schema"],
)
def test_response_formats(response_format: dict[str, Any], expected: dict[str, Any]) -> None:
    assert config_of({"response_format": response_format}) == expected


def test_drops_clamps_and_route_defaults_are_honoured() -> None:
    body = {"messages": [USER], "temperature": 3.5, "top_p": 0.5, "stop": ["a", "b", "c", "d", "e", "f"]}
    config = native(
        body,
        drop=frozenset({"top_p"}),
        clamp={"temperature": 2.0, "stop": ["a", "b", "c", "d", "e"]},
        params={"max_tokens": 512, "temperature": 0.1},
    )["generationConfig"]
    assert config == {"temperature": 2.0, "maxOutputTokens": 512, "stopSequences": ["a", "b", "c", "d", "e"]}


def test_logprobs_false_is_the_default_and_true_cannot_be_translated() -> None:
    assert config_of({"logprobs": False}) == {}
    with pytest.raises(InvalidRequestError) as caught:
        config_of({"logprobs": True})
    assert caught.value.param == "logprobs"


# -- tools ------------------------------------------------------------------------------------


def test_tools_go_out_as_json_schema_untouched() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"city": {"type": "string", "const": "Paris"}, "tags": {"type": "object", "propertyNames": {}}},
        "required": ["city"],
        "additionalProperties": False,
    }
    tools = [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": schema}},
        {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "ping", "strict": True}},
    ]
    body = native({"messages": [USER], "tools": tools})
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "description": "Weather", "parametersJsonSchema": schema},
                {"name": "now"},
                {"name": "ping"},
            ]
        }
    ]
    assert "toolConfig" not in body


def test_the_same_schema_as_parameters_would_be_refused() -> None:
    # Why parametersJsonSchema: the OpenAPI-subset field rejects JSON Schema keywords (T10).
    body = native({"messages": [USER], "tools": [WEATHER]})
    declaration = body["tools"][0]["functionDeclarations"][0]
    declaration["parameters"] = {**declaration.pop("parametersJsonSchema"), "additionalProperties": False}
    with pytest.raises(Rejection, match='Unknown name "additionalProperties"'):
        check_request(body, "gemini-2.5-flash")


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
    ids=["auto", "none", "required", "named"],
)
def test_tool_choice_modes(choice: Any, config: dict[str, Any]) -> None:
    body = native({"messages": [USER], "tools": [WEATHER], "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": config}


def test_tool_choice_without_tools_is_left_out() -> None:
    assert "toolConfig" not in native({"messages": [USER], "tool_choice": "none"})


def test_tools_gemini_cannot_express_are_refused_by_name() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        native({"messages": [USER], "tools": [{"type": "custom", "custom": {"name": "x"}}]})
    assert caught.value.param == "tools[0]"


HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris and the time?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call_a1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "functions.get_time:1", "type": "function", "function": {"name": "get_time", "arguments": ""}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_a1", "content": '{"temp": "18C"}'},
    {"role": "tool", "tool_call_id": "functions.get_time:1", "content": [{"type": "text", "text": "14:05"}]},
    {"role": "user", "content": "Thanks!"},
]


def test_tool_calls_and_results_become_function_parts_with_recovered_names() -> None:
    body = native({"messages": HISTORY})
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and the time?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": "18C"}}},
                {"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}},
                {"text": "Thanks!"},
            ],
        },
    ]


def test_results_answered_out_of_order_go_out_in_call_order() -> None:
    messages = [HISTORY[0], HISTORY[1], HISTORY[3], HISTORY[2], {"role": "user", "content": "and?"}]
    parts = native({"messages": messages})["contents"][2]["parts"]
    assert [p.get("functionResponse", {}).get("name") for p in parts] == ["get_weather", "get_time", None]
    assert parts[2] == {"text": "and?"}


@pytest.mark.parametrize(
    ("content", "response"),
    [
        ('{"ok": true}', {"ok": True}),
        ("[1, 2]", {"result": [1, 2]}),
        ("42", {"result": 42}),
        ('"quoted"', {"result": "quoted"}),
        ("plain words", {"content": "plain words"}),
        ("", {"content": ""}),
    ],
)
def test_function_responses_are_always_objects(content: str, response: dict[str, Any]) -> None:
    messages = [*HISTORY[:2], {**HISTORY[2], "content": content}, HISTORY[3]]
    part = native({"messages": messages})["contents"][2]["parts"][0]
    assert part == {"functionResponse": {"name": "get_weather", "response": response}}


def test_a_tool_result_without_its_call_is_refused_by_name() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        native({"messages": [USER, {"role": "tool", "tool_call_id": "call_zz", "content": "x"}]})
    assert caught.value.param == "messages[1].tool_call_id"


def test_arguments_that_are_not_an_object_are_refused_by_name() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[1"}}
    with pytest.raises(InvalidRequestError) as caught:
        native({"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [call]}]})
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


def test_legacy_function_messages() -> None:
    messages = [
        USER,
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": '{"a": 1}'}},
        {"role": "function", "name": "f", "content": "done"},
    ]
    assert native({"messages": messages})["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"content": "done"}}}]},
    ]


# -- thought signatures -----------------------------------------------------------------------


def test_thought_signatures_make_the_round_trip() -> None:
    returned = parse(recording("gemini/generate-content-parallel-function-calls.json"), "gemini-3-flash-preview")
    message = returned["choices"][0]["message"]
    body = native(
        {"messages": [{"role": "user", "content": "Topics?"}, message, *_results(message)]}, "gemini-3-flash-preview"
    )
    original = orjson.loads(recording("gemini/generate-content-parallel-function-calls.json"))
    assert body["contents"][1]["parts"] == original["candidates"][0]["content"]["parts"]


def _results(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": c["id"], "content": "topic"} for c in message["tool_calls"]]


def test_a_missing_signature_gets_the_documented_sentinel_on_gemini_3_only() -> None:
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
    ]
    messages = [USER, {"role": "assistant", "content": None, "tool_calls": calls}, *_results({"tool_calls": calls})]
    later = native({"messages": messages}, "gemini-3-pro-preview")["contents"][1]["parts"]
    assert [p.get("thoughtSignature") for p in later] == [SKIP_SIGNATURE, None]
    earlier = native({"messages": messages}, "gemini-2.5-pro")
    assert [p.get("thoughtSignature") for p in earlier["contents"][1]["parts"]] == [None, None]
    # Why the sentinel: the same history without it is refused by Gemini 3.
    with pytest.raises(Rejection, match="missing a thought_signature"):
        check_request(earlier, "gemini-3-pro-preview")


# -- images and audio -------------------------------------------------------------------------


def test_images_and_audio_become_inline_or_file_data() -> None:
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.webp?size=2"}},
        {"type": "image_url", "image_url": {"url": "https://example.test/render"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]
    parts = native({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"]
    assert parts == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.test/cat.webp?size=2"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.test/render"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
    ]


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}},
            "messages[0].content[0].image_url.url",
        ),
        ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, "messages[0].content[0].image_url.url"),
        (
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "flac"}},
            "messages[0].content[0].input_audio",
        ),
        ({"type": "file", "file": {"file_id": "file-1"}}, "messages[0].content[0].file"),
        ({"type": "video", "video": {}}, "messages[0].content[0]"),
    ],
)
def test_media_gemini_cannot_take_is_refused_by_name(part: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        native({"messages": [{"role": "user", "content": [part]}]})
    assert caught.value.param == param


# -- every request validates against the official description ---------------------------------


SCHEMAS: dict[str, Any] = orjson.loads(recording("gemini/openapi3-v1beta.json"))["components"]["schemas"]


def test_every_key_emitted_is_declared_by_the_official_schema() -> None:
    body = native(
        {
            "messages": [
                {"role": "system", "content": "s"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "t"},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    ],
                },
                *HISTORY[1:],
            ],
            "tools": [WEATHER, {"type": "function", "function": {"name": "get_time"}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "temperature": 0,
            "top_p": 1,
            "max_tokens": 5,
            "stop": "x",
            "n": 1,
            "seed": 0,
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
        }
    )

    def declared(name: str) -> set[str]:
        return set(SCHEMAS[name]["properties"])

    assert set(body) <= declared("GenerateContentRequest")
    assert set(body["generationConfig"]) <= declared("GenerationConfig")
    assert set(body["toolConfig"]) <= declared("ToolConfig")
    assert set(body["toolConfig"]["functionCallingConfig"]) <= declared("FunctionCallingConfig")
    for tool in body["tools"]:
        assert set(tool) <= declared("Tool")
        for function in tool["functionDeclarations"]:
            assert set(function) <= declared("FunctionDeclaration")
    for content in [body["systemInstruction"], *body["contents"]]:
        assert set(content) <= declared("Content")
        for part in content["parts"]:
            assert set(part) <= declared("Part")
            for key, schema in (("functionCall", "FunctionCall"), ("functionResponse", "FunctionResponse")):
                if key in part:
                    assert set(part[key]) <= declared(schema)


# -- parse_response ---------------------------------------------------------------------------


def test_parallel_function_calls_recording() -> None:
    data = parse(recording("gemini/generate-content-parallel-function-calls.json"))
    choice = data["choices"][0]
    assert data["id"] == "chatcmpl-wOd8abGuO5rgz7IP5tLEGA"
    assert data["object"] == "chat.completion"
    assert data["model"] == "gemini-3-flash-preview"
    assert choice["finish_reason"] == "tool_calls"  # Gemini said STOP (T6)
    message = choice["message"]
    assert message["content"] is None
    calls = message["tool_calls"]
    assert [(c["type"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("function", "generate_topic", "{}")
    ] * 3
    ids = [c["id"] for c in calls]
    assert len(set(ids)) == 3 and all(i.startswith(f"call_{n}_") for n, i in enumerate(ids))
    assert ids == [
        c["id"]
        for c in parse(recording("gemini/generate-content-parallel-function-calls.json"))["choices"][0]["message"][
            "tool_calls"
        ]
    ]
    assert "extra_content" in calls[0] and "extra_content" not in calls[1]
    assert calls[0]["extra_content"]["google"]["thought_signature"].startswith("Es8FCswFAXLI2nx")
    assert data["usage"] == {
        "prompt_tokens": 83,
        "completion_tokens": 220,
        "total_tokens": 303,
        "completion_tokens_details": {"reasoning_tokens": 190},
    }


def test_minted_ids_differ_between_responses() -> None:
    one = orjson.loads(recording("gemini/generate-content-parallel-function-calls.json"))
    other = {**one, "responseId": "another"}
    first = [c["id"] for c in parse(one)["choices"][0]["message"]["tool_calls"]]
    second = [c["id"] for c in parse(other)["choices"][0]["message"]["tool_calls"]]
    assert not set(first) & set(second)


def test_an_id_gemini_sends_is_kept() -> None:
    data = event({"functionCall": {"id": "fc-7", "name": "f", "args": {"a": [1, "é"]}}}, finish="STOP")
    call = parse(data)["choices"][0]["message"]["tool_calls"][0]
    assert call["id"] == "fc-7" and call["function"]["arguments"] == '{"a":[1,"é"]}'


@pytest.mark.parametrize(
    ("reason", "calls", "finish"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("MAX_TOKENS", True, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("OTHER", False, "stop"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
        ("FINISH_REASON_UNSPECIFIED", True, "tool_calls"),
    ],
)
def test_finish_reasons(reason: str, calls: bool, finish: str) -> None:
    parts: list[dict[str, Any]] = [{"text": "x"}]
    if calls:
        parts.append({"functionCall": {"name": "f", "args": {}}})
    assert parse(event(*parts, finish=reason))["choices"][0]["finish_reason"] == finish


def test_thoughts_are_reasoning_not_content_and_cached_tokens_are_reported() -> None:
    data = event({"text": "thinking...", "thought": True}, {"text": "Hello"}, {"text": " world"}, finish="STOP")
    data["usageMetadata"] = {
        "promptTokenCount": 100,
        "cachedContentTokenCount": 60,
        "candidatesTokenCount": 5,
        "thoughtsTokenCount": 9,
        "totalTokenCount": 114,
    }
    completion = parse(data)
    assert completion["choices"][0]["message"]["content"] == "Hello world"
    assert completion["choices"][0]["message"]["reasoning_content"] == "thinking..."
    assert completion["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 14,
        "total_tokens": 114,
        "prompt_tokens_details": {"cached_tokens": 60},
        "completion_tokens_details": {"reasoning_tokens": 9},
    }


def test_a_blocked_prompt_is_a_content_filter_finish() -> None:
    completion = parse(
        {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 8}}
    )
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "content_filter" and choice["message"]["content"] is None
    assert completion["usage"]["prompt_tokens"] == 8


def test_several_candidates_are_several_choices() -> None:
    data = {
        "candidates": [
            {"index": 1, "content": {"parts": [{"text": "B"}], "role": "model"}, "finishReason": "MAX_TOKENS"},
            {"index": 0, "content": {"parts": [{"text": "A"}], "role": "model"}, "finishReason": "STOP"},
        ]
    }
    choices = parse(data)["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "A", "stop"),
        (1, "B", "length"),
    ]


def test_a_response_without_candidates_is_retried() -> None:
    with pytest.raises(UpstreamError) as caught:
        parse({"usageMetadata": {"promptTokenCount": 3}})
    assert (caught.value.action, caught.value.code) == (Action.RETRY, "invalid_upstream_response")
    with pytest.raises(UpstreamError) as caught:
        parse(b"<html>")
    assert caught.value.code == "invalid_upstream_response"


def test_an_error_body_under_200_is_classified() -> None:
    with pytest.raises(UpstreamError) as caught:
        parse([{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}])
    assert (caught.value.action, caught.value.upstream_status) == (Action.RETRY, 503)


# -- parse_stream -----------------------------------------------------------------------------


def crlf_splits(body: bytes) -> list[bytes]:
    """The body cut between the CR and the LF of every line ending."""
    cuts = [i + 1 for i in range(len(body) - 1) if body[i : i + 2] == b"\r\n"]
    return [body[a:b] for a, b in itertools.pairwise([0, *cuts, len(body)])]


DELIVERIES = {
    "whole": lambda body: [body],
    "awkward": lambda body: awkward_pieces(body),
    "bytewise": lambda body: [body[i : i + 1] for i in range(len(body))],
    "crlf": crlf_splits,
}


@pytest.mark.parametrize("delivery", DELIVERIES)
async def test_text_stream_recording(delivery: str) -> None:
    body = recording("gemini/stream-text.sse")
    chunks = await collect(body, include_usage=True, pieces=DELIVERIES[delivery](body))
    data = [c.data for c in chunks]
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas(chunks)) == "The capital of France is Paris.\n"
    assert finishes(chunks) == ["stop"]
    assert {d["id"] for d in data} == {"chatcmpl-w1peaMz6INOvnvgPgYfPiQY"}
    assert {d["model"] for d in data} == {"gemini-2.0-flash-exp"}
    assert len({d["created"] for d in data}) == 1
    assert all(d["usage"] is None for d in data[:-1])
    assert data[-1]["choices"] == []
    assert data[-1]["usage"] == {"prompt_tokens": 13, "completion_tokens": 8, "total_tokens": 21}  # the LAST usage


async def test_usage_is_left_out_unless_asked() -> None:
    chunks = await collect(recording("gemini/stream-text.sse"))
    assert all(c.data["choices"] and "usage" not in c.data for c in chunks)
    assert sdk_completion(chunks)["choices"][0]["message"]["content"] == "The capital of France is Paris.\n"


async def test_thinking_stream_recording() -> None:
    body = recording("gemini/stream-thinking.sse")
    chunks = await collect(body, include_usage=True, pieces=awkward_pieces(body))
    reasoning = [d["reasoning_content"] for d in deltas(chunks) if "reasoning_content" in d]
    content = "".join(d.get("content") or "" for d in deltas(chunks))
    assert len(reasoning) == 4 and reasoning[0].startswith("**Clarifying User Goals**")
    assert content.startswith("This is a great question!") and "**Clarifying" not in content
    assert finishes(chunks) == ["stop"]
    assert chunks[-1].data["usage"] == {
        "prompt_tokens": 34,
        "completion_tokens": 1256,
        "total_tokens": 1290,
        "completion_tokens_details": {"reasoning_tokens": 787},
    }


@pytest.mark.parametrize("delivery", DELIVERIES)
async def test_function_call_stream_recording(delivery: str) -> None:
    body = recording("gemini/stream-function-call-thought-signature.sse")
    chunks = await collect(body, include_usage=True, pieces=DELIVERIES[delivery](body))
    calls = [d["tool_calls"][0] for d in deltas(chunks) if "tool_calls" in d]
    assert calls[0]["index"] == 0 and calls[0]["id"].startswith("call_0_")
    assert calls[0]["function"] == {"name": "get_country", "arguments": ""}
    assert calls[0]["extra_content"]["google"]["thought_signature"].startswith("EpwICpkIAXLI2nx")
    assert calls[1] == {"index": 0, "function": {"arguments": "{}"}}
    assert deltas(chunks)[0] == {"role": "assistant", "content": None, "tool_calls": [calls[0]]}
    assert finishes(chunks) == ["tool_calls"]  # STOP arrived in a trailing event of its own (T6)
    assert chunks[-1].data["usage"] == {
        "prompt_tokens": 29,
        "completion_tokens": 212,
        "total_tokens": 241,
        "completion_tokens_details": {"reasoning_tokens": 202},
    }
    final = sdk_completion(chunks)["choices"][0]
    assert final["finish_reason"] == "tool_calls"
    assert [(c["function"]["name"], c["function"]["arguments"]) for c in final["message"]["tool_calls"]] == [
        ("get_country", "{}")
    ]


async def test_tool_call_indexes_count_across_events() -> None:
    body = sse(
        event({"text": "Let me check."}),
        event({"functionCall": {"name": "a", "args": {"x": 1}}}),
        event({"functionCall": {"name": "b", "args": {}}}, {"functionCall": {"name": "a", "args": {"x": 2}}}),
        event({"text": ""}, finish="STOP"),
    )
    chunks = await collect(body)
    starts = [d["tool_calls"][0] for d in deltas(chunks) if "tool_calls" in d and "id" in d["tool_calls"][0]]
    assert [(s["index"], s["function"]["name"]) for s in starts] == [(0, "a"), (1, "b"), (2, "a")]
    assert len({s["id"] for s in starts}) == 3
    final = sdk_completion(chunks)["choices"][0]
    assert final["message"]["content"] == "Let me check."
    assert [c["function"]["arguments"] for c in final["message"]["tool_calls"]] == ['{"x":1}', "{}", '{"x":2}']
    assert final["finish_reason"] == "tool_calls"


async def test_several_candidates_stream_as_several_choices() -> None:
    body = sse(
        {
            "candidates": [
                {"index": 0, "content": {"parts": [{"text": "A"}]}},
                {"index": 1, "content": {"parts": [{"text": "B"}]}},
            ]
        },
        {"candidates": [{"index": 0, "finishReason": "STOP"}, {"index": 1, "finishReason": "MAX_TOKENS"}]},
    )
    chunks = await collect(body)
    by_choice = {(c.data["choices"][0]["index"], c.data["choices"][0]["finish_reason"]) for c in chunks}
    assert {(0, "stop"), (1, "length")} <= by_choice
    assert len({c.data["id"] for c in chunks}) == 1


async def test_a_blocked_prompt_streams_a_content_filter_finish() -> None:
    chunks = await collect(sse({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}))
    assert finishes(chunks) == ["content_filter"]


@pytest.mark.parametrize(
    "body",
    [
        recording("gemini/stream-text.sse").rsplit(b"data: ", 1)[0],  # cut before the finishing event
        recording("gemini/stream-function-call-thought-signature.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\n",
        b"",
    ],
    ids=["text-cut", "call-without-finish", "empty"],
)
async def test_a_stream_that_never_finishes_is_truncated(body: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        await collect(body)
    assert (caught.value.code, caught.value.action) == ("upstream_stream_truncated", Action.RETRY)


@pytest.mark.parametrize(
    "payload",
    [
        {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}},
        [{"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}],
    ],
    ids=["object", "array"],
)
async def test_an_error_event_in_the_stream_is_classified(payload: Any) -> None:
    body = sse(event({"text": "Hel"})) + b"data: " + orjson.dumps(payload) + b"\r\n\r\n"
    with pytest.raises(UpstreamError) as caught:
        await collect(body)
    assert (caught.value.action, caught.value.upstream_status, caught.value.code) == (
        Action.RETRY,
        429,
        "resource_exhausted",
    )


async def test_an_unframed_json_error_on_the_stream_endpoint_is_classified() -> None:
    body = recording("gemini/error-404-on-sse-endpoint.json")
    with pytest.raises(UpstreamError) as caught:
        await collect(body, pieces=awkward_pieces(body))
    assert (caught.value.action, caught.value.upstream_status, caught.value.code) == (Action.FALLBACK, 404, "not_found")


async def test_an_event_that_is_not_json_is_an_invalid_response() -> None:
    with pytest.raises(UpstreamError) as caught:
        await collect(b"data: {not json\r\n\r\n")
    assert caught.value.code == "invalid_upstream_response"


# -- errors -----------------------------------------------------------------------------------


def classify(body: Any, status: int, headers: Mapping[str, str] | None = None) -> UpstreamError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    response = httpx.Response(status, headers=headers or {"content-type": "application/json"}, content=raw)
    return make_provider().error_from_response(response, raw)


def test_an_invalid_api_key_is_a_credential_problem_not_the_clients() -> None:
    error = classify(recording("gemini/error-400-api-key-invalid.json"), 400)
    assert error.action is Action.FALLBACK
    assert error.upstream_status == 400
    assert error.status_code == 502  # were it returned, the client would not get a 400
    assert error.envelope()["error"]["type"] == "upstream_error"
    assert error.envelope()["error"]["code"] == "invalid_argument"
    assert "API_KEY_INVALID" in error.message


def test_rate_limit_without_retry_info_is_retried() -> None:
    error = classify(recording("gemini/error-429-resource-exhausted.json"), 429)
    assert (error.action, error.retry_after, error.code) == (Action.RETRY, None, "resource_exhausted")
    assert error.status_code == 502 and error.error_type == "upstream_error"
    hinted = classify(recording("gemini/error-429-resource-exhausted.json"), 429, {"retry-after": "3"})
    assert hinted.retry_after == 3.0


@pytest.mark.parametrize(("delay", "seconds"), [("12s", 12.0), ("1.5s", 1.5), ("0s", 0.0)])
def test_retry_info_sets_the_wait(delay: str, seconds: float) -> None:
    body = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}],
        }
    }
    error = classify(body, 429, {"retry-after": "99"})
    assert (error.action, error.retry_after) == (Action.RETRY, seconds)


def test_a_per_day_quota_falls_back_even_with_retry_info() -> None:
    body = [
        {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [
                            {
                                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                            }
                        ],
                    },
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
                ],
            }
        }
    ]
    error = classify(body, 429)
    assert (error.action, error.retry_after) == (Action.FALLBACK, None)


@pytest.mark.parametrize(
    ("name", "status", "action", "code"),
    [
        ("error-404-model-not-found.json", 404, Action.FALLBACK, "not_found"),
        ("error-404-on-sse-endpoint.json", 404, Action.FALLBACK, "not_found"),
    ],
)
def test_recorded_not_found_errors(name: str, status: int, action: Action, code: str) -> None:
    error = classify(recording(f"gemini/{name}"), status, {"content-type": "text/event-stream"})
    assert (error.action, error.code, error.upstream_status) == (action, code, status)
    assert error.message.startswith("models/")


@pytest.mark.parametrize(
    ("status", "rpc", "action"),
    [
        (400, "INVALID_ARGUMENT", Action.STOP),
        (400, "FAILED_PRECONDITION", Action.FALLBACK),
        (403, "PERMISSION_DENIED", Action.FALLBACK),
        (500, "INTERNAL", Action.RETRY),
        (503, "UNAVAILABLE", Action.RETRY),
        (504, "DEADLINE_EXCEEDED", Action.RETRY),
    ],
)
def test_rpc_statuses(status: int, rpc: str, action: Action) -> None:
    error = classify({"error": {"code": status, "message": f"scripted {rpc}", "status": rpc}}, status)
    assert (error.action, error.code) == (action, rpc.lower())
    envelope = error.envelope()["error"]
    assert envelope["message"] == f"scripted {rpc}" and isinstance(envelope["code"], str)
    if action is Action.STOP:
        assert (error.status_code, envelope["type"]) == (400, "invalid_request_error")


def test_a_one_element_array_body_is_read_like_an_object() -> None:
    body = orjson.loads(recording("gemini/error-404-model-not-found.json"))
    assert classify([body], 404).message == classify(body, 404).message


def test_a_body_that_is_not_json_is_classified_by_status() -> None:
    assert classify(b"<html>502 Bad Gateway</html>", 502).action is Action.RETRY
    assert classify(b"", 404).action is Action.FALLBACK


def test_transport_failures() -> None:
    provider = make_provider()
    assert provider.error_from_exception(httpx.ConnectError("refused")).action is Action.RETRY
    assert isinstance(provider.error_from_exception(httpx.ReadTimeout("slow")), UpstreamTimeoutError)
