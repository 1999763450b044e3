"""What a request needs, and what a target can do: the vocabulary both sides speak.

`needs(request)` derives, purely from the request, each capability it relies on and the request
field that relies on it (so a refusal can name `messages[2].content[1]`, not just "vision").
A `Profile` is a target's side: tri-state support per capability (True supported, False
unsupported, absent unknown), the OpenAI parameters it cannot express at all, value ranges,
output and context limits, and the spelling it wants for a few parameters. Adapters declare a
profile per model family; config overrides it per model and per route. Unknown passes, because
an OpenAI-compatible server we know nothing about deserves the benefit of the doubt;
unsupported never does.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from .chat import ChatRequest

__all__ = ["LIMITS", "Capability", "Need", "Profile", "needs"]


class Capability(enum.StrEnum):
    STREAMING = "streaming"  # stream: true
    STREAM_USAGE = "stream_usage"  # stream_options.include_usage: true
    TOOLS = "tools"  # a non-empty `tools`
    TOOL_CHOICE = "tool_choice"  # a forced choice: "required" or a named function
    PARALLEL_TOOL_CALLS = "parallel_tool_calls"  # the field sent, true or false
    JSON_OBJECT = "json_object"  # response_format {type: json_object}
    JSON_SCHEMA = "json_schema"  # response_format {type: json_schema}
    VISION = "vision"  # an image_url content part
    AUDIO_INPUT = "audio_input"  # an input_audio content part
    LOGPROBS = "logprobs"  # logprobs: true, or top_logprobs
    MULTIPLE_CHOICES = "multiple_choices"  # n > 1
    REASONING_EFFORT = "reasoning_effort"  # reasoning_effort sent
    # Kinds of model rather than features: a route serves `/v1/embeddings` only when its profile
    # (or config) says `embeddings: true`, and such a route serves nothing else; `responses: false`
    # marks an upstream without OpenAI's Responses API (`/v1/responses`).
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"


# Limits are numbers, not flags: a request fits a target when it asks for no more than them.
LIMITS = ("max_output_tokens", "context_window")


@dataclass(frozen=True, slots=True)
class Need:
    """One thing a request relies on, and the request field that relies on it."""

    capability: Capability | str
    param: str
    amount: int | None = None  # for limits: how much is asked for


def needs(request: ChatRequest) -> list[Need]:
    """Everything `request` needs, in a stable order."""
    return list(_needs(request.body))


def _needs(body: Mapping[str, Any]) -> Iterator[Need]:
    if body.get("stream") is True:
        yield Need(Capability.STREAMING, "stream")
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            yield Need(Capability.STREAM_USAGE, "stream_options")
    if body.get("tools"):
        yield Need(Capability.TOOLS, "tools")
    choice = body.get("tool_choice")
    if choice == "required" or isinstance(choice, dict):
        yield Need(Capability.TOOL_CHOICE, "tool_choice")
    if "parallel_tool_calls" in body and body.get("tools"):
        yield Need(Capability.PARALLEL_TOOL_CALLS, "parallel_tool_calls")
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_object":
            yield Need(Capability.JSON_OBJECT, "response_format")
        elif kind == "json_schema":
            yield Need(Capability.JSON_SCHEMA, "response_format")
    yield from _content_needs(body.get("messages"))
    if body.get("logprobs") is True:
        yield Need(Capability.LOGPROBS, "logprobs")
    elif body.get("top_logprobs") is not None:
        yield Need(Capability.LOGPROBS, "top_logprobs")
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        yield Need(Capability.MULTIPLE_CHOICES, "n")
    if body.get("reasoning_effort") is not None:
        yield Need(Capability.REASONING_EFFORT, "reasoning_effort")
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            yield Need("max_output_tokens", key, value)
            yield Need("context_window", key, value)
            break


def _content_needs(messages: Any) -> Iterator[Need]:
    seen: set[Capability] = set()
    if not isinstance(messages, list):
        return
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            capability = (
                Capability.VISION if kind == "image_url" else Capability.AUDIO_INPUT if kind == "input_audio" else None
            )
            if capability is not None and capability not in seen:
                seen.add(capability)  # the first such part is the one a refusal names
                yield Need(capability, f"messages[{i}].content[{j}]")


@dataclass(frozen=True, slots=True)
class Profile:
    """What one target (an adapter's model family, after config overrides) can do."""

    support: Mapping[str, bool] = field(default_factory=lambda: MappingProxyType({}))
    # OpenAI request fields the target has no way to express.
    unsupported_params: frozenset[str] = frozenset()
    # For a translating adapter: the only request fields it understands; any other field the
    # client sends (an OpenAI field added next month, a vendor extension) counts as unsupported.
    # None for passthrough adapters, which forward unknown fields untouched.
    accepted_params: frozenset[str] | None = None
    # Groups of request fields of which the target accepts at most one at a time (Anthropic's
    # newer models refuse `temperature` together with `top_p`).
    exclusive_params: tuple[tuple[str, ...], ...] = ()
    # Inclusive numeric ranges the target accepts, by request field.
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=lambda: MappingProxyType({}))
    max_output_tokens: int | None = None
    context_window: int | None = None
    max_stop: int | None = None  # most `stop` sequences accepted
    # How the target spells the output limit; the other spelling is renamed to it.
    output_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = None
    developer_role: bool = True  # False: `developer` messages are sent as `system`
    stream_options: bool = True  # False: never forward `stream_options`

    def supports(self, capability: str) -> bool | None:
        """True, False, or None for unknown."""
        return self.support.get(capability)

    def limit(self, name: str) -> int | None:
        return self.max_output_tokens if name == "max_output_tokens" else self.context_window

    def flags(self) -> dict[str, bool | int | None]:
        """Every vocabulary word with its support (None: unknown), plus the limits."""
        out: dict[str, bool | int | None] = {c.value: self.support.get(c.value) for c in Capability}
        out["max_output_tokens"] = self.max_output_tokens
        out["context_window"] = self.context_window
        return out

    def override(self, overrides: Mapping[str, bool | int]) -> Profile:
        """This profile with config `capabilities` applied (flags and limits)."""
        if not overrides:
            return self
        support = dict(self.support)
        limits: dict[str, Any] = {}
        for key, value in overrides.items():
            if key in LIMITS:
                limits[key] = value
            else:
                support[key] = bool(value)
        return replace(self, support=MappingProxyType(support), **limits)
