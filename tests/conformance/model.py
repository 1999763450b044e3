"""The provider-neutral vocabulary of the conformance suite.

A scenario says what the upstream model answers (`Answer`), and what the OpenAI request it
sent means (`CanonicalRequest`). Each provider fake turns an `Answer` into that provider's own
wire format (JSON and SSE, byte-faithful to the real thing) and turns the native request it
received back into a `CanonicalRequest`, so one table of scenarios can check every adapter
without knowing any wire format itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Finish = Literal["stop", "length", "tool_calls", "content_filter"]
ErrorKind = Literal["invalid_request", "auth", "not_found", "rate_limit", "quota", "overloaded", "server"]


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ErrorAnswer:
    """The upstream fails: `kind` is mapped by each fake to its provider's status and body."""

    kind: ErrorKind
    message: str = "scripted failure"


@dataclass(frozen=True)
class Answer:
    """What the upstream model says, provider-neutral."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish: Finish = "stop"
    prompt_tokens: int = 11
    completion_tokens: int = 7
    error: ErrorAnswer | None = None
    fragment: int = 3  # streams split text and tool arguments into pieces this long


@dataclass(frozen=True)
class CanonicalToolCall:
    id: str  # the id as the provider saw it (it may have been rewritten to fit its charset)
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class CanonicalMessage:
    role: Literal["user", "assistant", "tool"]
    text: str | None = None  # the text parts joined with "\n"; None when there were none
    images: int = 0
    tool_calls: tuple[CanonicalToolCall, ...] = ()
    tool_call_id: str | None = None  # for role "tool": the call it answers (provider's id)
    tool_result: str | None = None  # for role "tool"


@dataclass(frozen=True)
class CanonicalRequest:
    """What a provider's native request means, in OpenAI terms."""

    model: str
    stream: bool
    system: str | None
    messages: tuple[CanonicalMessage, ...]
    tools: tuple[str, ...] = ()
    tool_choice: str | tuple[str, str] | None = None  # "auto" | "none" | "required" | ("function", name)
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    response_format: Literal["json_object", "json_schema"] | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # anything else a fake wants to report
