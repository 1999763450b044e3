"""What echo answers: `n` choices, token limits, forced and scripted tool calls, JSON modes, stop.

Tested on the echo upstream directly (its wire shapes), with streams read back the way the
official SDK's stream helper assembles them.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import orjson
import pytest
from fakes import data_payloads, sdk_completion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routemw import ConfigError, EchoStep, EchoUpstream
from routemw.providers.echo.answer import tokens
from routemw.providers.echo.schema import conforms
from routemw.reply import Chunk

URL = "http://echo.routemw.invalid/v1/chat/completions"
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 1},
        "days": {"type": "integer", "minimum": 1},
        "units": {"enum": ["c", "f"]},
    },
    "required": ["city", "days", "units"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time"}},  # no parameters at all
]


def chat(content: Any = "one two three", **extra: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": content}], **extra}


async def post(upstream: EchoUpstream, body: dict[str, Any]) -> httpx.Response:
    response = await upstream.handle_async_request(httpx.Request("POST", URL, json=body))
    await response.aread()
    return response


async def complete(body: dict[str, Any], script: list[EchoStep] | None = None) -> dict[str, Any]:
    response = await post(EchoUpstream(script or []), body)
    assert response.status_code == 200, response.content
    data: dict[str, Any] = orjson.loads(response.content)
    return data


async def stream(body: dict[str, Any], script: list[EchoStep] | None = None) -> list[dict[str, Any]]:
    response = await post(EchoUpstream(script or []), {**body, "stream": True})
    assert response.status_code == 200, response.content
    payloads = data_payloads(response.content)
    assert payloads[-1] == b"[DONE]"
    return [orjson.loads(p) for p in payloads[:-1]]


async def refusal(body: dict[str, Any], script: list[EchoStep] | None = None) -> dict[str, Any]:
    response = await post(EchoUpstream(script or []), body)
    assert response.status_code == 400
    error: dict[str, Any] = orjson.loads(response.content)["error"]
    assert error["type"] == "invalid_request_error"
    return error


def assembled(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    return sdk_completion([Chunk(data=c) for c in chunks])


# -- tokens -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from([" ", "a", "\u00e9", "\t", "\n", "\u2028", "\xa0", "\x1c", "\U0001f600"])))
def test_tokens_are_the_whitespace_delimited_words_with_the_space_before_them(text: str) -> None:
    pieces = tokens(text)

    assert len(pieces) == len(text.split())  # what usage counts
    assert "".join(pieces) == text.rstrip()
    assert [piece.strip() for piece in pieces] == text.split()


# -- n ------------------------------------------------------------------------------------------


async def test_n_gives_that_many_choices_and_usage_counts_them_all() -> None:
    data = await complete(chat(n=3))

    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert {c["message"]["content"] for c in data["choices"]} == {"one two three"}
    assert all(c["finish_reason"] == "stop" for c in data["choices"])
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}


async def test_n_streams_choices_interleaved_by_index_one_per_chunk() -> None:
    chunks = await stream(chat(n=2, stream_options={"include_usage": True}))

    assert all(len(c["choices"]) == 1 for c in chunks[:-1])
    for index in (0, 1):
        mine = [c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == index]
        assert mine[0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
        assert [m["delta"].get("content") for m in mine[1:-1]] == ["one", " two", " three"]
        assert [m["finish_reason"] for m in mine] == [None] * 4 + ["stop"]
    # Interleaved: the second word of choice 0 comes before the last word of choice 1.
    order = [(c["choices"][0]["index"], c["choices"][0]["delta"].get("content")) for c in chunks[:-1]]
    assert order.index((0, " two")) < order.index((1, " three"))
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    final = assembled(chunks)
    assert [c["message"]["content"] for c in final["choices"]] == ["one two three"] * 2


@pytest.mark.parametrize("n", [0, 129, -1, "2", True, 1.5])
async def test_an_impossible_n_is_refused_naming_it(n: Any) -> None:
    assert (await refusal(chat(n=n)))["param"] == "n"


@pytest.mark.parametrize("n", [None, 1, 2.0])
async def test_n_null_or_integral_is_taken(n: Any) -> None:
    data = await complete(chat(n=n))

    assert len(data["choices"]) == (2 if n == 2.0 else 1)


# -- token limits -------------------------------------------------------------------------------


async def test_max_tokens_one_gives_one_token_and_finish_length() -> None:
    data = await complete(chat("the quick brown fox", max_tokens=1))

    (choice,) = data["choices"]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("the", "length")
    assert data["usage"]["completion_tokens"] == 1


async def test_max_tokens_in_a_stream_stops_early_with_length() -> None:
    chunks = await stream(chat("the quick brown fox", max_tokens=2, stream_options={"include_usage": True}))

    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert contents == ["", "the", " quick", None]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize(
    ("fields", "content", "finish"),
    [
        ({"max_tokens": 0}, "", "length"),
        ({"max_tokens": 3}, "one two three  ", "stop"),  # exactly enough: all of it, trailing space too
        ({"max_tokens": 9, "max_completion_tokens": 1}, "one", "length"),  # the newer spelling wins
        ({"max_completion_tokens": None, "max_tokens": 2}, "one two", "length"),
        ({"max_tokens": None}, "one two three  ", "stop"),
    ],
)
async def test_token_limits(fields: dict[str, Any], content: str, finish: str) -> None:
    data = await complete(chat("one two three  ", **fields))

    assert (data["choices"][0]["message"]["content"], data["choices"][0]["finish_reason"]) == (content, finish)
    assert data["usage"]["completion_tokens"] == len(content.split())


@pytest.mark.parametrize(("key", "value"), [("max_tokens", -1), ("max_completion_tokens", "5"), ("max_tokens", 1.5)])
async def test_an_impossible_limit_is_refused_naming_it(key: str, value: Any) -> None:
    assert (await refusal(chat(**{key: value})))["param"] == key


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from([" ", "a", "b", "\n"]), max_size=20), limit=st.integers(0, 8))
def test_truncation_and_usage_agree(text: str, limit: int) -> None:
    data = anyio.run(complete, chat(text, max_tokens=limit))
    chunks = anyio.run(stream, chat(text, max_tokens=limit))

    content = data["choices"][0]["message"]["content"]
    truncated = len(text.split()) > limit
    assert content == ("".join(tokens(text)[:limit]) if truncated else text)
    assert data["choices"][0]["finish_reason"] == ("length" if truncated else "stop")
    assert data["usage"]["completion_tokens"] == len(content.split()) == min(limit, len(text.split()))
    # (The SDK's stream helper refuses to assemble a `length` finish, so the deltas are joined here.)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == content


# -- stop ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop", "content"),
    [("two", "one "), (["x", "hree", "two"], "one "), (["zzz"], "one two three"), ("", "one two three")],
)
async def test_stop_cuts_before_the_first_stop_sequence(stop: Any, content: str) -> None:
    data = await complete(chat(stop=stop))

    assert (data["choices"][0]["message"]["content"], data["choices"][0]["finish_reason"]) == (content, "stop")


# -- tool calls ---------------------------------------------------------------------------------


def the_call(data: dict[str, Any], index: int = 0) -> dict[str, Any]:
    choice = data["choices"][index]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    result: dict[str, Any] = call["function"]
    return result


@pytest.mark.parametrize(
    ("tool_choice", "name"),
    [
        ("required", "get_weather"),
        ({"type": "function", "function": {"name": "get_time"}}, "get_time"),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_time"}}],
                },
            },
            "get_time",
        ),
    ],
)
async def test_a_forced_tool_choice_answers_with_a_call_whose_arguments_fit_the_schema(
    tool_choice: Any, name: str
) -> None:
    data = await complete(chat("what is the weather", tools=TOOLS, tool_choice=tool_choice))

    function = the_call(data)
    assert function["name"] == name
    arguments = json.loads(function["arguments"])
    assert conforms(arguments, WEATHER if name == "get_weather" else {})
    if name == "get_weather":
        assert arguments == {"city": "a", "days": 1, "units": "c"}
    assert data["usage"]["completion_tokens"] == len(function["arguments"].split())


@pytest.mark.parametrize(
    "tool_choice",
    [None, "auto", "none", {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}}],
)
async def test_an_unforced_tool_choice_answers_text(tool_choice: Any) -> None:
    body = chat(tools=TOOLS) if tool_choice is None else chat(tools=TOOLS, tool_choice=tool_choice)
    data = await complete(body)

    assert data["choices"][0]["message"]["content"] == "one two three"
    assert data["choices"][0]["finish_reason"] == "stop"


async def test_a_user_message_that_fits_the_tool_schema_becomes_the_arguments() -> None:
    message = '{"city": "Edinburgh", "days": 3, "units": "f"}'
    data = await complete(chat(message, tools=TOOLS, tool_choice="required"))

    assert the_call(data)["arguments"] == message


async def test_a_user_message_that_does_not_fit_is_not_used() -> None:
    data = await complete(chat('{"city": "Edinburgh"}', tools=TOOLS, tool_choice="required"))

    assert json.loads(the_call(data)["arguments"]) == {"city": "a", "days": 1, "units": "c"}


async def test_a_named_function_missing_from_tools_is_refused() -> None:
    choice = {"type": "function", "function": {"name": "nope"}}
    error = await refusal(chat(tools=TOOLS, tool_choice=choice))

    assert error["param"] == "tool_choice" and "nope" in error["message"]


@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "function": {"name": "get_time"}}, "auto", "none"]
)
@pytest.mark.parametrize("tools", [None, []])
async def test_a_tool_choice_without_tools_is_refused_as_openai_refuses_it(tool_choice: Any, tools: Any) -> None:
    body = chat(tool_choice=tool_choice) if tools is None else chat(tool_choice=tool_choice, tools=tools)
    error = await refusal(body)

    assert error["param"] == "tool_choice"
    assert error["message"] == (
        "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
    )


async def test_a_null_tool_choice_without_tools_answers_text() -> None:
    data = await complete(chat(tool_choice=None))

    assert data["choices"][0]["message"]["content"] == "one two three"


async def test_a_streamed_tool_call_sends_its_head_then_argument_fragments() -> None:
    chunks = await stream(chat(tools=TOOLS, tool_choice="required"))

    deltas = [c["choices"][0]["delta"] for c in chunks]
    head = deltas[0]
    assert head["role"] == "assistant" and head["content"] is None
    (call,) = head["tool_calls"]
    assert call["index"] == 0 and call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:-1]]
    assert all(d["tool_calls"][0].keys() == {"index", "function"} for d in deltas[1:-1])
    assert len(fragments) > 1  # really streamed, not one blob
    assert json.loads("".join(fragments)) == {"city": "a", "days": 1, "units": "c"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    final = assembled(chunks)["choices"][0]
    assert final["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert json.loads(final["message"]["tool_calls"][0]["function"]["arguments"])["units"] == "c"


async def test_tool_calls_of_n_choices_have_their_own_ids() -> None:
    data = await complete(chat(tools=TOOLS, tool_choice="required", n=2))
    chunks = await stream(chat(tools=TOOLS, tool_choice="required", n=2))

    ids = [c["message"]["tool_calls"][0]["id"] for c in data["choices"]]
    assert len(set(ids)) == 2
    final = assembled(chunks)
    assert len({c["message"]["tool_calls"][0]["id"] for c in final["choices"]}) == 2


async def test_max_tokens_cuts_tool_arguments_with_length() -> None:
    data = await complete(chat(tools=TOOLS, tool_choice="required", max_tokens=1))

    choice = data["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == '{"city":'


# -- scripted tool calls ------------------------------------------------------------------------


async def test_a_step_asks_for_a_tool_call_even_under_auto() -> None:
    script = [EchoStep(tool_call="get_time"), EchoStep(tool_call=True)]
    upstream = EchoUpstream(script)
    first = orjson.loads((await post(upstream, chat(tools=TOOLS, tool_choice="auto"))).content)
    second = orjson.loads((await post(upstream, chat(tools=TOOLS))).content)
    third = orjson.loads((await post(upstream, chat(tools=TOOLS))).content)

    assert (the_call(first)["name"], the_call(first)["arguments"]) == ("get_time", "{}")
    assert the_call(second)["name"] == "get_weather"
    assert third["choices"][0]["message"]["content"] == "one two three"


async def test_a_step_can_give_the_arguments_and_call_a_tool_the_request_lacks() -> None:
    step = EchoStep(tool_call="search", arguments={"q": "cats and dogs"})
    data = await complete(chat(tools=TOOLS), [step])

    assert the_call(data) == {"name": "search", "arguments": '{"q": "cats and dogs"}'}


async def test_a_step_asking_for_the_first_tool_of_none_is_refused() -> None:
    error = await refusal(chat(), [EchoStep(tool_call=True)])

    assert error["param"] == "tools"


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ({"tool_call": 3}, "s[0].tool_call: expected a tool name or true"),
        ({"tool_call": "f", "arguments": "x"}, "s[0].arguments: expected a mapping (the call's arguments)"),
        ({"arguments": {}}, "s[0].arguments: only goes with `tool_call`"),
    ],
)
def test_a_malformed_tool_step_is_a_config_error(step: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EchoStep.from_mapping(step, "s[0]")

    assert caught.value.problems == (problem,)


# -- JSON modes ---------------------------------------------------------------------------------

JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": WEATHER}}


@pytest.mark.parametrize(
    ("message", "response_format", "content"),
    [
        ("plain words", {"type": "json_object"}, "{}"),
        ('{"a": [1, 2]}', {"type": "json_object"}, '{"a": [1, 2]}'),
        ("[1, 2]", {"type": "json_object"}, "{}"),  # JSON, but not an object
        ("plain words", JSON_SCHEMA, '{"city": "a", "days": 1, "units": "c"}'),
        ('{"city": "Oslo", "days": 0, "units": "c"}', JSON_SCHEMA, '{"city": "a", "days": 1, "units": "c"}'),
        ('{"city": "Oslo", "days": 2, "units": "c"}', JSON_SCHEMA, '{"city": "Oslo", "days": 2, "units": "c"}'),
        ("plain words", {"type": "json_schema", "json_schema": {"name": "x"}}, "{}"),
        ("plain words", {"type": "text"}, "plain words"),
    ],
)
async def test_json_modes_answer_a_json_object_that_fits(message: str, response_format: Any, content: str) -> None:
    data = await complete(chat(message, response_format=response_format))
    chunks = await stream(chat(message, response_format=response_format))

    assert data["choices"][0]["message"]["content"] == content
    assert assembled(chunks)["choices"][0]["message"]["content"] == content


async def test_a_scripted_text_wins_over_a_json_mode() -> None:
    data = await complete(chat(response_format={"type": "json_object"}), [EchoStep(text="not json")])

    assert data["choices"][0]["message"]["content"] == "not json"


# -- usage --------------------------------------------------------------------------------------


async def test_prompt_tokens_count_every_message() -> None:
    body = {
        "model": "echo",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "one two"}]},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "three"},
        ],
    }
    data = await complete(body)

    assert data["usage"] == {"prompt_tokens": 6, "completion_tokens": 1, "total_tokens": 7}
