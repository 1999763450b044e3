"""The conformance table for the Anthropic Messages door (`/v1/messages`).

The same scenarios as `test_conformance.py`, and the same validating fakes, driven by the
official `anthropic` SDK instead of `openai`: text, system, multi-turn, tools (single,
parallel with fragmented arguments, results fed back), every tool_choice form, images, stop
sequences, usage, and every upstream error class, each as JSON and as a stream reassembled by
the SDK's own `messages.stream()` helper. Every route type runs them: an Anthropic route (the
passthrough, where the fake gets the client's own request), and OpenAI, Azure and Gemini routes
(translated both ways). What a fake was asked is read back into OpenAI terms by the fake
itself (`canonical`), so one expectation covers every route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
from conformance.model import Answer, ErrorAnswer, ToolCall
from conformance.test_conformance import FAKES, KEY, PNG, Fake

from routemw import Gateway

PNG_DATA = PNG.split(",", 1)[1]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}}}}
USER = {"role": "user", "content": "What is the weather in Paris?"}
STREAM = pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])


@dataclass
class Door:
    provider: str
    fake: Fake
    model: str
    gateway: Gateway
    client: anthropic.AsyncAnthropic
    echo_requests: list[dict[str, Any]] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    async def create(self, stream: bool, **request: Any) -> dict[str, Any]:
        """One call through the SDK; the message as a dict (a stream is reassembled by the SDK)."""
        request = {"model": "m", "max_tokens": 1024, **request}
        if not stream:
            message = await self.client.messages.create(**request)
            return message.model_dump()
        async with self.client.messages.stream(**request) as events:
            final = await events.get_final_message()
        return final.model_dump()


@pytest.fixture(params=sorted(FAKES))
async def door(request: pytest.FixtureRequest) -> AsyncIterator[Door]:
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
    client = anthropic.AsyncAnthropic(base_url="http://gateway", api_key="client-key", http_client=http, max_retries=0)
    echo = gateway.providers["echo"]
    try:
        yield Door(request.param, fake, model, gateway, client, echo.upstream.requests, sleeps)
    finally:
        await client.close()


def _texts(message: dict[str, Any]) -> str:
    return "".join(block["text"] for block in message["content"] if block["type"] == "text")


def _tool_uses(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    uses = [block for block in message["content"] if block["type"] == "tool_use"]
    assert len({u["id"] for u in uses}) == len(uses), "tool_use ids must be unique"
    assert all(u["id"].startswith("toolu_") for u in uses), uses
    return [(u["name"], u["input"]) for u in uses]


@STREAM
async def test_plain_text(door: Door, stream: bool) -> None:
    door.fake.script(Answer(text="Hello there, friend! It is sunny."))
    message = await door.create(stream, messages=[{"role": "user", "content": "Say hi"}])
    assert _texts(message) == "Hello there, friend! It is sunny."
    assert message["stop_reason"] == "end_turn"
    assert message["model"] == "m"  # the public id, whichever route answered
    assert message["role"] == "assistant" and message["id"].startswith("msg_")
    asked = door.fake.canonical()
    assert asked.stream is stream
    assert asked.model == door.model
    assert [(m.role, m.text) for m in asked.messages] == [("user", "Say hi")]


@STREAM
async def test_system_and_multi_turn(door: Door, stream: bool) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
    ]
    door.fake.script(Answer(text="Sunny."))
    message = await door.create(stream, system="Be terse.", messages=messages)
    assert _texts(message) == "Sunny."
    asked = door.fake.canonical()
    assert asked.system == "Be terse."
    assert [(m.role, m.text) for m in asked.messages] == [("user", "Hi"), ("assistant", "Hello."), ("user", "Weather?")]


@STREAM
async def test_single_tool_use(door: Door, stream: bool) -> None:
    door.fake.script(Answer(tool_calls=(ToolCall("get_weather", {"city": "Paris"}),), finish="tool_calls"))
    message = await door.create(stream, messages=[USER], tools=[WEATHER])
    assert _tool_uses(message) == [("get_weather", {"city": "Paris"})]
    assert message["stop_reason"] == "tool_use"
    assert door.fake.canonical().tools == ("get_weather",)


@STREAM
async def test_parallel_tool_uses_with_fragmented_arguments(door: Door, stream: bool) -> None:
    calls = (
        ToolCall("get_weather", {"city": "Paris", "units": "metric", "note": 'quote " and ünïcode'}),
        ToolCall("get_time", {"zone": "Europe/Paris"}),
        ToolCall("get_weather", {}),
    )
    door.fake.script(Answer(text="", tool_calls=calls, finish="tool_calls", fragment=2))
    message = await door.create(stream, messages=[USER], tools=[WEATHER, TIME])
    assert _tool_uses(message) == [(c.name, c.arguments) for c in calls]
    assert message["stop_reason"] == "tool_use"


@STREAM
async def test_tool_results_fed_back(door: Door, stream: bool) -> None:
    messages = [
        USER,
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": '{"temp": "18C"}'},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": [{"type": "text", "text": "14:05"}]},
            ],
        },
    ]
    door.fake.script(Answer(text="18C at 14:05."))
    message = await door.create(stream, messages=messages, tools=[WEATHER, TIME])
    assert _texts(message) == "18C at 14:05."
    asked = door.fake.canonical()
    assistant = next(m for m in asked.messages if m.role == "assistant")
    calls = [(c.name, c.arguments) for c in assistant.tool_calls]
    assert calls == [("get_weather", {"city": "Paris"}), ("get_time", {})]
    results = [m for m in asked.messages if m.role == "tool"]
    assert [m.tool_call_id for m in results] == [c.id for c in assistant.tool_calls]
    assert "18C" in (results[0].tool_result or "") and "14:05" in (results[1].tool_result or "")
    # Ids are mapped reversibly: Anthropic's own on an Anthropic route, `call_` elsewhere.
    expected = ["toolu_01A", "toolu_01B"] if door.provider == "anthropic" else ["call_01A", "call_01B"]
    if door.provider != "gemini":  # Gemini has no ids; its adapter pairs calls and results itself
        assert [c.id for c in assistant.tool_calls] == expected


async def test_tool_ids_survive_a_round_trip(door: Door) -> None:
    door.fake.script(Answer(tool_calls=(ToolCall("get_weather", {"city": "Oslo"}),), finish="tool_calls"))
    first = await door.create(False, messages=[USER], tools=[WEATHER])
    use = next(block for block in first["content"] if block["type"] == "tool_use")
    result = {"type": "tool_result", "tool_use_id": use["id"], "content": "cold"}
    door.fake.script(Answer(text="Cold."))
    history = [USER, {"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]
    second = await door.create(False, messages=history, tools=[WEATHER])
    assert _texts(second) == "Cold."
    asked = door.fake.canonical()
    call = next(m for m in asked.messages if m.role == "assistant").tool_calls[0]
    answered = next(m for m in asked.messages if m.role == "tool")
    assert answered.tool_call_id == call.id


@pytest.mark.parametrize(
    ("choice", "canonical"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "none"}, "none"),
        ({"type": "any"}, "required"),
        ({"type": "tool", "name": "get_weather"}, ("function", "get_weather")),
    ],
    ids=["auto", "none", "any", "tool"],
)
async def test_every_tool_choice_form(door: Door, choice: dict[str, Any], canonical: Any) -> None:
    door.fake.script(Answer(text="ok"))
    await door.create(False, messages=[USER], tools=[WEATHER, TIME], tool_choice=choice)
    assert door.fake.canonical().tool_choice == canonical


@STREAM
async def test_image_input(door: Door, stream: bool) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_DATA}},
    ]
    door.fake.script(Answer(text="A pixel."))
    message = await door.create(stream, messages=[{"role": "user", "content": content}])
    assert _texts(message) == "A pixel."
    asked = door.fake.canonical().messages[0]
    assert (asked.text, asked.images) == ("What is this?", 1)


@pytest.mark.parametrize("stop", [["END"], ["END", "STOP"]])
async def test_stop_sequences(door: Door, stop: list[str]) -> None:
    door.fake.script(Answer(text="ok"))
    await door.create(False, messages=[USER], stop_sequences=stop)
    assert door.fake.canonical().stop == tuple(stop)


async def test_sampling_and_limits_arrive(door: Door) -> None:
    door.fake.script(Answer(text="ok"))
    # This SDK no longer types the sampling fields; clients still send them.
    await door.create(False, messages=[USER], max_tokens=50, extra_body={"temperature": 0})
    asked = door.fake.canonical()
    assert asked.temperature == 0 and asked.temperature is not None
    assert asked.max_tokens == 50


@STREAM
async def test_usage(door: Door, stream: bool) -> None:
    door.fake.script(Answer(text="Counting tokens.", prompt_tokens=21, completion_tokens=4))
    message = await door.create(stream, messages=[USER])
    usage = message["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (21, 4)
    assert usage["cache_read_input_tokens"] == 0


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
async def test_each_error_class(door: Door, kind: str, outcome: str, stream: bool) -> None:
    """Upstream failures are retried, fall back or reach the client as on the OpenAI door."""
    door.fake.script(Answer(error=ErrorAnswer(kind, "scripted " + kind)))  # type: ignore[arg-type]
    request = {"model": "m", "max_tokens": 64, "messages": [{"role": "user", "content": "try again"}]}
    if outcome == "stop":
        with pytest.raises(anthropic.BadRequestError) as caught:
            await door.create(stream, messages=[USER])
        assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
        assert "scripted invalid_request" in str(caught.value)
        assert len(door.fake.requests) == 1 and door.echo_requests == []
        return
    if stream:
        async with door.client.messages.with_streaming_response.create(**request, stream=True) as raw:
            headers = raw.headers
            await raw.read()
    else:
        headers = (await door.client.messages.with_raw_response.create(**request)).headers
    assert headers["x-routemw-attempts"] == "2"
    if outcome == "retry":  # the same target, once more, after the scripted failure
        assert headers["x-routemw-provider"] == "up"
        assert len(door.fake.requests) == 2 and door.echo_requests == []
        assert len(door.sleeps) == 1
    else:  # the next candidate, translated afresh for an OpenAI-shaped route
        assert headers["x-routemw-provider"] == "echo"
        assert headers["x-routemw-fallbacks"] == "1"
        assert len(door.fake.requests) == 1 and len(door.echo_requests) == 1
        assert door.echo_requests[0]["messages"] == [{"role": "user", "content": "try again"}]
