"""An OpenAI chat completion as an Anthropic `message`, for a target that had to translate.

Decisions, each the reverse of what `routemw.providers.anthropic` does the other way:

- `finish_reason` to `stop_reason`: stop is `end_turn`, length `max_tokens`, tool_calls (and the
  legacy function_call) `tool_use`, content_filter `refusal`. An answer with tool calls is
  always `tool_use`, whatever the upstream said (OpenAI itself sometimes says "stop", T7), since
  Anthropic agent loops run tools on that reason alone. `stop_sequence` is never reported: an
  OpenAI-shaped upstream does not say whether a stop sequence or the model ended the turn, so
  `end_turn` it is, with `stop_sequence: null`.
- Usage: `input_tokens` is `prompt_tokens` less the cached ones, which are
  `cache_read_input_tokens` (Anthropic counts total input as the sum of the three);
  `cache_creation_input_tokens` is 0 (OpenAI does not report cache writes). `output_tokens` is
  `completion_tokens`.
- Text is one text block; a refusal is text too, with `stop_reason: refusal`. Tool calls are
  `tool_use` blocks with the arguments parsed (no arguments, or arguments that are not a JSON
  object, become `{}`) and ids mapped by `ids`. Reasoning (`reasoning_content`) becomes a
  thinking block only when the client asked for thinking, with an empty signature, since there
  is none to give; earlier thinking is dropped on the way to a translating target anyway.
- The id is `msg_` followed by the upstream's id; the model is the public id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from .ids import to_anthropic

__all__ = ["anthropic_usage", "message_id", "render_message", "stop_reason"]

_STOP: Final = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_ID_REJECTED: Final = re.compile(r"[^a-zA-Z0-9_-]")


def stop_reason(finish: Any, *, tool_use: bool, refusal: bool = False) -> str:
    if tool_use:
        return "tool_use"
    if refusal:
        return "refusal"
    reason = _STOP.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    return "end_turn" if reason == "tool_use" else reason


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def anthropic_usage(
    usage: Mapping[str, Any] | None, *, input_estimate: int = 0, output_estimate: int = 0
) -> dict[str, Any]:
    """Anthropic's usage for an OpenAI one; the estimates stand in when the upstream sent none."""
    if not isinstance(usage, Mapping):
        return {
            "input_tokens": input_estimate,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": max(output_estimate, 1),
        }
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    prompt = _count(usage.get("prompt_tokens"))
    return {
        "input_tokens": max(prompt - cached, 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": _count(usage.get("completion_tokens")),
    }


def message_id(openai_id: Any) -> str:
    text = openai_id if isinstance(openai_id, str) and openai_id else "unknown"
    return text if text.startswith("msg_") else "msg_" + _ID_REJECTED.sub("_", text)


def tool_input(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def render_message(data: Mapping[str, Any], *, model: str, thinking: bool) -> dict[str, Any]:
    """The Anthropic `message` for an OpenAI `chat.completion` (choice 0)."""
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content")
    if thinking and isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = message.get("content")
    refusal = message.get("refusal")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    elif isinstance(refusal, str) and refusal:
        content.append({"type": "text", "text": refusal})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        content.append(
            {
                "type": "tool_use",
                "id": to_anthropic(str(call.get("id") or "call_0")),
                "name": str(function.get("name") or ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    tool_use = any(block["type"] == "tool_use" for block in content)
    refused = not (isinstance(text, str) and text) and isinstance(refusal, str) and bool(refusal)
    usage = data.get("usage")
    return {
        "id": message_id(data.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason"), tool_use=tool_use, refusal=refused),
        "stop_sequence": None,
        "usage": anthropic_usage(usage if isinstance(usage, Mapping) else None),
    }
