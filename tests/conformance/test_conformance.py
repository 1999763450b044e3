"""One table of scenarios that every adapter runs through the gateway.

Each provider brings a fake (in this folder) that validates requests as the real service does,
answers in its exact wire format, and reads its native request back into OpenAI terms
(`CanonicalRequest`). The scenarios below know no wire format: they send an OpenAI request
with the official `openai` SDK, script a provider-neutral `Answer`, and check what the SDK got
back (streams through the SDK's own stream helper, which reassembles tool-call arguments by
index) and what the provider was asked. Adding an adapter means adding its fake to `FAKES`.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import httpx2
import openai
import orjson
import pytest
from conformance.fake_openai import FakeOpenAI
from conformance.model import Answer, CanonicalRequest, ErrorAnswer, ToolCall

from routemw import Gateway


class Fake(Protocol):
    provider_config: dict[str, Any]
    requests: list[dict[str, Any]]

    def __call__(self, request: httpx.Request) -> httpx.Response: ...
    def script(self, *answers: Answer) -> None: ...
    def canonical(self, index: int = -1) -> CanonicalRequest: ...


def _optional(module: str, name: str) -> Callable[[str], Fake] | None:
    try:
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
    except ImportError:
        return None


# provider type -> (fake factory, the upstream model name its route uses)
FAKES: dict[str, tuple[Callable[[str], Fake], str]] = {
    "openai": (lambda key: FakeOpenAI(key), "gpt-4o"),
    "azure": (lambda key: FakeOpenAI(key, azure=True), "gpt-4o"),
}
for _type, _module, _class, _model in (
    ("anthropic", "conformance.fake_anthropic", "FakeAnthropic", "claude-sonnet-4-5"),
    ("gemini", "conformance.fake_gemini", "FakeGemini", "gemini-2.5-flash"),
):
    _factory = _optional(_module, _class)
    if _factory is not None:
        FAKES[_type] = (_factory, _model)

KEY = "sk-conformance-provider-key-0001"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}},
}
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


@dataclass
class Harness:
    provider: str
    fake: Fake
    model: str
    gateway: Gateway
    client: openai.AsyncOpenAI
    echo_requests: list[dict[str, Any]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    async def create(self, stream: bool, **request: Any) -> tuple[dict[str, Any], httpx2.Headers]:
        """One call through the SDK; the completion as a dict (a stream is accumulated by the SDK)."""
        request = {"model": "m", **request}
        if not stream:
            raw = await self.client.chat.completions.with_raw_response.create(**request)
            return raw.parse().model_dump(), raw.headers
        async with self.client.chat.completions.stream(**request) as events:
            completion = await events.get_final_completion()
        return completion.model_dump(), httpx2.Headers()


@pytest.fixture(params=sorted(FAKES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    factory, model = FAKES[request.param]
    fake = factory(KEY)
    config = {
        "providers": {"up": fake.provider_config},
        "models": {
            "m": {"routes": [{"provider": "up", "model": model}], "fallbacks": ["backup"]},
            "backup": {"routes": [{"provider": "echo", "model": "echo"}]},
        },
    }
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)  # retries are recorded, never waited for

    gateway = Gateway.from_config(config, transport=httpx.MockTransport(fake), environ={}, sleep=sleep)
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=gateway), base_url="http://gateway")
    client = openai.AsyncOpenAI(base_url="http://gateway/v1", api_key="client-key", http_client=http, max_retries=0)
    echo = gateway.providers["echo"]
    try:
        yield Harness(request.param, fake, model, gateway, client, echo.upstream.requests, sleeps)
    finally:
        await client.close()


def _message(completion: dict[str, Any]) -> dict[str, Any]:
    assert len(completion["choices"]) == 1
    message: dict[str, Any] = completion["choices"][0]["message"]
    return message


def _calls(completion: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    calls = _message(completion).get("tool_calls") or []
    assert len({c["id"] for c in calls}) == len(calls), "tool call ids must be unique"
    return [(c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in calls]


STREAM = pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
USER = {"role": "user", "content": "What is the weather in Paris?"}


@STREAM
async def test_plain_text(harness: Harness, stream: bool) -> None:
    harness.fake.script(Answer(text="Hello there, friend! It is sunny."))
    completion, _ = await harness.create(stream, messages=[{"role": "user", "content": "Say hi"}])
    assert _message(completion)["content"] == "Hello there, friend! It is sunny."
    assert completion["choices"][0]["finish_reason"] == "stop"
    asked = harness.fake.canonical()
    assert asked.stream is stream
    assert asked.model == harness.model
    assert [(m.role, m.text) for m in asked.messages] == [("user", "Say hi")]


@STREAM
async def test_system_and_multi_turn(harness: Harness, stream: bool) -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
    ]
    harness.fake.script(Answer(text="Sunny."))
    completion, _ = await harness.create(stream, messages=messages)
    assert _message(completion)["content"] == "Sunny."
    asked = harness.fake.canonical()
    assert asked.system == "Be terse."
    assert [(m.role, m.text) for m in asked.messages] == [("user", "Hi"), ("assistant", "Hello."), ("user", "Weather?")]


@STREAM
async def test_single_tool_call(harness: Harness, stream: bool) -> None:
    harness.fake.script(Answer(tool_calls=(ToolCall("get_weather", {"city": "Paris"}),), finish="tool_calls"))
    completion, _ = await harness.create(stream, messages=[USER], tools=[WEATHER])
    assert _calls(completion) == [("get_weather", {"city": "Paris"})]
    assert completion["choices"][0]["finish_reason"] == "tool_calls"
    assert harness.fake.canonical().tools == ("get_weather",)


@STREAM
async def test_parallel_tool_calls_with_fragmented_arguments(harness: Harness, stream: bool) -> None:
    calls = (
        ToolCall("get_weather", {"city": "Paris", "units": "metric", "note": 'quote " and ünïcode'}),
        ToolCall("get_time", {"zone": "Europe/Paris"}),
        ToolCall("get_weather", {}),
    )
    harness.fake.script(Answer(text="", tool_calls=calls, finish="tool_calls", fragment=2))
    completion, _ = await harness.create(stream, messages=[USER], tools=[WEATHER, TIME])
    assert _calls(completion) == [(c.name, c.arguments) for c in calls]
    assert completion["choices"][0]["finish_reason"] == "tool_calls"


@STREAM
async def test_tool_results_fed_back(harness: Harness, stream: bool) -> None:
    messages = [
        USER,
        {
            "role": "assistant",
            "content": "",  # empty content beside tool calls is absent, never an empty block
            "tool_calls": [
                {
                    "id": "call_a1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {"id": "functions.get_time:1", "type": "function", "function": {"name": "get_time", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_a1", "content": '{"temp": "18C"}'},
        {"role": "tool", "tool_call_id": "functions.get_time:1", "content": "14:05"},
    ]
    harness.fake.script(Answer(text="18C at 14:05."))
    completion, _ = await harness.create(stream, messages=messages, tools=[WEATHER, TIME])
    assert _message(completion)["content"] == "18C at 14:05."
    asked = harness.fake.canonical()
    assistant = next(m for m in asked.messages if m.role == "assistant")
    assert [(c.name, c.arguments) for c in assistant.tool_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    results = [m for m in asked.messages if m.role == "tool"]
    assert len(results) == 2
    assert [m.tool_call_id for m in results] == [c.id for c in assistant.tool_calls]
    assert "18C" in (results[0].tool_result or "") and "14:05" in (results[1].tool_result or "")


@pytest.mark.parametrize(
    ("choice", "canonical"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "function": {"name": "get_weather"}}, ("function", "get_weather")),
    ],
    ids=["auto", "none", "required", "named"],
)
async def test_every_tool_choice_form(harness: Harness, choice: Any, canonical: Any) -> None:
    harness.fake.script(Answer(text="ok"))
    await harness.create(False, messages=[USER], tools=[WEATHER, TIME], tool_choice=choice)
    assert harness.fake.canonical().tool_choice == canonical


@pytest.mark.parametrize("kind", ["json_object", "json_schema"])
async def test_json_modes(harness: Harness, kind: str) -> None:
    response_format: dict[str, Any] = {"type": kind}
    if kind == "json_schema":
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
        response_format["json_schema"] = {"name": "result", "schema": schema}
    harness.fake.script(Answer(text='{"a": 1}'))
    messages = [{"role": "user", "content": "Reply in JSON with a=1"}]
    completion, _ = await harness.create(False, messages=messages, response_format=response_format)
    assert orjson.loads(_message(completion)["content"]) == {"a": 1}
    assert harness.fake.canonical().response_format == kind


@STREAM
async def test_image_input(harness: Harness, stream: bool) -> None:
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG}}]
    harness.fake.script(Answer(text="A pixel."))
    completion, _ = await harness.create(stream, messages=[{"role": "user", "content": content}])
    assert _message(completion)["content"] == "A pixel."
    asked = harness.fake.canonical().messages[0]
    assert (asked.text, asked.images) == ("What is this?", 1)


@pytest.mark.parametrize(("stop", "canonical"), [("END", ("END",)), (["END", "STOP"], ("END", "STOP"))])
async def test_stop_sequences(harness: Harness, stop: Any, canonical: tuple[str, ...]) -> None:
    harness.fake.script(Answer(text="ok"))
    await harness.create(False, messages=[USER], stop=stop)
    assert harness.fake.canonical().stop == canonical


async def test_explicit_zero_and_false_values_arrive_or_are_refused_by_name(harness: Harness) -> None:
    harness.fake.script(Answer(text="ok"))
    target = harness.gateway.catalog.get("m")
    assert target is not None
    profile = target.targets[0].profile
    request: dict[str, Any] = {"messages": [USER], "temperature": 0, "max_tokens": 0 + 50, "tools": [WEATHER]}
    request["parallel_tool_calls"] = False
    if profile.supports("parallel_tool_calls") is False:
        # This target cannot honour the field, so it is skipped before any call: the fallback
        # model (echo, which knows no limits) answers instead, and the provider never sees it.
        raw = await harness.client.chat.completions.with_raw_response.create(model="m", **request)
        assert raw.headers["x-routemw-provider"] == "echo"
        assert harness.fake.requests == []
        del request["parallel_tool_calls"]
    await harness.create(False, **request)
    asked = harness.fake.canonical()
    assert asked.temperature == 0 and asked.temperature is not None
    assert asked.max_tokens == 50
    if "parallel_tool_calls" in request:
        assert asked.parallel_tool_calls is False


@pytest.mark.parametrize("include_usage", [False, True])
async def test_stream_usage_only_when_asked(harness: Harness, include_usage: bool) -> None:
    harness.fake.script(Answer(text="Counting tokens.", prompt_tokens=21, completion_tokens=4))
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    completion, _ = await harness.create(True, messages=[USER], **options)
    assert _message(completion)["content"] == "Counting tokens."
    if include_usage:
        usage = completion["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (21, 4, 25)
    else:
        assert completion["usage"] is None


async def test_usage_on_plain_completions(harness: Harness) -> None:
    harness.fake.script(Answer(text="ok", prompt_tokens=30, completion_tokens=2))
    completion, _ = await harness.create(False, messages=[USER])
    assert (completion["usage"]["prompt_tokens"], completion["usage"]["completion_tokens"]) == (30, 2)


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        ("invalid_request", "stop"),
        ("auth", "fallback"),
        ("not_found", "fallback"),
        ("quota", "fallback"),
        ("rate_limit", "retry"),
        ("overloaded", "retry"),
        ("server", "retry"),
    ],
)
@STREAM
async def test_each_error_class(harness: Harness, kind: str, outcome: str, stream: bool) -> None:
    """Each adapter classifies each kind of failure the same way: retry, fall back, or stop."""
    harness.fake.script(Answer(error=ErrorAnswer(kind, "scripted " + kind)))  # type: ignore[arg-type]
    if outcome == "stop":
        with pytest.raises(openai.BadRequestError) as caught:
            await harness.create(stream, messages=[USER])
        assert "scripted invalid_request" in str(caught.value)
        assert len(harness.fake.requests) == 1 and harness.echo_requests == []
        return
    raw = await harness.client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "try again"}], stream=stream
    )
    if stream:
        await raw.parse().close()
    assert raw.headers["x-routemw-attempts"] == "2"
    if outcome == "retry":  # the same target, once more, after the scripted failure
        assert raw.headers["x-routemw-provider"] == "up"
        assert len(harness.fake.requests) == 2 and harness.echo_requests == []
        assert len(harness.sleeps) == 1
    else:  # the next candidate, without retrying a target that cannot serve
        assert raw.headers["x-routemw-provider"] == "echo"
        assert raw.headers["x-routemw-fallbacks"] == "1"
        assert len(harness.fake.requests) == 1 and len(harness.echo_requests) == 1
        assert harness.sleeps == []
