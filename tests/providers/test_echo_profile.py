"""Echo declares what it can do, so `/v1/models`, the capability check and the parameter policy
treat it like any other target: what it cannot do is refused by name, or dropped and disclosed.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fakes import drive

from routemw import Gateway
from routemw.providers.echo import EchoProvider

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}


def gateway(policy: str = "reject") -> Gateway:
    config = {
        "models": {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}},
        "params": {"unsupported": policy},
    }
    return Gateway.from_config(config, environ={})


def received(gw: Gateway) -> list[dict[str, Any]]:
    echo = gw.providers["echo"]
    assert isinstance(echo, EchoProvider)
    return echo.upstream.requests


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": "hello there"}], **fields}


async def test_models_show_what_echo_supports_and_what_it_does_not() -> None:
    driver = await drive(gateway(), method="GET", path="/v1/models/echo")

    assert driver.status == 200
    flags = driver.json()["capabilities"]
    supported = ["streaming", "stream_usage", "tools", "tool_choice", "parallel_tool_calls"]
    supported += ["json_object", "json_schema", "multiple_choices"]
    assert {name: flags[name] for name in supported} == dict.fromkeys(supported, True)
    unsupported = ["vision", "audio_input", "logprobs", "reasoning_effort"]
    assert {name: flags[name] for name in unsupported} == dict.fromkeys(unsupported, False)
    assert None not in {flags[name] for name in supported + unsupported}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "see"}, IMAGE]}]},
            "messages[0].content[1]",
        ),
        ({"messages": [{"role": "user", "content": [AUDIO]}]}, "messages[0].content[0]"),
    ],
)
async def test_what_echo_cannot_do_is_refused_by_name_before_it_is_asked(fields: dict[str, Any], param: str) -> None:
    gw = gateway()
    driver = await drive(gw, json=chat(**fields))

    assert driver.status == 400
    error = driver.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, "unsupported_parameter", "invalid_request_error")
    assert received(gw) == []


@pytest.mark.parametrize(
    ("fields", "dropped"),
    [
        ({"logprobs": True, "top_logprobs": 2}, {"logprobs", "top_logprobs"}),
        ({"logit_bias": {"50256": -100}}, {"logit_bias"}),
        ({"reasoning_effort": "low"}, {"reasoning_effort"}),
    ],
)
async def test_under_the_drop_policy_it_is_sent_without_them_and_says_so(
    fields: dict[str, Any], dropped: set[str]
) -> None:
    gw = gateway("drop")
    driver = await drive(gw, json=chat(**fields))

    assert driver.status == 200
    assert set(driver.header("x-routemw-dropped-params").split(", ")) == dropped  # type: ignore[union-attr]
    (sent,) = received(gw)
    assert not dropped & sent.keys()
    assert driver.json()["choices"][0]["message"]["content"] == "hello there"


async def test_under_the_clamp_policy_n_is_pulled_into_range_as_an_integer() -> None:
    gw = gateway("clamp")
    driver = await drive(gw, json=chat(n=500))

    assert driver.status == 200
    assert driver.header("x-routemw-clamped-params") == "n"
    assert received(gw)[0]["n"] == 128
    assert len(driver.json()["choices"]) == 128


async def test_a_streamed_forced_tool_call_passes_through_the_gateway() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "required": ["x"]}}}
    driver = await drive(gateway(), json=chat(tools=[tool], tool_choice="required", stream=True, n=2))

    assert driver.status == 200
    chunks = [orjson.loads(p) for p in driver.payloads()[:-1]]
    finishes = {(c["choices"][0]["index"], c["choices"][0]["finish_reason"]) for c in chunks if c["choices"]}
    assert {(0, "tool_calls"), (1, "tool_calls")} <= finishes


async def test_a_forced_tool_choice_without_tools_reaches_echo_and_is_refused_with_its_400() -> None:
    # The gateway's own checks let the request through (it is well-typed); the 400 is echo's, as
    # it would be OpenAI's, and it reaches the client as a client error naming the field.
    gw = gateway()
    driver = await drive(gw, json=chat(tool_choice="required"))

    assert driver.status == 400
    error = driver.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "tool_choice")
    assert len(received(gw)) == 1
