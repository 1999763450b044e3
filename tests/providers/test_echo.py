"""The built-in echo upstream: an in-process OpenAI server that echoes and can be scripted."""

from __future__ import annotations

import re
import time
from typing import Any

import anyio
import httpx
import orjson
import pytest
from fakes import data_payloads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routemw import ConfigError, EchoStep, EchoUpstream, Gateway

URL = "http://echo.routemw.invalid/v1/chat/completions"


def chat(content: Any = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": content}], **extra}


async def post(upstream: EchoUpstream, body: dict[str, Any]) -> httpx.Response:
    response = await upstream.handle_async_request(httpx.Request("POST", URL, json=body))
    await response.aread()
    return response


async def stream_events(upstream: EchoUpstream, body: dict[str, Any]) -> list[bytes]:
    response = await post(upstream, {**body, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    return data_payloads(response.content)


def deltas(payloads: list[bytes]) -> list[str]:
    out: list[str] = []
    for payload in payloads:
        if payload == b"[DONE]":
            continue
        for choice in orjson.loads(payload)["choices"]:
            if "content" in choice["delta"]:
                out.append(choice["delta"]["content"])
    return out


# -- answers ----------------------------------------------------------------------------------


async def test_it_answers_with_the_last_user_message() -> None:
    upstream = EchoUpstream()
    body = {
        "model": "my-model",
        "messages": [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second question"},
        ],
    }
    response = await post(upstream, body)

    assert response.status_code == 200
    data = orjson.loads(response.content)
    assert data["object"] == "chat.completion"
    assert data["model"] == "my-model"
    assert data["id"].startswith("chatcmpl-")
    (choice,) = data["choices"]
    assert choice["message"] == {"role": "assistant", "content": "second question", "refusal": None}
    assert choice["finish_reason"] == "stop"
    usage = data["usage"]
    assert usage["completion_tokens"] == 2
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert upstream.requests == [body]


async def test_array_content_is_echoed_as_its_text_parts() -> None:
    content = [
        {"type": "text", "text": "look at"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this"},
    ]
    data = orjson.loads((await post(EchoUpstream(), chat(content))).content)

    assert data["choices"][0]["message"]["content"] == "look at this"


async def test_ids_differ_between_answers() -> None:
    upstream = EchoUpstream()
    first = orjson.loads((await post(upstream, chat())).content)
    second = orjson.loads((await post(upstream, chat())).content)

    assert first["id"] != second["id"]


# -- streams ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "one two three",
        "  leading and trailing  ",
        "many   spaces",
        "",
        "caf\u00e9 \U0001f600 \u2028 end",
        "a\nb",
    ],
)
async def test_a_stream_goes_token_by_token_and_joins_back_to_the_text(text: str) -> None:
    payloads = await stream_events(EchoUpstream(), chat(text))

    assert payloads[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    words = deltas(payloads)[1:]
    assert "".join(words) == text
    # One token each (a word and the whitespace before it); trailing whitespace comes last, alone.
    body = words[:-1] if words and words[-1].isspace() else words
    assert all(re.fullmatch(r"\s*\S+", word) for word in body)
    assert len(body) == len(text.split())
    if text == "one two three":
        assert words == ["one", " two", " three"]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert all("usage" not in c for c in chunks)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.sampled_from([" ", "a", "b", "\u00e9", "\t", "\n", "\U0001f600"]), max_size=30))
def test_joined_deltas_always_equal_the_text(text: str) -> None:
    payloads = anyio.run(stream_events, EchoUpstream(), chat(text))

    assert "".join(deltas(payloads)) == text


async def test_include_usage_adds_a_final_usage_chunk_without_choices() -> None:
    payloads = await stream_events(EchoUpstream(), chat("one two", stream_options={"include_usage": True}))

    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


async def test_cut_after_ends_the_stream_without_finish_or_done() -> None:
    upstream = EchoUpstream([EchoStep(cut_after=2)])
    payloads = await stream_events(upstream, chat("one two three four"))

    assert b"[DONE]" not in payloads
    assert deltas(payloads) == ["", "one", " two"]
    assert all(orjson.loads(p)["choices"][0]["finish_reason"] is None for p in payloads)


# -- scripts ----------------------------------------------------------------------------------


async def test_scripted_steps_are_used_in_order_then_it_echoes() -> None:
    upstream = EchoUpstream(
        [
            EchoStep(status=429, message="slow down", code="rate_limit_exceeded", headers={"retry-after": "1"}),
            EchoStep(status=500),
            EchoStep(text="scripted answer"),
        ]
    )
    first = await post(upstream, chat())
    second = await post(upstream, chat())
    third = await post(upstream, chat())
    fourth = await post(upstream, chat("back to echo"))

    assert (first.status_code, first.headers["retry-after"]) == (429, "1")
    assert orjson.loads(first.content) == {
        "error": {"message": "slow down", "type": "invalid_request_error", "param": None, "code": "rate_limit_exceeded"}
    }
    assert second.status_code == 500
    assert orjson.loads(second.content)["error"]["type"] == "server_error"
    assert orjson.loads(third.content)["choices"][0]["message"]["content"] == "scripted answer"
    assert orjson.loads(fourth.content)["choices"][0]["message"]["content"] == "back to echo"
    assert len(upstream.requests) == 4
    assert not upstream.script


async def test_a_delay_step_waits_before_answering() -> None:
    upstream = EchoUpstream([EchoStep(delay=0.1)])
    started = time.monotonic()
    response = await post(upstream, chat())

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.09


async def test_a_stall_step_never_answers() -> None:
    upstream = EchoUpstream([EchoStep(stall=True)])
    with anyio.move_on_after(0.1) as scope:
        await post(upstream, chat())

    assert scope.cancelled_caught
    assert len(upstream.requests) == 1
    assert orjson.loads((await post(upstream, chat("next"))).content)["choices"][0]["message"]["content"] == "next"


async def test_chunk_delay_spaces_the_words() -> None:
    upstream = EchoUpstream(chunk_delay=0.03)
    started = time.monotonic()
    payloads = await stream_events(upstream, chat("a b c d"))

    assert "".join(deltas(payloads)) == "a b c d"
    assert time.monotonic() - started >= 0.1


def gateway_with_script(script: Any, **options: Any) -> Gateway:
    document = {
        "providers": {"flaky": {"type": "echo", "script": script, **options}},
        "models": {"m": {"routes": [{"provider": "flaky", "model": "m"}]}},
    }
    return Gateway.from_config(document, environ={})


def test_an_unknown_step_key_is_a_config_error_naming_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        gateway_with_script([{"status": 503}, {"text": "hi", "bogus": 1}])

    assert caught.value.problems == ("providers.flaky.script[1].bogus: unknown key",)


@pytest.mark.parametrize(
    ("script", "options", "problem"),
    [
        ("not a list", {}, "providers.flaky.script: expected a list of mappings"),
        ([1, 2], {}, "providers.flaky.script: expected a list of mappings"),
        ([], {"chunk_delay": -1}, "providers.flaky.chunk_delay: expected a number of seconds >= 0"),
        ([], {"chunk_delay": True}, "providers.flaky.chunk_delay: expected a number of seconds >= 0"),
    ],
)
def test_a_malformed_script_is_a_config_error(script: Any, options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        gateway_with_script(script, **options)

    assert caught.value.problems == (problem,)


# -- open streams -----------------------------------------------------------------------------


async def test_open_streams_returns_to_zero_after_a_complete_stream() -> None:
    upstream = EchoUpstream()
    response = await upstream.handle_async_request(httpx.Request("POST", URL, json=chat("a b c", stream=True)))
    assert upstream.open_streams == 1

    await response.aread()
    await response.aclose()
    assert upstream.open_streams == 0


async def test_open_streams_returns_to_zero_when_a_stream_is_closed_early() -> None:
    upstream = EchoUpstream()
    responses = [
        await upstream.handle_async_request(httpx.Request("POST", URL, json=chat("a b c", stream=True)))
        for _ in range(2)
    ]
    assert upstream.open_streams == 2

    async for _ in responses[0].aiter_raw():
        break
    await responses[0].aclose()
    assert upstream.open_streams == 1
    await responses[1].aclose()  # never read at all
    assert upstream.open_streams == 0
    await responses[1].aclose()
    assert upstream.open_streams == 0


async def test_open_streams_returns_to_zero_after_a_cut_stream() -> None:
    upstream = EchoUpstream([EchoStep(cut_after=1)])
    await stream_events(upstream, chat("a b c"))

    assert upstream.open_streams == 0


async def test_a_non_streaming_answer_opens_no_stream() -> None:
    upstream = EchoUpstream()
    await post(upstream, chat())

    assert upstream.open_streams == 0
