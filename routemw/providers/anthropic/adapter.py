"""Anthropic's Messages API (`type: anthropic`): OpenAI chat completions translated both ways.

The request translation lives in `request`, the stream state machine, finish reasons
and the usage rule in `stream`, error classification in `errors`; each
module's docstring lists its own deliberate decisions. This module holds the adapter, the model
families and the non-streaming answer. Decisions taken here:

- Config: `base_url` is the bare origin (default `https://api.anthropic.com`; a trailing `/v1` is
  tolerated) and requests go to `{base_url}/v1/messages` with `x-api-key` and `anthropic-version`
  (option `version`, default 2023-06-01). Option `beta` (a string or a list) becomes the
  `anthropic-beta` header; option `max_tokens` replaces the per-family default below.
- `max_tokens` is required by Anthropic (P7). When neither the client nor the route's `params`
  set it, the family default applies: 16384 for the 3.7 and 4.x families (well under each one's
  ceiling, large enough not to truncate ordinary answers, and short enough that a non-streaming
  answer cannot run into the 10-minute limits of clients), 8192 for 3.5 models and for model ids
  this table does not know (Anthropic-compatible servers often stop at 8192), and 4096, their
  ceiling, for Claude 3.
- P5: `single_sampling` marks the families that refuse `temperature` with `top_p` (Sonnet and
  Haiku 4.5, Opus 4.1 and later, and unknown ids, which are likelier new than old). Their
  profile declares the pair exclusive, so the parameter policy settles it before the request is
  built, and a dropped field is disclosed like any other: this adapter drops nothing itself.
- `reasoning_effort` is declared unsupported. Mapping it to a thinking budget would be easy, but
  with thinking on Anthropic requires every earlier assistant tool-use turn to start with its
  signed thinking block, which OpenAI clients do not keep: agent loops would fail on turn two.
  Thinking that an upstream sends anyway is passed on as `reasoning_content`.
- `accepted_params` are the fields translated, plus `n` and `logprobs`, whose only values that get
  past the capability check (1, false) need nothing sent, and the `top_k` extension.
- Answers keep Anthropic's `msg_...` id and model name, as the passthrough adapter keeps
  OpenAI's; text blocks are joined with nothing between them (they are consecutive pieces of one
  text, split by citations); tool inputs become compact JSON arguments. Server-tool blocks and
  every other type without an OpenAI form are left out, and a malformed block the client would
  see is an invalid upstream response: the same rules as the stream's (see `stream`).
- A request that came through the Messages door (`request.native`, protocol `anthropic`) is not
  translated at all: `passthrough` sends the client's own body and hands back the upstream's
  own answer beside its OpenAI reading. `/v1/messages/count_tokens` is asked of the same
  upstream through `count_tokens_request`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import httpx
import orjson

from ...capabilities import Capability, Profile
from ...chat import ChatRequest
from ...config import ProviderConfig
from ...errors import ConfigError, UpstreamError
from ...http.sse import ServerSentEvent
from ...native import NativeRequest, passes_through
from ...reply import Chunk, Completion
from ..base import StreamTranslator, Target
from ..chunks import completion
from ..classify import invalid_response, json_or_none
from ..http_provider import HTTPProvider
from ..sse_translator import SSETranslator
from .errors import anthropic_error
from .passthrough import NativeStream, forwarded_headers, message_with_model, native_body
from .request import JSON_TOOL, anthropic_body, effective_body, uses_json_tool
from .stream import AnthropicStream, finish_reason, openai_usage

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_VERSION", "AnthropicProvider", "ClaudeFamily", "claude_family", "register"]

DEFAULT_BASE_URL: Final = "https://api.anthropic.com"
DEFAULT_VERSION: Final = "2023-06-01"


@dataclass(frozen=True, slots=True)
class ClaudeFamily:
    """What the adapter knows about a family of model ids."""

    prefix: str
    max_output_tokens: int | None
    context_window: int | None
    default_max_tokens: int
    single_sampling: bool  # refuses temperature together with top_p (P5)
    vision: bool = True


# Longest prefix first: "claude-opus-4-1" must win over "claude-opus-4". Anthropic's published
# limits; the 1M-token context of some Sonnets needs a beta header, so 200k is declared.
_FAMILIES: Final = (
    ClaudeFamily("claude-opus-4-5", 64_000, 200_000, 16_384, True),
    ClaudeFamily("claude-opus-4-1", 32_000, 200_000, 16_384, True),
    ClaudeFamily("claude-opus-4", 32_000, 200_000, 16_384, False),
    ClaudeFamily("claude-sonnet-4-5", 64_000, 200_000, 16_384, True),
    ClaudeFamily("claude-sonnet-4", 64_000, 200_000, 16_384, False),
    ClaudeFamily("claude-haiku-4-5", 64_000, 200_000, 16_384, True),
    ClaudeFamily("claude-3-7-sonnet", 64_000, 200_000, 16_384, False),
    ClaudeFamily("claude-3-5-sonnet", 8_192, 200_000, 8_192, False),
    ClaudeFamily("claude-3-5-haiku", 8_192, 200_000, 8_192, False, vision=False),
    ClaudeFamily("claude-3-opus", 4_096, 200_000, 4_096, False),
    ClaudeFamily("claude-3-haiku", 4_096, 200_000, 4_096, False),
)
_UNKNOWN: Final = ClaudeFamily("", None, None, 8_192, True)

_ACCEPTED: Final = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "user",
        "n",
        "logprobs",
    }
)
_C = Capability
_SUPPORT: Final = {
    _C.STREAMING: True,
    _C.STREAM_USAGE: True,
    _C.TOOLS: True,
    _C.TOOL_CHOICE: True,
    _C.PARALLEL_TOOL_CALLS: True,
    _C.JSON_OBJECT: True,
    _C.JSON_SCHEMA: True,
    _C.VISION: True,
    _C.AUDIO_INPUT: False,
    _C.LOGPROBS: False,
    _C.MULTIPLE_CHOICES: False,
    _C.REASONING_EFFORT: False,
    _C.RESPONSES: False,
}
_RANGES: Final = MappingProxyType(
    {
        "temperature": (0.0, 1.0),
        "top_p": (0.0, 1.0),
        "max_tokens": (1, math.inf),  # Anthropic refuses max_tokens below 1
        "max_completion_tokens": (1, math.inf),
    }
)


def claude_family(model: str) -> ClaudeFamily:
    for family in _FAMILIES:
        if model.startswith(family.prefix):
            return family
    return _UNKNOWN


class AnthropicProvider(HTTPProvider):
    """Adapter for `type: anthropic`: Anthropic's Messages API and servers that speak it."""

    native_protocol: Final = "anthropic"  # requests from the Messages door pass through

    def __init__(self, config: ProviderConfig) -> None:
        base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        root = base_url if base_url.endswith("/v1") else base_url + "/v1"
        self._url = httpx.URL(root + "/messages")
        self._count_url = httpx.URL(root + "/messages/count_tokens")
        options = _Options.parse(config)
        self._max_tokens = options.max_tokens
        self._beta = tuple(options.beta)
        headers = {"anthropic-version": options.version}
        if options.beta:
            headers["anthropic-beta"] = ",".join(options.beta)
        operator = {k.lower(): v for k, v in config.headers.items()}
        self._fixed_headers = frozenset(operator)  # a client's protocol headers never replace these
        headers.update(operator)  # the operator's word wins
        if config.api_key:
            headers["x-api-key"] = config.api_key
        super().__init__(config, headers)

    def profile(self, model: str) -> Profile:
        family = claude_family(model)
        support = {capability.value: value for capability, value in _SUPPORT.items()}
        support[Capability.VISION.value] = family.vision
        return Profile(
            support=MappingProxyType(support),
            accepted_params=_ACCEPTED,
            exclusive_params=(("temperature", "top_p"),) if family.single_sampling else (),
            ranges=_RANGES,
            max_output_tokens=family.max_output_tokens,
            context_window=family.context_window,
        )

    def build_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        native = request.native
        if native is not None and passes_through(self, native):
            return self._native_post(self._url, request.stream, native_body(native, target), native)
        return self.post(self._url, request.stream, orjson.dumps(self.native_body(request, target)))

    def count_tokens_request(self, native: NativeRequest, target: Target) -> httpx.Request:
        """Anthropic's own token count for a `count_tokens` body from the Messages door."""
        return self._native_post(self._count_url, False, native_body(native, target), native)

    def _native_post(self, url: httpx.URL, stream: bool, body: bytes, native: NativeRequest) -> httpx.Request:
        return self.post(url, stream, body, forwarded_headers(native, self._beta, self._fixed_headers))

    def native_body(self, request: ChatRequest, target: Target) -> dict[str, Any]:
        """The Messages API body `build_request` sends."""
        family = claude_family(target.model)
        return anthropic_body(
            effective_body(request, target),
            model=target.model,
            default_max_tokens=self._max_tokens or family.default_max_tokens,
        )

    def parse_response(self, response: httpx.Response, body: bytes, request: ChatRequest, target: Target) -> Completion:
        data = json_or_none(body)
        if not isinstance(data, dict) or data.get("type") != "message" or not isinstance(data.get("content"), list):
            raise invalid_response(self._name, "a response that is not a message")
        # A passthrough client sees the blocks as they are, so it is owed the same check.
        malformed = _malformed_block(data["content"])
        if malformed is not None:
            raise invalid_response(self._name, malformed)
        if passes_through(self, request.native):
            # The upstream's own bytes, naming its own model like `data` does; the dispatcher
            # asks `completion_with_model` for the public name (`response_model`).
            return Completion(data=_completion(data, target.model, None), native=body)
        json_tool = JSON_TOOL if uses_json_tool(effective_body(request, target)) else None
        return Completion(data=_completion(data, target.model, json_tool))

    def completion_with_model(self, completion: Completion, model: str) -> Completion:
        """`completion` reporting `model`, its passthrough bytes included (the dispatcher's hook
        for `response_model`, which would otherwise drop them with `Completion.replace`)."""
        if completion.native is None:
            return completion.replace({**completion.data, "model": model})
        native = message_with_model(completion.native, completion.data.get("model"), model)
        return Completion({**completion.data, "model": model}, headers=completion.headers, native=native)

    def stream_translator(self, request: ChatRequest, target: Target) -> StreamTranslator:
        if passes_through(self, request.native):
            machine = AnthropicStream(self._name, target.model, include_usage=request.include_usage)
            return NativeStream(machine)
        json_tool = JSON_TOOL if uses_json_tool(effective_body(request, target)) else None
        return _Translator(
            AnthropicStream(self._name, target.model, include_usage=request.include_usage, json_tool=json_tool)
        )

    def error_from_response(self, response: httpx.Response, body: bytes) -> UpstreamError:
        return anthropic_error(self._name, body, status=response.status_code, headers=response.headers)


class _Translator(SSETranslator):
    """SSE framing in front of the event state machine in `stream`."""

    def __init__(self, machine: AnthropicStream) -> None:
        super().__init__()
        self._machine = machine

    def report_model(self, model: str) -> None:
        """Chunks say `model` as they are made (the dispatcher's hook for `response_model`)."""
        self._machine.report_model(model)

    def event(self, event: ServerSentEvent) -> list[Chunk]:
        chunks = self._machine.feed(event)
        self.finished = self._machine.done
        return chunks

    def end(self) -> list[Chunk]:
        return self._machine.close()


def _malformed_block(content: list[Any]) -> str | None:
    """What is wrong with a block the client would see, by the stream's rule (see `stream`)."""
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in ("text", "thinking") and not isinstance(block.get(kind), str):
            return f"a {kind} block whose {kind} is not a string"
        if kind == "tool_use" and not all(isinstance(block.get(k), str) and block[k] for k in ("id", "name")):
            return "a tool_use block without a string id and name"
    return None  # other blocks (server tools, their results, future types) are left out unread


def _completion(data: dict[str, Any], model: str, json_tool: str | None) -> dict[str, Any]:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    json_content: str | None = None
    for block in data["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block["text"])
        elif kind == "thinking":
            thoughts.append(block["thinking"])
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if json_tool is not None and block.get("name") == json_tool and json_content is None:
                json_content = arguments  # the structured answer, not a call for the client to run
            else:
                function = {"name": block.get("name"), "arguments": arguments}
                calls.append({"id": block.get("id"), "type": "function", "function": function})
    # The JSON is the whole answer when there is one: any text beside it would make it invalid.
    content = json_content if json_content is not None else "".join(texts) if texts else None
    usage = data.get("usage")
    out = completion(
        id=str(data.get("id") or "msg_unknown"),
        model=data["model"] if isinstance(data.get("model"), str) else model,
        content=content,
        tool_calls=calls,
        finish_reason=finish_reason(data.get("stop_reason"), tool_calls=bool(calls)),
        usage=openai_usage(usage if isinstance(usage, dict) else {}),
    )
    if thoughts:
        out["choices"][0]["message"]["reasoning_content"] = "".join(thoughts)
    return out


@dataclass(frozen=True, slots=True)
class _Options:
    version: str
    beta: Sequence[str]
    max_tokens: int | None

    @classmethod
    def parse(cls, config: ProviderConfig) -> _Options:
        path = f"providers.{config.name}"
        problems: list[str] = []
        version = config.options.get("version", DEFAULT_VERSION)
        if not isinstance(version, str) or not version:
            problems.append(f"{path}.version: expected a non-empty string such as {DEFAULT_VERSION!r}")
        beta = config.options.get("beta", [])
        beta = [beta] if isinstance(beta, str) else beta
        if not isinstance(beta, list) or not all(isinstance(b, str) and b for b in beta):
            problems.append(f"{path}.beta: expected a beta name or a list of them")
        max_tokens = config.options.get("max_tokens")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            problems.append(f"{path}.max_tokens: expected a whole number of tokens >= 1")
        if problems:
            raise ConfigError(problems)
        return cls(version=str(version), beta=tuple(beta), max_tokens=max_tokens)


def register(registry: Any) -> None:
    registry.register("anthropic", AnthropicProvider, options=("version", "beta", "max_tokens"))
