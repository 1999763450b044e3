"""The official `openai` SDK's structured-output and tool helpers against `echo`, end to end.

The gateway runs on uvicorn on a loopback port with only the built-in echo model; the client is
the real SDK, so what is checked is what users see: `parse()` returns a model instance, the
stream helper yields a parsed tool call, `n` and `max_tokens` behave, and what echo cannot do
is refused by name (or dropped and disclosed under the drop policy).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import openai
import pytest
from openai import OpenAI
from pydantic import BaseModel, Field
from servers import LiveServer, serve

from routemw import Gateway

MESSAGES: list[Any] = [{"role": "user", "content": "plan a trip"}]


class Stop(BaseModel):
    city: Annotated[str, Field(min_length=1)]
    nights: Annotated[int, Field(ge=1)]


class Trip(BaseModel):
    title: str
    kind: Literal["city", "beach"]
    stops: Annotated[list[Stop], Field(min_length=1)]
    budget: float | None


class GetWeather(BaseModel):
    city: str
    units: Literal["c", "f"]


def config(policy: str) -> dict[str, Any]:
    return {"models": {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}}, "params": {"unsupported": policy}}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, LiveServer]]:
    with (
        serve(Gateway.from_config(config("reject"), environ={})) as strict,
        serve(Gateway.from_config(config("drop"), environ={})) as lenient,
    ):
        yield {"reject": strict, "drop": lenient}


@pytest.fixture
def client(servers: dict[str, LiveServer]) -> Iterator[OpenAI]:
    with OpenAI(base_url=servers["reject"].url + "/v1", api_key="sk-test", max_retries=0, timeout=10.0) as sdk:
        yield sdk


def test_parse_with_a_pydantic_model_returns_an_instance(client: OpenAI) -> None:
    completion = client.chat.completions.parse(model="echo", messages=MESSAGES, response_format=Trip)

    trip = completion.choices[0].message.parsed
    assert isinstance(trip, Trip)
    assert trip.kind == "city" and len(trip.stops) == 1 and trip.stops[0].nights == 1


def test_parse_returns_the_users_json_when_it_fits(client: OpenAI) -> None:
    mine = Trip(title="Alps", kind="beach", stops=[Stop(city="Bern", nights=2)], budget=1.5)
    messages: list[Any] = [{"role": "user", "content": mine.model_dump_json()}]
    completion = client.chat.completions.parse(model="echo", messages=messages, response_format=Trip)

    assert completion.choices[0].message.parsed == mine


def test_json_object_mode_answers_json(client: OpenAI) -> None:
    completion = client.chat.completions.create(
        model="echo", messages=MESSAGES, response_format={"type": "json_object"}
    )

    assert json.loads(completion.choices[0].message.content or "") == {}


def test_a_forced_tool_choice_streams_a_call_the_helper_parses(client: OpenAI) -> None:
    tool = openai.pydantic_function_tool(GetWeather)
    choice: Any = {"type": "function", "function": {"name": "GetWeather"}}
    with client.chat.completions.stream(model="echo", messages=MESSAGES, tools=[tool], tool_choice=choice) as stream:
        fragments = [event.arguments_delta for event in stream if event.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()

    assert len(fragments) > 1  # streamed as argument deltas
    (call,) = final.choices[0].message.tool_calls or []
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.type == "function" and call.function.name == "GetWeather"
    assert call.function.parsed_arguments == GetWeather(city="", units="c")


def test_required_tool_choice_calls_the_first_tool(client: OpenAI) -> None:
    tools: Any = [openai.pydantic_function_tool(GetWeather), openai.pydantic_function_tool(Stop)]
    completion = client.chat.completions.create(model="echo", messages=MESSAGES, tools=tools, tool_choice="required")

    (call,) = completion.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "GetWeather"
    GetWeather.model_validate_json(call.function.arguments)


def test_n_gives_two_choices(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="echo", messages=MESSAGES, n=2)
    with client.chat.completions.stream(model="echo", messages=MESSAGES, n=2) as stream:
        final = stream.get_final_completion()

    assert [c.message.content for c in completion.choices] == ["plan a trip"] * 2
    assert [c.index for c in final.choices] == [0, 1]
    assert [c.message.content for c in final.choices] == ["plan a trip"] * 2


def test_max_tokens_one_finishes_with_length(client: OpenAI) -> None:
    completion = client.chat.completions.create(model="echo", messages=MESSAGES, max_tokens=1)

    assert completion.choices[0].message.content == "plan"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 1


def test_logprobs_are_refused_naming_them(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="echo", messages=MESSAGES, logprobs=True)

    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == ("logprobs", "unsupported_parameter")


def test_logprobs_are_dropped_and_disclosed_under_the_drop_policy(servers: dict[str, LiveServer]) -> None:
    with OpenAI(base_url=servers["drop"].url + "/v1", api_key="sk-test", max_retries=0, timeout=10.0) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model="echo", messages=MESSAGES, logprobs=True)

    assert raw.headers["x-routemw-dropped-params"] == "logprobs"
    completion = raw.parse()
    assert completion.choices[0].message.content == "plan a trip"
    assert completion.choices[0].logprobs is None
