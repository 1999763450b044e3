"""The capability vocabulary: what each request needs, derived from the request alone."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from routemw.capabilities import Capability, Need, Profile, needs
from routemw.chat import parse_chat_request

USER = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


def _needs(**fields: Any) -> list[tuple[str, str, int | None]]:
    body = {"model": "m", "messages": [USER], **fields}
    return [(str(n.capability), n.param, n.amount) for n in needs(parse_chat_request(orjson.dumps(body)))]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, []),
        ({"stream": True}, [("streaming", "stream", None)]),
        ({"stream": False}, []),
        (
            {"stream": True, "stream_options": {"include_usage": True}},
            [("streaming", "stream", None), ("stream_usage", "stream_options", None)],
        ),
        ({"stream": True, "stream_options": {"include_usage": False}}, [("streaming", "stream", None)]),
        ({"tools": [TOOL]}, [("tools", "tools", None)]),
        ({"tools": []}, []),
        ({"tools": [TOOL], "tool_choice": "auto"}, [("tools", "tools", None)]),
        ({"tools": [TOOL], "tool_choice": "none"}, [("tools", "tools", None)]),
        (
            {"tools": [TOOL], "tool_choice": "required"},
            [("tools", "tools", None), ("tool_choice", "tool_choice", None)],
        ),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "lookup"}}},
            [("tools", "tools", None), ("tool_choice", "tool_choice", None)],
        ),
        (
            {"tools": [TOOL], "parallel_tool_calls": False},
            [("tools", "tools", None), ("parallel_tool_calls", "parallel_tool_calls", None)],
        ),
        (
            {"tools": [TOOL], "parallel_tool_calls": True},
            [("tools", "tools", None), ("parallel_tool_calls", "parallel_tool_calls", None)],
        ),
        ({"response_format": {"type": "json_object"}}, [("json_object", "response_format", None)]),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
            [("json_schema", "response_format", None)],
        ),
        ({"response_format": {"type": "text"}}, []),
        ({"logprobs": True}, [("logprobs", "logprobs", None)]),
        ({"logprobs": False}, []),
        ({"top_logprobs": 0}, [("logprobs", "top_logprobs", None)]),
        ({"n": 1}, []),
        ({"n": 3}, [("multiple_choices", "n", None)]),
        ({"reasoning_effort": "low"}, [("reasoning_effort", "reasoning_effort", None)]),
        (
            {"max_tokens": 500},
            [("max_output_tokens", "max_tokens", 500), ("context_window", "max_tokens", 500)],
        ),
        (
            {"max_completion_tokens": 0, "max_tokens": 9},
            [("max_output_tokens", "max_completion_tokens", 0), ("context_window", "max_completion_tokens", 0)],
        ),
    ],
)
def test_needs_are_derived_from_the_request(
    fields: dict[str, Any], expected: list[tuple[str, str, int | None]]
) -> None:
    assert _needs(**fields) == expected


def test_content_parts_name_the_first_part_that_needs_them() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        USER,
        {"role": "user", "content": [{"type": "text", "text": "look"}, IMAGE, IMAGE, AUDIO]},
    ]
    body = {"model": "m", "messages": messages}
    found = needs(parse_chat_request(orjson.dumps(body)))
    assert found == [
        Need(Capability.VISION, "messages[2].content[1]"),
        Need(Capability.AUDIO_INPUT, "messages[2].content[3]"),
    ]


def test_profile_is_tri_state_and_overrides_apply() -> None:
    profile = Profile(support={"tools": True, "vision": False})
    assert profile.supports("tools") is True
    assert profile.supports("vision") is False
    assert profile.supports("logprobs") is None
    changed = profile.override({"tools": False, "logprobs": True, "max_output_tokens": 1024})
    assert (changed.supports("tools"), changed.supports("logprobs"), changed.max_output_tokens) == (False, True, 1024)
    assert profile.supports("tools") is True  # the original is untouched
    flags = changed.flags()
    assert set(flags) == {c.value for c in Capability} | {"max_output_tokens", "context_window"}
    assert flags["vision"] is False and flags["audio_input"] is None
