"""FakeAnthropic itself: it refuses what Anthropic refuses, and it speaks like the recordings.

A fake that accepted anything would let every conformance scenario pass for the wrong reason,
so each rule it enforces gets a request here that breaks exactly that rule. Requests are built
by hand, not by the adapter, so the fake is checked on its own.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from conformance.fake_anthropic import CREDIT_MESSAGE, FakeAnthropic
from conformance.model import Answer, CanonicalMessage, CanonicalToolCall, ErrorAnswer, ErrorKind, ToolCall
from fakes import recording
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from routemw.chat import parse_chat_request
from routemw.config import ProviderConfig
from routemw.errors import Action, UpstreamError
from routemw.http.sse import ServerSentEvent, SSEDecoder
from routemw.providers.anthropic import AnthropicProvider
from routemw.providers.anthropic.request import JSON_TOOL
from routemw.providers.base import Target, parse_stream

KEY = "sk-ant-fake-0001"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
VALID: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}
TOOL_TURNS: list[dict[str, Any]] = [
    {"role": "user", "content": "weather?"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]},
]
TOOLS = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]


def send(
    fake: FakeAnthropic, body: Any, headers: dict[str, str] | None = None, path: str = "/v1/messages"
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    request = httpx.Request("POST", "https://anthropic.test" + path, headers=headers or HEADERS, content=content)
    return fake(request)


def with_messages(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**VALID, "messages": list(messages), **fields}


Edit = Callable[[dict[str, Any]], dict[str, Any]]


def changed(**fields: Any) -> Edit:
    return lambda body: {**body, **fields}


def without(key: str) -> Edit:
    return lambda body: {k: v for k, v in body.items() if k != key}


def turn_edit(index: int, content: Any) -> Edit:
    def edit(body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy({**body, "messages": TOOL_TURNS})
        body["messages"][index]["content"] = content
        return body

    return edit


def test_a_valid_request_gets_the_default_answer() -> None:
    fake = FakeAnthropic(KEY)
    response = send(fake, VALID)
    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_")
    message = response.json()
    assert message["type"] == "message" and message["content"] == [{"type": "text", "text": "ok"}]
    assert message["stop_reason"] == "end_turn" and message["model"] == "claude-sonnet-4-5"
    assert fake.requests == [VALID] and fake.rejections == []


def test_a_valid_tool_conversation_is_accepted() -> None:
    assert send(FakeAnthropic(KEY), with_messages(*TOOL_TURNS, tools=TOOLS)).status_code == 200


REFUSALS: list[tuple[str, Edit, int, str, str]] = [
    ("max_tokens missing", without("max_tokens"), 400, "invalid_request_error", "max_tokens: Field required"),
    ("temperature above 1", changed(temperature=1.5), 400, "invalid_request_error", "less than or equal to 1"),
    ("top_p below 0", changed(top_p=-0.1), 400, "invalid_request_error", "greater than or equal to 0"),
    ("temperature with top_p", changed(temperature=0.5, top_p=0.5), 400, "invalid_request_error", "cannot both"),
    ("unknown field", changed(seed=1), 400, "invalid_request_error", "seed: Extra inputs are not permitted"),
    ("openai stop field", changed(stop=["x"]), 400, "invalid_request_error", "stop: Extra inputs"),
    (
        "system role in messages",
        changed(messages=[{"role": "system", "content": "s"}, *VALID["messages"]]),
        400,
        "invalid_request_error",
        "messages.0.role: Input should be 'user' or 'assistant'",
    ),
    (
        "first message not user",
        changed(messages=[{"role": "assistant", "content": "a"}, *VALID["messages"]]),
        400,
        "invalid_request_error",
        'first message must use the "user" role',
    ),
    (
        "same role twice",
        changed(messages=[*VALID["messages"], {"role": "user", "content": "again"}]),
        400,
        "invalid_request_error",
        'found multiple "user" roles in a row',
    ),
    (
        "empty string content",
        changed(messages=[{"role": "user", "content": ""}]),
        400,
        "invalid_request_error",
        "all messages must have non-empty content",
    ),
    (
        "empty text block",
        changed(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
        400,
        "invalid_request_error",
        "text content blocks must be non-empty",
    ),
    (
        "empty text beside a tool call",
        turn_edit(1, [{"type": "text", "text": ""}, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]),
        400,
        "invalid_request_error",
        "messages.1.content.0: text content blocks must be non-empty",
    ),
    (
        "tool_result for no tool_use",
        turn_edit(2, [{"type": "tool_result", "tool_use_id": "toolu_other", "content": "x"}]),
        400,
        "invalid_request_error",
        "unexpected `tool_use_id` found in `tool_result` blocks: toolu_other",
    ),
    (
        "tool_use without its result",
        turn_edit(2, "no results here"),
        400,
        "invalid_request_error",
        "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
    ),
    (
        "tool_result after text",
        turn_edit(2, [{"type": "text", "text": "note"}, {"type": "tool_result", "tool_use_id": "toolu_1"}]),
        400,
        "invalid_request_error",
        "tool_result blocks must come before any other content",
    ),
    (
        "tool id outside the charset",
        turn_edit(1, [{"type": "tool_use", "id": "functions.f:0", "name": "f", "input": {}}]),
        400,
        "invalid_request_error",
        "String should match pattern '^[a-zA-Z0-9_-]+$'",
    ),
    (
        "tool_result id outside the charset",
        turn_edit(2, [{"type": "tool_result", "tool_use_id": "call 1", "content": "x"}]),
        400,
        "invalid_request_error",
        "tool_use_id: String should match pattern",
    ),
    (
        "whitespace stop sequence",
        changed(stop_sequences=["END", " "]),
        400,
        "invalid_request_error",
        "stop_sequences",
    ),
    (
        "prefill with trailing whitespace",
        changed(messages=[*VALID["messages"], {"role": "assistant", "content": "The answer is "}]),
        400,
        "invalid_request_error",
        "final assistant content cannot end with trailing whitespace",
    ),
    (
        "tool choice naming an unknown tool",
        changed(tools=TOOLS, tool_choice={"type": "tool", "name": "nope"}),
        400,
        "invalid_request_error",
        "tool_choice.name",
    ),
    (
        "disable_parallel_tool_use with none",
        changed(tools=TOOLS, tool_choice={"type": "none", "disable_parallel_tool_use": True}),
        400,
        "invalid_request_error",
        "tool_choice.none.disable_parallel_tool_use",
    ),
    (
        "tool schema that is not an object",
        changed(tools=[{"name": "f", "input_schema": {"type": "array"}}]),
        400,
        "invalid_request_error",
        "input_schema.type",
    ),
    (
        "image media type",
        changed(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AA"}}
                    ],
                }
            ]
        ),
        400,
        "invalid_request_error",
        "media_type",
    ),
    ("metadata beyond user_id", changed(metadata={"email": "a@b.c"}), 400, "invalid_request_error", "metadata"),
    ("unknown model", changed(model="gpt-4o"), 404, "not_found_error", "model: gpt-4o"),
]


@pytest.mark.parametrize(
    ("edit", "status", "error_type", "fragment"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_invalid_requests_are_refused_with_anthropics_error_shape(
    edit: Edit, status: int, error_type: str, fragment: str
) -> None:
    fake = FakeAnthropic(KEY).script(Answer(text="must not be used"))
    response = send(fake, edit(dict(VALID)))
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert fragment in body["error"]["message"]
    assert body["request_id"] == response.headers["request-id"]
    assert len(fake.answers) == 1, "a refused request must not consume a scripted answer"


@pytest.mark.parametrize(
    ("headers", "status", "error_type", "message"),
    [
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error", "x-api-key header is required"),
        (
            {"x-api-key": "sk-ant-wrong", "anthropic-version": "2023-06-01"},
            401,
            "authentication_error",
            "invalid x-api-key",
        ),
        ({"x-api-key": KEY}, 400, "invalid_request_error", "anthropic-version: header is required"),
        (
            {"authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"},
            401,
            "authentication_error",
            "x-api-key header is required",
        ),
    ],
    ids=["no key", "wrong key", "no version", "bearer instead of x-api-key"],
)
def test_credentials_and_version_are_checked(
    headers: dict[str, str], status: int, error_type: str, message: str
) -> None:
    response = send(FakeAnthropic(KEY), VALID, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == {"type": error_type, "message": message}


def test_other_paths_and_non_json_bodies_are_refused() -> None:
    fake = FakeAnthropic(KEY)
    assert send(fake, VALID, path="/v1/chat/completions").status_code == 404
    assert send(fake, b"{not json").status_code == 400


@pytest.mark.parametrize(
    ("kind", "status", "error_type", "should_retry"),
    [
        ("invalid_request", 400, "invalid_request_error", "false"),
        ("auth", 401, "authentication_error", "false"),
        ("not_found", 404, "not_found_error", "false"),
        ("rate_limit", 429, "rate_limit_error", "true"),
        ("quota", 400, "invalid_request_error", "false"),
        ("overloaded", 529, "overloaded_error", "true"),
        ("server", 500, "api_error", "true"),
    ],
)
def test_error_answers_use_anthropics_statuses(
    kind: ErrorKind, status: int, error_type: str, should_retry: str
) -> None:
    fake = FakeAnthropic(KEY, retry_after="3").script(Answer(error=ErrorAnswer(kind, "scripted")))
    response = send(fake, VALID)
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert response.headers["x-should-retry"] == should_retry
    assert response.headers.get("retry-after") == ("3" if status in (429, 529) else None)
    expected = {"quota": CREDIT_MESSAGE, "not_found": "model: claude-sonnet-4-5"}.get(kind, "scripted")
    assert response.json()["error"]["message"] == expected


def test_a_json_answer_carries_the_scripted_content_and_usage() -> None:
    answer = Answer(
        text="Sure.", tool_calls=(ToolCall("get_weather", {"city": "Oslo"}),), prompt_tokens=5, completion_tokens=3
    )
    message = send(FakeAnthropic(KEY).script(answer), with_messages(VALID["messages"][0], tools=TOOLS)).json()
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
    assert message["content"][1]["input"] == {"city": "Oslo"} and message["content"][1]["id"].startswith("toolu_")
    assert message["stop_reason"] == "tool_use"
    assert (message["usage"]["input_tokens"], message["usage"]["output_tokens"]) == (5, 3)


@pytest.mark.parametrize(("finish", "stop_reason"), [("length", "max_tokens"), ("content_filter", "refusal")])
def test_finishes_map_to_stop_reasons(finish: Any, stop_reason: str) -> None:
    message = send(FakeAnthropic(KEY).script(Answer(text="x", finish=finish)), VALID).json()
    assert message["stop_reason"] == stop_reason


def test_a_forced_json_tool_answers_with_a_call_of_that_tool() -> None:
    tool = {"name": JSON_TOOL, "input_schema": {"type": "object"}}
    body = with_messages(VALID["messages"][0], tools=[tool], tool_choice={"type": "tool", "name": JSON_TOOL})
    message = send(FakeAnthropic(KEY).script(Answer(text='{"a": 1}')), body).json()
    assert message["content"] == [
        {"type": "tool_use", "id": message["content"][0]["id"], "name": JSON_TOOL, "input": {"a": 1}}
    ]
    assert message["stop_reason"] == "tool_use"


# -- the event stream ---------------------------------------------------------------------------


def decode(body: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return decoder.feed(body) + decoder.close()


async def stream_body(response: httpx.Response) -> bytes:
    return b"".join([piece async for piece in response.aiter_bytes()])


def shape(events: list[ServerSentEvent]) -> list[tuple[str, str]]:
    """Each event's name and kind, with consecutive deltas of one kind collapsed to one entry."""
    out: list[tuple[str, str]] = []
    for event in events:
        data = orjson.loads(event.data)
        kind = (data.get("delta") or {}).get("type") or (data.get("content_block") or {}).get("type") or ""
        entry = (event.event, kind if event.event.startswith("content_block") else "")
        if not out or out[-1] != entry or event.event != "content_block_delta":
            out.append(entry)
    return out


async def test_a_text_stream_is_framed_like_the_recording() -> None:
    fake = FakeAnthropic(KEY).script(Answer(text="The weather is sunny!", fragment=4))
    response = send(fake, {**VALID, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    raw = await stream_body(response)
    events = decode(raw)
    recorded = decode(recording("anthropic/stream-text.sse"))
    assert shape(events) == shape(recorded)
    assert all(orjson.loads(e.data)["type"] == e.event for e in events)
    assert raw.count(b"\n\n") == len(events) and raw.startswith(b"event: message_start\ndata: {")
    texts = [orjson.loads(e.data)["delta"]["text"] for e in events if e.event == "content_block_delta"]
    assert texts == ["The ", "weat", "her ", "is s", "unny", "!"]
    assert b'data: {"type": "ping"}\n' in raw
    assert len(fake.streams) == 1 and len(fake.streams[0].parts) > 1  # delivered in pieces


async def test_a_tool_stream_is_framed_like_the_recording() -> None:
    answer = Answer(tool_calls=(ToolCall("get_weather", {"location": "San Francisco, CA", "units": "f"}),), fragment=5)
    events = decode(
        await stream_body(send(FakeAnthropic(KEY).script(answer), {**VALID, "stream": True, "tools": TOOLS}))
    )
    assert shape(events) == shape(decode(recording("anthropic/stream-tool-use.sse")))
    fragments = [orjson.loads(e.data)["delta"]["partial_json"] for e in events if e.event == "content_block_delta"]
    assert fragments[0] == ""  # as recorded: the first input_json_delta is empty
    assert "".join(fragments) == '{"location": "San Francisco, CA", "units": "f"}'
    assert all(len(f) <= 5 for f in fragments)
    final = orjson.loads(events[-2].data)
    assert final["delta"]["stop_reason"] == "tool_use" and events[-1].event == "message_stop"


async def test_a_tool_without_arguments_streams_only_an_empty_fragment() -> None:
    answer = Answer(tool_calls=(ToolCall("get_weather", {}),))
    events = decode(
        await stream_body(send(FakeAnthropic(KEY).script(answer), {**VALID, "stream": True, "tools": TOOLS}))
    )
    fragments = [orjson.loads(e.data)["delta"]["partial_json"] for e in events if e.event == "content_block_delta"]
    assert fragments == [""]


async def test_an_error_answer_with_text_fails_inside_the_stream() -> None:
    answer = Answer(text="partial", error=ErrorAnswer("overloaded", "Overloaded"))
    response = send(FakeAnthropic(KEY).script(answer), {**VALID, "stream": True})
    assert response.status_code == 200
    events = decode(await stream_body(response))
    assert [e.event for e in events][-1] == "error"
    assert "message_stop" not in [e.event for e in events]
    assert orjson.loads(events[-1].data)["error"] == {"type": "overloaded_error", "message": "Overloaded"}


# -- through the adapter --------------------------------------------------------------------------


def adapter_setup(body: dict[str, Any]) -> tuple[AnthropicProvider, Target, Any]:
    provider = AnthropicProvider(
        ProviderConfig(name="claude", type="anthropic", base_url="https://anthropic.test", api_key=KEY)
    )
    target = Target(provider=provider, model="claude-sonnet-4-5", public_model="claude")
    return provider, target, parse_chat_request(orjson.dumps({"model": "claude", **body}))


async def test_the_adapter_reassembles_a_fragmented_stream_from_the_fake() -> None:
    calls = (ToolCall("get_weather", {"city": "Paris", "note": 'quote " ü'}), ToolCall("get_weather", {}))
    fake = FakeAnthropic(KEY).script(Answer(text="Checking.", tool_calls=calls, finish="tool_calls", fragment=2))
    provider, target, request = adapter_setup({"messages": [{"role": "user", "content": "hi"}], "stream": True})
    response = fake(provider.build_request(request, target))
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    async for chunk in parse_stream(provider, response, request, target):
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk.data))
    message = state.get_final_completion().choices[0].message
    assert message.content == "Checking."
    assert [(c.function.name, orjson.loads(c.function.arguments)) for c in message.tool_calls or []] == [
        (c.name, c.arguments) for c in calls
    ]


async def test_the_adapter_raises_a_retryable_error_for_the_fakes_mid_stream_failure() -> None:
    fake = FakeAnthropic(KEY).script(Answer(text="partial", error=ErrorAnswer("overloaded")))
    provider, target, request = adapter_setup({"messages": [{"role": "user", "content": "hi"}], "stream": True})
    response = fake(provider.build_request(request, target))
    with pytest.raises(UpstreamError) as info:
        async for _ in parse_stream(provider, response, request, target):
            pass
    assert info.value.action is Action.RETRY and info.value.status_code == 502


def test_canonical_reads_the_native_request_back_in_openai_terms() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    body = {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": png}}],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "functions.f:0", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "functions.f:0", "content": "done"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "parallel_tool_calls": False,
        "temperature": 0,
        "max_tokens": 77,
        "stop": "END",
        "user": "u-1",
    }
    fake = FakeAnthropic(KEY)
    provider, target, request = adapter_setup(body)
    assert fake(provider.build_request(request, target)).status_code == 200
    asked = fake.canonical()
    native_id = fake.requests[-1]["messages"][1]["content"][0]["id"]
    assert native_id != "functions.f:0"
    assert asked.system == "Be terse."
    assert asked.messages == (
        CanonicalMessage(role="user", text="Look", images=1),
        CanonicalMessage(role="assistant", tool_calls=(CanonicalToolCall(native_id, "f", {"x": 1}),)),
        CanonicalMessage(role="tool", tool_call_id=native_id, tool_result="done"),
    )
    assert (asked.tools, asked.tool_choice, asked.parallel_tool_calls) == (("f",), ("function", "f"), False)
    assert (asked.temperature, asked.top_p, asked.max_tokens, asked.stop, asked.user) == (0, None, 77, ("END",), "u-1")
    assert asked.response_format is None and asked.stream is False


@pytest.mark.parametrize("kind", ["json_object", "json_schema"])
def test_canonical_recognises_the_json_modes(kind: str) -> None:
    response_format: dict[str, Any] = {"type": kind}
    if kind == "json_schema":
        response_format["json_schema"] = {"name": "r", "schema": {"type": "object", "properties": {"a": {}}}}
    fake = FakeAnthropic(KEY)
    provider, target, request = adapter_setup(
        {"messages": [{"role": "user", "content": "hi"}], "response_format": response_format}
    )
    fake(provider.build_request(request, target))
    asked = fake.canonical()
    assert (asked.response_format, asked.tools, asked.tool_choice) == (kind, (), None)
