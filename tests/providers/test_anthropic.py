"""The Anthropic adapter on its own: request translation, answers, streams and error classification.

Everything here is pure or fed from in-memory streams; answers and streams are the genuine
recordings in `tests/recordings/anthropic` wherever one exists.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson
import pytest
from conformance.fake_anthropic import FakeAnthropic
from fakes import FakeByteStream, awkward_pieces, deltas, drive, finishes, recording, sdk_completion

from routemw.app import Gateway
from routemw.capabilities import needs
from routemw.chat import ChatRequest, parse_chat_request
from routemw.config import ProviderConfig, default_document, load_config
from routemw.errors import Action, ConfigError, InvalidRequestError, UpstreamError, UpstreamTimeoutError
from routemw.middleware.capabilities import Refusal, assess
from routemw.providers.anthropic.adapter import AnthropicProvider, claude_family
from routemw.providers.anthropic.request import JSON_OBJECT_SCHEMA, JSON_TOOL, tool_id
from routemw.providers.base import Target, parse_stream
from routemw.providers.registry import ProviderRegistry
from routemw.reply import Chunk

KEY = "sk-ant-test-key-0001"
MODEL = "claude-sonnet-4-5"
USER = {"role": "user", "content": "hi"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def make_provider(**options: Any) -> AnthropicProvider:
    settings: dict[str, Any] = {"name": "claude", "type": "anthropic", "api_key": KEY}
    settings.update({k: options.pop(k) for k in ("base_url", "headers") if k in options})
    return AnthropicProvider(ProviderConfig(**settings, options=options))


def make_target(provider: AnthropicProvider, model: str = MODEL, **settings: Any) -> Target:
    return Target(provider=provider, model=model, public_model="claude", **settings)


def make_request(**body: Any) -> ChatRequest:
    return parse_chat_request(orjson.dumps({"model": "claude", "messages": [USER], **body}))


def native(model: str = MODEL, params: Mapping[str, Any] | None = None, **body: Any) -> dict[str, Any]:
    """The Messages API body the adapter sends for an OpenAI request made of `body`."""
    provider = make_provider()
    target = make_target(provider, model, params=params or {})
    request = provider.build_request(make_request(**body), target)
    sent: dict[str, Any] = orjson.loads(request.content)
    return sent


def turns(*messages: Mapping[str, Any], **body: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = native(messages=list(messages), **body)["messages"]
    return result


def call(call_id: str, name: str = "get_weather", arguments: str = '{"city":"Paris"}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def refused(**body: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        native(**body)
    return info.value


# -- configuration and request basics -------------------------------------------------------------


def test_build_request_posts_to_messages_with_anthropic_headers() -> None:
    provider = make_provider()
    request = provider.build_request(make_request(), make_target(provider))
    assert request.method == "POST"
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    assert "authorization" not in request.headers and "anthropic-beta" not in request.headers
    assert request.extensions["timeout"]["read"] == 60.0


def test_a_stream_request_asks_for_an_event_stream_and_sends_no_stream_options() -> None:
    provider = make_provider()
    request = provider.build_request(
        make_request(stream=True, stream_options={"include_usage": True}), make_target(provider)
    )
    assert request.headers["accept"] == "text/event-stream"
    body = orjson.loads(request.content)
    assert body["stream"] is True and "stream_options" not in body


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://proxy.test", "https://proxy.test/v1/messages"),
        ("https://proxy.test/", "https://proxy.test/v1/messages"),
        ("https://proxy.test/anthropic/v1", "https://proxy.test/anthropic/v1/messages"),
    ],
)
def test_base_url_is_an_origin_and_a_trailing_v1_is_tolerated(base_url: str, url: str) -> None:
    provider = make_provider(base_url=base_url)
    assert str(provider.build_request(make_request(), make_target(provider)).url) == url


def test_version_beta_and_configured_headers() -> None:
    provider = make_provider(version="2024-01-01", beta=["a-2025", "b-2025"], headers={"X-Team": "blue"})
    headers = provider.build_request(make_request(), make_target(provider)).headers
    assert headers["anthropic-version"] == "2024-01-01"
    assert headers["anthropic-beta"] == "a-2025,b-2025"
    assert headers["x-team"] == "blue"
    single = make_provider(beta="one-beta").build_request(make_request(), make_target(make_provider())).headers
    assert single["anthropic-beta"] == "one-beta"


def test_bad_options_are_reported_together_with_their_paths() -> None:
    with pytest.raises(ConfigError) as info:
        make_provider(version="", beta=[1], max_tokens=True)
    assert info.value.problems == (
        "providers.claude.version: expected a non-empty string such as '2023-06-01'",
        "providers.claude.beta: expected a beta name or a list of them",
        "providers.claude.max_tokens: expected a whole number of tokens >= 1",
    )


def test_registered_as_a_builtin_type_with_its_options() -> None:
    registry = ProviderRegistry.default(plugins=False)
    assert registry.types["anthropic"] == frozenset({"version", "beta", "max_tokens"})
    provider = registry.create(ProviderConfig(name="claude", type="anthropic", api_key=KEY))
    assert isinstance(provider, AnthropicProvider) and provider.name == "claude"


def test_default_config_serves_claude_models_when_the_key_is_set() -> None:
    environ = {"ANTHROPIC_API_KEY": "sk-ant-from-environ"}
    document = default_document(environ)
    config = load_config(document, environ=environ, provider_types=ProviderRegistry.default(plugins=False).types)
    assert config.providers["anthropic"].type == "anthropic"
    assert config.providers["anthropic"].api_key == "sk-ant-from-environ"
    for model in ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"):
        assert config.models[model].routes[0].provider == "anthropic"
    assert "claude-sonnet-4-5" not in default_document({})["models"]


# -- system, turns and content ---------------------------------------------------------------------


def test_one_system_message_is_hoisted_as_a_string() -> None:
    body = native(messages=[{"role": "system", "content": "Be terse."}, USER])
    assert body["system"] == "Be terse."
    assert [t["role"] for t in body["messages"]] == ["user"]


def test_system_and_developer_messages_anywhere_become_text_blocks() -> None:
    body = native(
        messages=[
            {"role": "developer", "content": "Rule one."},
            USER,
            {"role": "assistant", "content": "Hello."},
            {"role": "system", "content": [{"type": "text", "text": "Rule two."}, {"type": "text", "text": ""}]},
            {"role": "user", "content": "again"},
        ]
    )
    assert body["system"] == [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}]
    assert [t["role"] for t in body["messages"]] == ["user", "assistant", "user"]


def test_an_empty_system_message_sends_no_system() -> None:
    assert "system" not in native(messages=[{"role": "system", "content": ""}, USER])


def test_consecutive_user_turns_are_merged() -> None:
    result = turns({"role": "user", "content": "one"}, {"role": "user", "content": [{"type": "text", "text": "two"}]})
    assert result == [{"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}]


def test_consecutive_assistant_turns_are_merged() -> None:
    result = turns(USER, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}, USER)
    assert [t["role"] for t in result] == ["user", "assistant", "user"]
    assert result[1]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]


def test_messages_with_nothing_to_say_are_left_out() -> None:
    result = turns(
        USER,
        {"role": "assistant", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""}]},
        {"role": "user", "content": "there"},
    )
    assert result == [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]}]


def test_empty_text_parts_are_skipped() -> None:
    parts = [{"type": "text", "text": ""}, {"type": "text", "text": "x"}, {"type": "text", "text": ""}]
    assert turns({"role": "user", "content": parts})[0]["content"] == [{"type": "text", "text": "x"}]


@pytest.mark.parametrize("content", ["", None], ids=["empty", "null"])
def test_empty_content_beside_tool_calls_is_absent(content: str | None) -> None:
    assistant = {"role": "assistant", "content": content, "tool_calls": [call("call_1")]}
    result = turns(USER, assistant, {"role": "tool", "tool_call_id": "call_1", "content": "18C"})
    assert result[1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
    ]


def test_assistant_text_comes_before_its_tool_calls() -> None:
    assistant = {"role": "assistant", "content": "Let me check.", "tool_calls": [call("call_1")]}
    result = turns(USER, assistant, {"role": "tool", "tool_call_id": "call_1", "content": "18C"})
    assert [b["type"] for b in result[1]["content"]] == ["text", "tool_use"]


def test_a_final_assistant_prefill_loses_trailing_whitespace() -> None:
    assert turns(USER, {"role": "assistant", "content": "The answer is "})[-1]["content"] == [
        {"type": "text", "text": "The answer is"}
    ]
    assert turns(USER, {"role": "assistant", "content": "   "}) == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    ]


def test_a_request_of_only_system_messages_is_refused() -> None:
    assert refused(messages=[{"role": "system", "content": "Be terse."}]).param == "messages"


def test_legacy_function_messages_are_refused_by_name() -> None:
    error = refused(messages=[USER, {"role": "function", "name": "f", "content": "x"}])
    assert error.param == "messages[1].role"


def test_audio_parts_are_refused_by_name() -> None:
    part = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    assert refused(messages=[{"role": "user", "content": [part]}]).param == "messages[0].content[0].type"


# -- images -------------------------------------------------------------------------------------


def image(url: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": url}}],
    }


def test_a_data_url_image_becomes_a_base64_block_with_its_media_type() -> None:
    block = turns(image("data:image/png;base64,iVBORw0KGgo="))[0]["content"][1]
    assert block == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


def test_an_https_image_becomes_a_url_source() -> None:
    block = turns(image("https://example.test/cat.jpg"))[0]["content"][1]
    assert block == {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}}


def test_a_pdf_data_url_becomes_a_document() -> None:
    block = turns(image("data:application/pdf;base64,JVBERi0="))[0]["content"][1]
    assert block["type"] == "document" and block["source"]["media_type"] == "application/pdf"


@pytest.mark.parametrize("url", ["data:image/png,not-base64", "data:;base64,AAAA", "ftp://example.test/a.png"])
def test_unusable_image_urls_are_refused_by_name(url: str) -> None:
    assert refused(messages=[image(url)]).param == "messages[0].content[1].image_url"


# -- tool calls and results ------------------------------------------------------------------------


def test_tool_call_arguments_are_parsed_and_empty_ones_become_an_object() -> None:
    assistant = {"role": "assistant", "tool_calls": [call("call_1"), call("call_2", "get_time", "")]}
    results = [{"role": "tool", "tool_call_id": i, "content": "r"} for i in ("call_1", "call_2")]
    uses = turns(USER, assistant, *results)[1]["content"]
    assert [(u["name"], u["input"]) for u in uses] == [("get_weather", {"city": "Paris"}), ("get_time", {})]


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1, 2]", "42"], ids=["truncated", "array", "number"])
def test_tool_call_arguments_that_are_not_a_json_object_are_refused_by_name(arguments: str) -> None:
    assistant = {"role": "assistant", "tool_calls": [call("call_1"), call("call_2", arguments=arguments)]}
    error = refused(messages=[USER, assistant])
    assert error.param == "messages[1].tool_calls[1].function.arguments"
    assert error.status_code == 400


def test_consecutive_tool_results_form_one_user_turn_before_any_text() -> None:
    assistant = {"role": "assistant", "tool_calls": [call("call_1"), call("call_2")]}
    result = turns(
        USER,
        assistant,
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "user", "content": "and then?"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "20C"}]},
    )
    assert len(result) == 3
    assert result[2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "20C"}]},
            {"type": "text", "text": "and then?"},
        ],
    }


def test_an_empty_tool_result_has_no_content() -> None:
    assistant = {"role": "assistant", "tool_calls": [call("call_1")]}
    result = turns(USER, assistant, {"role": "tool", "tool_call_id": "call_1", "content": ""})
    assert result[2]["content"] == [{"type": "tool_result", "tool_use_id": "call_1"}]


@pytest.mark.parametrize("raw", ["call_abc-123", "toolu_01A09q90qw90lq917835lq9"])
def test_tool_ids_that_fit_the_charset_are_kept(raw: str) -> None:
    assert tool_id(raw) == raw


@pytest.mark.parametrize("raw", ["functions.Bash:0", "call 1", "a/b", "ünï", ""])
def test_tool_ids_outside_the_charset_are_rewritten_deterministically(raw: str) -> None:
    rewritten = tool_id(raw)
    assert rewritten != raw
    assert rewritten == tool_id(raw)
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", rewritten)


def test_ids_that_differ_only_in_rejected_characters_stay_distinct() -> None:
    assert tool_id("a.b") != tool_id("a:b") != tool_id("a_b")


def test_rewritten_ids_pair_each_result_with_its_call_and_the_real_api_accepts_them() -> None:
    ids = ["functions.get_weather:0", "call_ok", "functions.get_weather:1"]
    assistant = {"role": "assistant", "content": "", "tool_calls": [call(i) for i in ids]}
    results = [{"role": "tool", "tool_call_id": i, "content": f"result {n}"} for n, i in enumerate(ids)]
    provider = make_provider(base_url="https://anthropic.test")
    request = make_request(messages=[USER, assistant, *results], tools=[WEATHER])
    fake = FakeAnthropic(KEY)
    response = fake(provider.build_request(request, make_target(provider)))
    assert response.status_code == 200, response.content
    asked = fake.canonical()
    calls = asked.messages[1].tool_calls
    assert calls[1].id == "call_ok"
    assert [m.tool_call_id for m in asked.messages[2:]] == [c.id for c in calls]
    assert [m.tool_result for m in asked.messages[2:]] == ["result 0", "result 1", "result 2"]


def test_a_tool_result_placed_after_text_by_the_client_is_still_sent_first() -> None:
    assistant = {"role": "assistant", "tool_calls": [call("call_1")]}
    result = turns(
        USER, assistant, {"role": "user", "content": "note"}, {"role": "tool", "tool_call_id": "call_1", "content": "r"}
    )
    assert [b["type"] for b in result[2]["content"]] == ["tool_result", "text"]


# -- tools and tool choice -------------------------------------------------------------------------


def test_function_tools_become_anthropic_tools() -> None:
    bare = {"type": "function", "function": {"name": "get_time"}}
    assert native(tools=[WEATHER, bare])["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]


def test_non_function_tools_are_refused_by_name() -> None:
    assert refused(tools=[WEATHER, {"type": "custom", "custom": {"name": "x"}}]).param == "tools[1].type"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
    ids=["auto", "none", "required", "named"],
)
def test_tool_choice_forms(choice: Any, expected: dict[str, Any]) -> None:
    assert native(tools=[WEATHER], tool_choice=choice)["tool_choice"] == expected


def test_no_tool_choice_is_sent_when_the_client_gave_none() -> None:
    assert "tool_choice" not in native(tools=[WEATHER])


def test_an_unknown_tool_choice_form_is_refused() -> None:
    assert refused(tools=[WEATHER], tool_choice={"type": "allowed_tools"}).param == "tool_choice"


def test_a_forced_tool_choice_without_tools_is_refused_and_a_free_one_is_left_out() -> None:
    assert refused(tool_choice="required").param == "tool_choice"
    assert "tool_choice" not in native(tool_choice="auto")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
        ("none", {"type": "none"}),
    ],
    ids=["absent", "required", "named", "none"],
)
def test_parallel_tool_calls_false_disables_parallel_use(choice: Any, expected: dict[str, Any]) -> None:
    body: dict[str, Any] = {"tools": [WEATHER], "parallel_tool_calls": False}
    if choice is not None:
        body["tool_choice"] = choice
    assert native(**body)["tool_choice"] == expected


def test_parallel_tool_calls_true_is_anthropics_default() -> None:
    assert "tool_choice" not in native(tools=[WEATHER], parallel_tool_calls=True)


# -- scalars ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "expected"), [("END", ["END"]), (["END", " ", "STOP"], ["END", "STOP"])], ids=["string", "list"]
)
def test_stop_becomes_stop_sequences_without_whitespace_only_entries(stop: Any, expected: list[str]) -> None:
    assert native(stop=stop)["stop_sequences"] == expected


def test_a_stop_of_only_whitespace_sends_no_stop_sequences() -> None:
    assert "stop_sequences" not in native(stop=["\n", "  "])


def test_user_becomes_metadata_user_id() -> None:
    assert native(user="user-7f3a")["metadata"] == {"user_id": "user-7f3a"}


def test_fields_without_an_anthropic_meaning_are_not_sent() -> None:
    body = native(seed=7, n=1, logprobs=False, presence_penalty=0)
    assert set(body) == {"model", "max_tokens", "messages"}


def test_explicit_zero_values_arrive() -> None:
    body = native(temperature=0, max_tokens=0)
    assert body["temperature"] == 0 and body["max_tokens"] == 0


def test_top_k_extension_is_passed_on() -> None:
    assert native(top_k=40)["top_k"] == 40


# -- max_tokens ---------------------------------------------------------------------------------


def test_max_tokens_and_max_completion_tokens_become_max_tokens() -> None:
    assert native(max_tokens=300)["max_tokens"] == 300
    assert native(max_completion_tokens=400)["max_tokens"] == 400
    assert native(max_tokens=300, max_completion_tokens=400)["max_tokens"] == 400


@pytest.mark.parametrize(
    ("model", "default"),
    [
        ("claude-sonnet-4-5-20250929", 16_384),
        ("claude-opus-4-1", 16_384),
        ("claude-haiku-4-5", 16_384),
        ("claude-3-7-sonnet-latest", 16_384),
        ("claude-3-5-haiku-20241022", 8_192),
        ("claude-3-haiku-20240307", 4_096),
        ("kimi-k2-compatible", 8_192),
    ],
)
def test_a_missing_max_tokens_gets_the_family_default(model: str, default: int) -> None:
    assert native(model)["max_tokens"] == default
    family = claude_family(model)
    assert family.max_output_tokens is None or default <= family.max_output_tokens


def test_the_provider_option_replaces_the_family_default() -> None:
    provider = make_provider(max_tokens=2048)
    body = orjson.loads(provider.build_request(make_request(), make_target(provider)).content)
    assert body["max_tokens"] == 2048


def test_a_route_max_tokens_default_wins_over_the_family_default() -> None:
    assert native(params={"max_tokens": 1000})["max_tokens"] == 1000
    assert native(params={"max_completion_tokens": 1200})["max_tokens"] == 1200


@pytest.mark.parametrize("spelling", ["max_tokens", "max_completion_tokens"])
def test_the_clients_limit_under_either_spelling_beats_the_route_default(spelling: str) -> None:
    assert native(params={"max_tokens": 1000, "max_completion_tokens": 1000}, **{spelling: 50})["max_tokens"] == 50


def test_route_params_fill_only_fields_the_client_did_not_send() -> None:
    body = native(params={"temperature": 0.7, "top_k": 5}, temperature=0)
    assert body["temperature"] == 0 and body["top_k"] == 5
    assert native(params={"temperature": 0.7}, temperature=None)["temperature"] == 0.7  # null is "not sent"


def test_drops_and_clamps_decided_by_the_capability_check_are_applied() -> None:
    provider = make_provider()
    target = make_target(provider, drop=frozenset({"stop"}), clamp={"temperature": 1.0})
    request = make_request(stop="END", temperature=1.7)
    body = orjson.loads(provider.build_request(request, target).content)
    assert "stop_sequences" not in body and body["temperature"] == 1.0


# -- sampling (P5) --------------------------------------------------------------------------------


def test_newer_families_declare_temperature_and_top_p_exclusive() -> None:
    provider = make_provider()
    assert provider.profile("claude-sonnet-4-5").exclusive_params == (("temperature", "top_p"),)
    assert provider.profile("claude-haiku-4-5").exclusive_params == (("temperature", "top_p"),)
    assert provider.profile("claude-sonnet-4-20250514").exclusive_params == ()


def test_the_adapter_itself_drops_neither_sampling_parameter() -> None:
    # Which one goes is the parameter policy's call, made (and disclosed) before translation.
    body = native("claude-sonnet-4-5", temperature=0.2, top_p=0.9)
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)


def test_older_families_get_both() -> None:
    body = native("claude-sonnet-4-20250514", temperature=0.2, top_p=0.9)
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)


@pytest.mark.parametrize("key", ["temperature", "top_p"])
def test_one_sampling_parameter_alone_is_sent(key: str) -> None:
    assert native("claude-opus-4-1", **{key: 0.3})[key] == 0.3


# -- response_format --------------------------------------------------------------------------------


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def test_json_schema_goes_through_a_forced_tool() -> None:
    body = native(response_format={"type": "json_schema", "json_schema": {"name": "result", "schema": SCHEMA}})
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    assert body["tools"] == [
        {"name": JSON_TOOL, "description": "Answer with JSON that matches the `result` schema.", "input_schema": SCHEMA}
    ]


def test_json_object_goes_through_a_forced_tool_taking_any_object() -> None:
    body = native(response_format={"type": "json_object"})
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}
    assert body["tools"][0]["input_schema"] == dict(JSON_OBJECT_SCHEMA)


def test_json_mode_beside_client_tools_lets_the_model_choose_a_tool_or_the_json() -> None:
    body = native(response_format={"type": "json_object"}, tools=[WEATHER], parallel_tool_calls=False)
    assert [t["name"] for t in body["tools"]] == ["get_weather", JSON_TOOL]
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_json_mode_with_tool_choice_none_forces_the_json_tool() -> None:
    body = native(response_format={"type": "json_object"}, tools=[WEATHER], tool_choice="none")
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL}


def test_a_forced_tool_choice_leaves_no_text_to_shape() -> None:
    body = native(response_format={"type": "json_object"}, tools=[WEATHER], tool_choice="required")
    assert [t["name"] for t in body["tools"]] == ["get_weather"]
    assert body["tool_choice"] == {"type": "any"}


def test_a_text_response_format_changes_nothing() -> None:
    assert "tools" not in native(response_format={"type": "text"})


def test_a_schema_whose_root_is_not_an_object_is_refused() -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "array"}}}
    assert refused(response_format=response_format).param == "response_format.json_schema.schema"


def test_a_client_tool_named_like_the_json_tool_is_refused() -> None:
    tool = {"type": "function", "function": {"name": JSON_TOOL}}
    assert refused(response_format={"type": "json_object"}, tools=[tool]).param == "response_format"


# -- profile --------------------------------------------------------------------------------------


def test_profile_declares_what_the_adapter_translates() -> None:
    profile = make_provider().profile("claude-sonnet-4-5-20250929")
    assert profile.accepted_params == frozenset(
        {
            "model",
            "messages",
            "stream",
            "stream_options",
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "top_p",
            "top_k",
            "stop",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
            "user",
            "n",
            "logprobs",
        }
    )
    assert dict(profile.ranges) == {
        "temperature": (0.0, 1.0),
        "top_p": (0.0, 1.0),
        "max_tokens": (1, math.inf),
        "max_completion_tokens": (1, math.inf),
    }
    assert profile.output_tokens_field is None
    assert (profile.max_output_tokens, profile.context_window) == (64_000, 200_000)
    flags = profile.flags()
    for name in ("streaming", "stream_usage", "tools", "tool_choice", "parallel_tool_calls", "json_object"):
        assert flags[name] is True, name
    assert flags["json_schema"] is True and flags["vision"] is True
    for name in ("multiple_choices", "logprobs", "audio_input", "reasoning_effort"):
        assert flags[name] is False, name


def test_profile_limits_follow_the_family() -> None:
    provider = make_provider()
    assert provider.profile("claude-opus-4-1-20250805").max_output_tokens == 32_000
    assert provider.profile("claude-3-5-haiku-latest").supports("vision") is False
    unknown = provider.profile("some-compatible-model")
    assert (unknown.max_output_tokens, unknown.context_window) == (None, None)


def assessed(**body: Any) -> Target | Refusal:
    provider = make_provider()
    target = make_target(provider, profile=provider.profile(MODEL))
    request = make_request(**body)
    return assess(target, needs(request), request.body, "reject")


def test_the_capability_check_refuses_what_is_not_translated_and_passes_harmless_values() -> None:
    assert assessed(seed=1) == Refusal("seed", f"route claude/{MODEL} does not support the parameter `seed`")
    assert isinstance(assessed(n=1, logprobs=False, user="u"), Target)
    assert isinstance(assessed(n=2), Refusal) and isinstance(assessed(reasoning_effort="low"), Refusal)
    temperature = assessed(temperature=1.5)
    assert isinstance(temperature, Refusal) and temperature.param == "temperature"


# -- parse_response ---------------------------------------------------------------------------------


def parse(message: Mapping[str, Any] | bytes, **body: Any) -> dict[str, Any]:
    provider = make_provider()
    raw = message if isinstance(message, bytes) else orjson.dumps(message)
    data: dict[str, Any] = provider.parse_response(
        httpx.Response(200), raw, make_request(**body), make_target(provider)
    ).data
    return data


def message(*content: dict[str, Any], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": list(content),
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, **usage},
    }


def test_parallel_tool_use_recording() -> None:
    data = parse(recording("anthropic/message-parallel-tool-use.json"))
    assert data["id"] == "msg_011S3wxtqL5CVescWqS3zeg2"
    assert data["object"] == "chat.completion" and data["model"] == "claude-haiku-4-5-20251001"
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"].startswith("I'll help you find out who is the youngest")
    calls = choice["message"]["tool_calls"]
    assert [c["id"] for c in calls] == [
        "toolu_0167cfEnoQaPviGdVXA95zcu",
        "toolu_01EEe2V5HD1Ac4rKiUR4HD2T",
        "toolu_01XFyAjstT3966qvRynZyVPo",
        "toolu_013mnQZbgtK2oe3Mo3XKJsx3",
    ]
    assert [c["function"]["arguments"] for c in calls] == [
        '{"name":"Alice"}',
        '{"name":"Bob"}',
        '{"name":"Charlie"}',
        '{"name":"Daisy"}',
    ]
    assert {c["type"] for c in calls} == {"function"} and {c["function"]["name"] for c in calls} == {
        "retrieve_entity_info"
    }
    assert data["usage"] == {
        "prompt_tokens": 423,
        "completion_tokens": 202,
        "total_tokens": 625,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        ("something_new", "stop"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    assert (
        parse(message({"type": "text", "text": "x"}, stop_reason=stop_reason))["choices"][0]["finish_reason"] == finish
    )


def test_usage_counts_cache_tokens_as_prompt_tokens() -> None:
    data = parse(message(cache_creation_input_tokens=20, cache_read_input_tokens=30))
    assert data["usage"] == {
        "prompt_tokens": 60,
        "completion_tokens": 5,
        "total_tokens": 65,
        "prompt_tokens_details": {"cached_tokens": 30},
    }


def test_text_blocks_are_joined_and_thinking_is_reasoning_content() -> None:
    data = parse(
        message(
            {"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
            {"type": "text", "text": "The answer"},
            {"type": "text", "text": " is 4."},
        )
    )
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "The answer is 4.",
        "refusal": None,
        "reasoning_content": "Hmm.",
    }


def test_an_answer_without_text_has_null_content() -> None:
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}
    data = parse(message(tool_use, stop_reason="tool_use"))
    assert data["choices"][0]["message"]["content"] is None
    assert data["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{}"


def test_the_json_tool_becomes_the_content_and_finishes_as_stop() -> None:
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL, "input": {"a": 1, "b": "ü"}}
    data = parse(message(tool_use, stop_reason="tool_use"), response_format={"type": "json_object"})
    choice = data["choices"][0]
    assert choice["message"]["content"] == '{"a":1,"b":"ü"}'
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"


def test_the_json_tool_beside_a_real_call_keeps_the_call() -> None:
    json_use = {"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL, "input": {"a": 1}}
    real_use = {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}}
    data = parse(
        message(json_use, real_use, stop_reason="tool_use"), response_format={"type": "json_object"}, tools=[WEATHER]
    )
    choice = data["choices"][0]
    assert choice["message"]["content"] == '{"a":1}'
    assert [c["id"] for c in choice["message"]["tool_calls"]] == ["toolu_2"]
    assert choice["finish_reason"] == "tool_calls"


def test_a_tool_named_like_the_json_tool_is_a_tool_call_without_json_mode() -> None:
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL, "input": {}}
    assert parse(message(tool_use, stop_reason="tool_use"))["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("body", [b"not json", b'{"type": "error"}', b'{"type": "message", "content": "x"}'])
def test_a_body_that_is_not_a_message_is_a_retryable_upstream_failure(body: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        parse(body)
    assert info.value.action is Action.RETRY and info.value.code == "invalid_upstream_response"


# -- parse_stream -------------------------------------------------------------------------------


STREAM_REQUEST: dict[str, Any] = {"stream": True}


def stream_response(body: bytes, sizes: Sequence[int] | None = None) -> httpx.Response:
    pieces = awkward_pieces(body, sizes) if sizes else [body]
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=FakeByteStream(pieces))


async def collect(body: bytes, sizes: Sequence[int] | None = None, **request: Any) -> list[Chunk]:
    provider = make_provider()
    chat = make_request(**{**STREAM_REQUEST, **request})
    return [c async for c in parse_stream(provider, stream_response(body, sizes), chat, make_target(provider))]


async def collect_until_error(body: bytes, **request: Any) -> tuple[list[Chunk], UpstreamError]:
    provider = make_provider()
    chat = make_request(**{**STREAM_REQUEST, **request})
    chunks: list[Chunk] = []
    with pytest.raises(UpstreamError) as info:
        async for chunk in parse_stream(provider, stream_response(body), chat, make_target(provider)):
            chunks.append(chunk)
    return chunks, info.value


def event(name: str, data: Mapping[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def message_start(**usage: int) -> bytes:
    start = message(**usage)
    return event("message_start", {"type": "message_start", "message": {**start, "content": [], "stop_reason": None}})


def block(index: int, content_block: Mapping[str, Any], *fragments: Mapping[str, Any]) -> bytes:
    out = event("content_block_start", {"type": "content_block_start", "index": index, "content_block": content_block})
    for delta in fragments:
        out += event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
    return out + event("content_block_stop", {"type": "content_block_stop", "index": index})


def text(index: int, *pieces: str) -> bytes:
    return block(index, {"type": "text", "text": ""}, *({"type": "text_delta", "text": p} for p in pieces))


def tool(index: int, call_id: str, name: str, *pieces: str, preset: Mapping[str, Any] | None = None) -> bytes:
    start = {"type": "tool_use", "id": call_id, "name": name, "input": preset or {}}
    return block(index, start, *({"type": "input_json_delta", "partial_json": p} for p in pieces))


def ending(stop_reason: str = "end_turn", output_tokens: int = 9) -> bytes:
    delta = {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}}
    return event("message_delta", {**delta, "usage": {"output_tokens": output_tokens}}) + event(
        "message_stop", {"type": "message_stop"}
    )


async def test_text_recording() -> None:
    chunks = await collect(recording("anthropic/stream-text.sse"))
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    content = "".join(d.get("content") or "" for d in deltas(chunks))
    assert content == (
        "The weather in San Francisco, CA is currently:\n- **Temperature:** 68°F\n- **Condition:** Sunny\n\n"
        "It's a nice sunny day!"
    )
    assert finishes(chunks) == ["stop"]
    assert chunks[-1].data["choices"][0]["finish_reason"] == "stop"
    assert {c.data["id"] for c in chunks} == {"msg_016HxyUMAncysqX7dn1kWNRx"}
    assert {c.data["model"] for c in chunks} == {"claude-haiku-4-5-20251001"}
    assert all("usage" not in c.data for c in chunks)


async def test_text_recording_with_usage_asked_for() -> None:
    chunks = await collect(recording("anthropic/stream-text.sse"), stream_options={"include_usage": True})
    assert chunks[-1].data["choices"] == []
    assert chunks[-1].data["usage"] == {
        "prompt_tokens": 770,
        "completion_tokens": 38,
        "total_tokens": 808,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert all(c.data["usage"] is None for c in chunks[:-1])


async def test_tool_use_recording() -> None:
    chunks = await collect(recording("anthropic/stream-tool-use.sse"))
    tool_deltas = [d["tool_calls"][0] for d in deltas(chunks) if "tool_calls" in d]
    assert tool_deltas[0] == {
        "index": 0,
        "id": "toolu_018acGYLtfR52q9yDbWaEdQZ",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(set(d) == {"index", "function"} and d["index"] == 0 for d in tool_deltas[1:])
    assert "" not in [d["function"]["arguments"] for d in tool_deltas[1:]]  # the empty first fragment is not sent
    arguments = "".join(d["function"]["arguments"] for d in tool_deltas)
    assert arguments == '{"location": "San Francisco, CA", "units": "f"}'
    assert finishes(chunks) == ["tool_calls"]


async def test_thinking_recording_sends_reasoning_then_text() -> None:
    chunks = await collect(recording("anthropic/stream-thinking.sse"))
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas(chunks))
    content = "".join(d.get("content") or "" for d in deltas(chunks))
    assert reasoning.startswith("This is a straightforward question about pedestrian safety.")
    assert reasoning.endswith("help prevent accidents.")
    assert content.endswith("prioritize safety over speed when crossing streets.")
    first_text = next(i for i, d in enumerate(deltas(chunks)) if d.get("content"))
    assert all("content" not in d or d["content"] == "" for d in deltas(chunks)[:first_text])
    assert not any("signature" in orjson.dumps(c.data).decode() for c in chunks)
    assert finishes(chunks) == ["stop"]


def without_created(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.data.items() if k != "created"} for c in chunks]


@pytest.mark.parametrize("name", ["stream-text.sse", "stream-tool-use.sse", "stream-thinking.sse"])
async def test_recordings_translate_identically_however_they_are_cut(name: str) -> None:
    raw = recording(f"anthropic/{name}")
    whole = without_created(await collect(raw, stream_options={"include_usage": True}))
    for sizes in ([1], [5, 2, 17, 3, 64, 7, 1, 1, 250, 11, 2], [len(raw) // 3 + 1]):
        assert without_created(await collect(raw, sizes, stream_options={"include_usage": True})) == whole


async def test_tool_use_recording_cut_at_every_offset() -> None:
    raw = recording("anthropic/stream-tool-use.sse")
    whole = without_created(await collect(raw))
    for offset in range(1, len(raw)):
        assert without_created(await collect(raw, [offset, len(raw)])) == whole, offset


@pytest.mark.parametrize(
    ("name", "expected_content", "expected_calls"),
    [
        ("stream-text.sse", "It's a nice sunny day!", []),
        (
            "stream-tool-use.sse",
            None,
            [("toolu_018acGYLtfR52q9yDbWaEdQZ", "get_weather", {"location": "San Francisco, CA", "units": "f"})],
        ),
    ],
)
async def test_the_openai_sdk_reassembles_the_translated_recordings(
    name: str, expected_content: str | None, expected_calls: list[tuple[str, str, dict[str, Any]]]
) -> None:
    completion = sdk_completion(await collect(recording(f"anthropic/{name}"), [7, 3]))
    message = completion["choices"][0]["message"]
    assert (message["content"] or "").endswith(expected_content or "")
    if expected_content is None:
        assert not message["content"]
    calls = [
        (c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in message["tool_calls"] or []
    ]
    assert calls == expected_calls


async def test_tool_indexes_count_tools_only_and_the_sdk_reassembles_each_call() -> None:
    body = (
        message_start()
        + text(0, "Checking ", "both.")
        + tool(1, "toolu_a", "get_weather", "", '{"ci', 'ty": "Pa', 'ris"}')
        + tool(2, "toolu_b", "get_time", '{"zone"', ': "UTC"}')
        + ending("tool_use")
    )
    chunks = await collect(body, [9])
    starts = [d["tool_calls"][0] for d in deltas(chunks) if "tool_calls" in d and "id" in d["tool_calls"][0]]
    assert [(s["index"], s["id"]) for s in starts] == [(0, "toolu_a"), (1, "toolu_b")]
    message = sdk_completion(chunks)["choices"][0]["message"]
    assert message["content"] == "Checking both."
    assert [(c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in message["tool_calls"]] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"zone": "UTC"}),
    ]
    assert finishes(chunks) == ["tool_calls"]


async def test_a_call_with_only_empty_argument_fragments_gets_an_empty_object() -> None:
    chunks = await collect(message_start() + tool(0, "toolu_a", "get_time", "", "") + ending("tool_use"))
    arguments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas(chunks) if "tool_calls" in d]
    assert arguments == ["", "{}"]
    assert orjson.loads(sdk_completion(chunks)["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {}


async def test_an_input_given_whole_at_the_block_start_is_sent_as_the_arguments() -> None:
    chunks = await collect(
        message_start() + tool(0, "toolu_a", "get_time", preset={"zone": "UTC"}) + ending("tool_use")
    )
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas(chunks) if "tool_calls" in d)
    assert orjson.loads(arguments) == {"zone": "UTC"}


async def test_the_json_tool_streams_as_content_and_finishes_as_stop() -> None:
    body = message_start() + tool(0, "toolu_j", JSON_TOOL, "", '{"a"', ": 1}") + ending("tool_use")
    chunks = await collect(body, response_format={"type": "json_object"})
    assert not any("tool_calls" in d for d in deltas(chunks))
    assert "".join(d.get("content") or "" for d in deltas(chunks)) == '{"a": 1}'
    assert finishes(chunks) == ["stop"]


async def test_pings_and_unknown_events_are_ignored() -> None:
    body = (
        message_start()
        + event("ping", {"type": "ping"})
        + text(0, "hi")
        + event("future_event", {"type": "future_event", "x": 1})
        + ending()
    )
    chunks = await collect(body)
    assert deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "hi"}, {}]


async def test_usage_is_cumulative_and_the_last_count_wins() -> None:
    body = message_start(cache_read_input_tokens=100, output_tokens=1) + text(0, "x") + ending(output_tokens=42)
    chunks = await collect(body, stream_options={"include_usage": True})
    assert chunks[-1].data["usage"] == {
        "prompt_tokens": 110,
        "completion_tokens": 42,
        "total_tokens": 152,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


OVERLOADED = event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})


async def test_an_error_event_before_any_content_is_retryable_and_never_a_529() -> None:
    chunks, error = await collect_until_error(message_start() + OVERLOADED)
    assert [d for d in deltas(chunks)] == [{"role": "assistant", "content": ""}]
    assert error.action is Action.RETRY and error.code == "upstream_overloaded"
    assert error.status_code == 502 and error.envelope()["error"]["type"] == "upstream_error"


async def test_an_error_event_after_content_is_raised_after_that_content() -> None:
    chunks, error = await collect_until_error(
        message_start()
        + event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        + event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
        )
        + OVERLOADED
        + text(1, "never sent")
    )
    assert [d.get("content") for d in deltas(chunks)] == ["", "Hel"]
    assert error.message == "Overloaded" and error.upstream_status == 529


async def test_an_invalid_request_error_event_stops() -> None:
    payload = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
    _, error = await collect_until_error(message_start() + event("error", payload))
    assert error.action is Action.STOP and error.status_code == 400


async def test_a_stream_that_ends_without_a_stop_reason_is_truncated() -> None:
    chunks, error = await collect_until_error(message_start() + text(0, "partial answer"))
    assert "".join(d.get("content") or "" for d in deltas(chunks)) == "partial answer"
    assert finishes(chunks) == []
    assert error.code == "upstream_stream_truncated" and error.action is Action.RETRY


async def test_a_stream_cut_after_its_stop_reason_still_finishes_with_usage() -> None:
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}
    chunks = await collect(
        message_start() + text(0, "done") + event("message_delta", delta), stream_options={"include_usage": True}
    )
    assert finishes(chunks) == ["stop"]
    assert chunks[-1].data["usage"]["completion_tokens"] == 3


async def test_nothing_after_message_stop_is_read() -> None:
    chunks = await collect(message_start() + text(0, "a") + ending() + text(1, "ghost"))
    assert "ghost" not in orjson.dumps([c.data for c in chunks]).decode()


async def test_an_event_that_is_not_json_is_a_retryable_upstream_failure() -> None:
    _, error = await collect_until_error(message_start() + b"event: content_block_delta\ndata: {not json\n\n")
    assert error.code == "invalid_upstream_response" and error.action is Action.RETRY


# -- server tools, unknown blocks and malformed events -----------------------------------------------

# A web search answered by Anthropic itself, in the shape its stream takes: the `server_tool_use`
# block streams its input like a client tool, the result block arrives whole at its start, and
# the text after it carries citations.
SEARCH_ID = "srvtoolu_01WYG3ziw53XMcoyKL4XcZmE"
SEARCH_INPUT = {"query": "weather in Paris today"}
SEARCH_RESULT = {
    "type": "web_search_tool_result",
    "tool_use_id": SEARCH_ID,
    "content": [
        {
            "type": "web_search_result",
            "title": "Paris weather",
            "url": "https://weather.example/paris",
            "encrypted_content": "EqgfCioIARgBIiQ3YTAwMjY1Mi1mZjM5",
            "page_age": "1 hour ago",
        }
    ],
}
CITATION = {
    "type": "web_search_result_location",
    "cited_text": "Sunny, 21 degrees.",
    "url": "https://weather.example/paris",
    "title": "Paris weather",
    "encrypted_index": "Eo8BCioIAhgBIiQyYjQ0",
}


def server_tool(index: int, *pieces: Any, name: str = "web_search", kind: str = "server_tool_use") -> bytes:
    start = {"type": kind, "id": SEARCH_ID, "name": name, "input": {}}
    return block(index, start, *({"type": "input_json_delta", "partial_json": p} for p in pieces))


def searched(*, then: bytes = b"", stop_reason: str = "end_turn") -> bytes:
    """Text, a web search with its result, cited text, then `then`, as Anthropic streams them."""
    delta = {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}}
    usage = {"output_tokens": 60, "server_tool_use": {"web_search_requests": 1}}
    return (
        message_start()
        + text(0, "I'll search for that.")
        + server_tool(1, "", '{"query": "weather', ' in Paris today"}')
        + block(2, SEARCH_RESULT)
        + block(
            3,
            {"type": "text", "text": ""},
            {"type": "text_delta", "text": "It is sunny"},
            {"type": "citations_delta", "citation": CITATION},
            {"type": "text_delta", "text": " in Paris."},
        )
        + then
        + event("message_delta", {**delta, "usage": usage})
        + event("message_stop", {"type": "message_stop"})
    )


def tool_call_deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    return [call for d in deltas(chunks) for call in d.get("tool_calls") or ()]


async def test_a_server_tool_in_a_stream_is_not_a_tool_call() -> None:
    chunks = await collect(searched())
    assert tool_call_deltas(chunks) == []
    assert "".join(d.get("content") or "" for d in deltas(chunks)) == "I'll search for that.It is sunny in Paris."
    assert finishes(chunks) == ["stop"]
    message = sdk_completion(chunks)["choices"][0]["message"]
    assert message["tool_calls"] is None and message["content"] == "I'll search for that.It is sunny in Paris."


async def test_a_client_tool_after_a_server_tool_is_the_first_call_and_finishes_as_tool_calls() -> None:
    body = searched(then=tool(4, "toolu_c", "get_weather", "", '{"city": "Paris"}'), stop_reason="tool_use")
    chunks = await collect(body, tools=[WEATHER])
    assert {call["index"] for call in tool_call_deltas(chunks)} == {0}
    calls = sdk_completion(chunks)["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in calls] == [
        ("toolu_c", "get_weather", {"city": "Paris"})
    ]
    assert finishes(chunks) == ["tool_calls"]


async def test_a_server_tool_beside_the_json_tool_leaves_only_the_json_as_content() -> None:
    body = (
        message_start()
        + server_tool(0, "", '{"query": "x"}')
        + block(1, SEARCH_RESULT)
        + tool(2, "toolu_j", JSON_TOOL, "", '{"a": 1}')
        + ending("tool_use")
    )
    chunks = await collect(body, response_format={"type": "json_object"})
    assert tool_call_deltas(chunks) == []
    assert "".join(d.get("content") or "" for d in deltas(chunks)) == '{"a": 1}'
    assert finishes(chunks) == ["stop"]


@pytest.mark.parametrize("tools", [None, [WEATHER]])
async def test_streamed_and_whole_answers_with_a_server_tool_agree(tools: list[dict[str, Any]] | None) -> None:
    """The same content, streamed or whole, reaches the client as the same completion."""
    server_use = {"type": "server_tool_use", "id": SEARCH_ID, "name": "web_search", "input": SEARCH_INPUT}
    cited = {"type": "text", "text": "It is sunny in Paris.", "citations": [CITATION]}
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "I'll search for that."},
        server_use,
        SEARCH_RESULT,
        cited,
    ]
    then, stop_reason = b"", "end_turn"
    if tools:
        content.append({"type": "tool_use", "id": "toolu_c", "name": "get_weather", "input": {"city": "Paris"}})
        then, stop_reason = tool(4, "toolu_c", "get_weather", '{"city": "Paris"}'), "tool_use"
    extra = {"tools": tools} if tools else {}
    whole = parse(message(*content, stop_reason=stop_reason), **extra)["choices"][0]
    streamed = sdk_completion(await collect(searched(then=then, stop_reason=stop_reason), **extra))["choices"][0]
    assert streamed["finish_reason"] == whole["finish_reason"]
    assert streamed["message"]["content"] == whole["message"]["content"] == "I'll search for that.It is sunny in Paris."
    whole_calls = [
        (c["id"], c["function"]["name"], c["function"]["arguments"]) for c in whole["message"].get("tool_calls") or []
    ]
    streamed_calls = [
        (c["id"], c["function"]["name"], orjson.dumps(orjson.loads(c["function"]["arguments"])).decode())
        for c in streamed["message"]["tool_calls"] or []
    ]
    assert streamed_calls == whole_calls


async def test_blocks_of_unknown_and_anthropic_only_types_are_passed_over_whatever_they_hold() -> None:
    body = (
        message_start()
        + block(0, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"})
        + text(1, "Before.")
        + server_tool(2, '{"server_name": "wiki", "q": 1}', name="search", kind="mcp_tool_use")
        + block(3, {"type": "mcp_tool_result", "tool_use_id": SEARCH_ID, "is_error": False, "content": []})
        + block(4, {"type": "container_upload", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"})
        + server_tool(5, 7, {"not": "a string"}, None)  # malformed, but not the client's: passed over
        + block(6, {"type": "hologram", "id": "h_1"}, {"type": "hologram_delta", "partial_json": "{}", "text": 3})
        + text(7, " After.")
        + ending()
    )
    chunks = await collect(body, tools=[WEATHER])
    assert tool_call_deltas(chunks) == []
    assert "".join(d.get("content") or "" for d in deltas(chunks)) == "Before. After."
    assert finishes(chunks) == ["stop"]


def raw_event(name: str, payload: Mapping[str, Any]) -> bytes:
    return event(name, {"type": name, **payload})


@pytest.mark.parametrize(
    "bad",
    [
        # A fragment of a client call's arguments that is not text: the call cannot be rebuilt.
        raw_event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": 5}}),
        raw_event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": None}}),
        # Text that is not text.
        raw_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": ["x"]}}),
        # A delta for a block that never started, or that names no block at all.
        raw_event("content_block_delta", {"index": 9, "delta": {"type": "text_delta", "text": "lost"}}),
        raw_event("content_block_delta", {"delta": {"type": "text_delta", "text": "lost"}}),
        raw_event("content_block_stop", {"index": 9}),
    ],
    ids=["arguments-int", "arguments-null", "text-list", "unknown-index", "no-index", "stop-unknown-index"],
)
async def test_a_malformed_event_about_what_the_client_sees_is_an_invalid_upstream_response(bad: bytes) -> None:
    start = raw_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    call = {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}}
    body = (
        message_start() + start + raw_event("content_block_start", {"index": 1, "content_block": call}) + bad + ending()
    )
    chunks, error = await collect_until_error(body, tools=[WEATHER])
    assert error.code == "invalid_upstream_response" and error.action is Action.RETRY
    assert finishes(chunks) == []
    for call_delta in tool_call_deltas(chunks):
        assert isinstance(call_delta["function"]["arguments"], str)


async def test_a_delta_before_its_block_starts_is_an_invalid_upstream_response() -> None:
    early = raw_event("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}})
    _, error = await collect_until_error(
        message_start() + early + tool(0, "toolu_a", "get_weather", '{"city": "Oslo"}') + ending("tool_use"),
        tools=[WEATHER],
    )
    assert error.code == "invalid_upstream_response"


@pytest.mark.parametrize("call", [{"id": "toolu_a", "input": {}}, {"id": 7, "name": "get_weather", "input": {}}])
async def test_a_client_tool_block_without_a_string_id_and_name_is_an_invalid_upstream_response(
    call: dict[str, Any],
) -> None:
    start = raw_event("content_block_start", {"index": 0, "content_block": {"type": "tool_use", **call}})
    chunks, error = await collect_until_error(message_start() + start + ending("tool_use"), tools=[WEATHER])
    assert error.code == "invalid_upstream_response"
    assert tool_call_deltas(chunks) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "text", "text": 5},
        {"type": "thinking", "signature": "sig"},
        {"type": "tool_use", "id": "toolu_a", "input": {}},
        {"type": "tool_use", "id": None, "name": "get_weather", "input": {}},
    ],
)
def test_a_whole_answer_with_a_malformed_visible_block_is_an_invalid_upstream_response(bad: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError) as info:
        parse(message({"type": "text", "text": "ok"}, bad))
    assert info.value.code == "invalid_upstream_response" and info.value.action is Action.RETRY


def test_a_whole_answer_passes_over_malformed_blocks_the_client_never_sees() -> None:
    odd = {"type": "server_tool_use", "id": 7, "name": None, "input": "x"}
    data = parse(message({"type": "text", "text": "ok"}, odd, {"type": "container_upload", "file_id": 3}))
    assert data["choices"][0]["message"]["content"] == "ok" and "tool_calls" not in data["choices"][0]["message"]


async def test_through_the_gateway_a_searched_answer_streams_as_plain_text() -> None:
    """The client of the gateway sees the text and a `stop`, and nothing of the search."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=searched())

    document = {
        "providers": {"claude": {"type": "anthropic", "base_url": "https://anthropic.test", "api_key": KEY}},
        "models": {"claude": {"routes": [{"provider": "claude", "model": MODEL}]}},
        "retry": {"attempts": 1},
    }
    gateway = Gateway.from_config(document, environ={}, transport=httpx.MockTransport(answer))
    driver = await drive(gateway, json={"model": "claude", "messages": [USER], "stream": True})
    assert driver.status == 200 and driver.complete
    payloads = driver.payloads()
    assert payloads[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert all("error" not in c for c in chunks)
    delta_list = [c["choices"][0]["delta"] for c in chunks]
    assert not any("tool_calls" in d for d in delta_list)
    assert "".join(d.get("content") or "" for d in delta_list) == "I'll search for that.It is sunny in Paris."
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["stop"]


# -- errors ---------------------------------------------------------------------------------------


def classify(status: int, body: bytes | Mapping[str, Any], **headers: str) -> UpstreamError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return make_provider().error_from_response(httpx.Response(status, headers=headers), raw)


def anthropic_body(error_type: str, message: str = "scripted") -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_body"}


def test_recorded_400_stops_and_keeps_the_message() -> None:
    error = classify(400, recording("anthropic/error-400-invalid-request.json"), **{"x-should-retry": "false"})
    assert error.action is Action.STOP
    assert error.status_code == 400
    assert error.envelope()["error"]["type"] == "invalid_request_error"
    assert error.message.startswith("messages.0.content.1: unexpected `tool_use_id` found in `tool_result` blocks")
    assert error.upstream_request_id == "req_011CYHyk9NPsBYeGbC9LuDNK"


def test_recorded_404_falls_back() -> None:
    error = classify(404, recording("anthropic/error-404-not-found.json"), **{"request-id": "req_header"})
    assert (error.action, error.code, error.message) == (Action.FALLBACK, "model_not_found", "model: claude-sonet-4-5")
    assert error.upstream_request_id == "req_header"


def test_recorded_429_retries_after_the_hint() -> None:
    error = classify(
        429, recording("anthropic/error-429-rate-limit.json"), **{"x-should-retry": "true", "retry-after": "7"}
    )
    assert (error.action, error.code, error.retry_after) == (Action.RETRY, "rate_limit_exceeded", 7.0)
    assert "prompt bytes per hour" in error.message


@pytest.mark.parametrize(
    ("error_type", "status", "action", "code", "client_status"),
    [
        ("invalid_request_error", 400, Action.STOP, None, 400),
        ("authentication_error", 401, Action.FALLBACK, "invalid_api_key", 401),
        ("billing_error", 402, Action.FALLBACK, "insufficient_quota", 402),
        ("permission_error", 403, Action.FALLBACK, "permission_denied", 403),
        ("not_found_error", 404, Action.FALLBACK, "model_not_found", 404),
        ("request_too_large", 413, Action.STOP, "request_too_large", 413),
        ("rate_limit_error", 429, Action.RETRY, "rate_limit_exceeded", 502),
        ("api_error", 500, Action.RETRY, "upstream_error", 502),
        ("timeout_error", 504, Action.RETRY, "upstream_timeout", 502),
        ("overloaded_error", 529, Action.RETRY, "upstream_overloaded", 502),
    ],
)
def test_every_error_type(error_type: str, status: int, action: Action, code: str | None, client_status: int) -> None:
    error = classify(status, anthropic_body(error_type, "scripted " + error_type))
    assert (error.action, error.code, error.status_code) == (action, code, client_status)
    assert error.message == "scripted " + error_type
    assert error.upstream_status == status and error.upstream_request_id == "req_body"
    assert error.envelope()["error"]["type"] == ("invalid_request_error" if client_status < 500 else "upstream_error")


def test_overloaded_529_is_retried_and_never_shown_as_529() -> None:
    error = classify(529, anthropic_body("overloaded_error", "Overloaded"), **{"retry-after": "2"})
    assert error.action is Action.RETRY and error.retry_after == 2.0
    assert error.status_code == 502 and error.status_code != 529


def test_x_should_retry_overrides_the_status() -> None:
    assert classify(400, anthropic_body("invalid_request_error"), **{"x-should-retry": "true"}).action is Action.RETRY
    assert classify(529, anthropic_body("overloaded_error"), **{"x-should-retry": "false"}).action is Action.FALLBACK


def test_an_exhausted_credit_balance_falls_back() -> None:
    message = (
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or "
        "purchase credits."
    )
    error = classify(400, anthropic_body("invalid_request_error", message))
    assert (error.action, error.code) == (Action.FALLBACK, "insufficient_quota")


def test_a_body_that_is_not_anthropics_gets_a_generic_message() -> None:
    error = classify(413, b"<html><body>413 Request Entity Too Large</body></html>")
    assert (error.action, error.code, error.status_code) == (Action.STOP, "request_too_large", 413)
    assert error.message == "Provider 'claude' answered HTTP 413."


def test_transport_failures_are_classified() -> None:
    provider = make_provider()
    assert provider.error_from_exception(httpx.ConnectError("refused")).code == "upstream_unreachable"
    assert isinstance(provider.error_from_exception(httpx.ReadTimeout("slow")), UpstreamTimeoutError)
