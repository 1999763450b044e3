"""Anthropic answers -> OpenAI shapes: the stream state machine, finish reasons and usage.

Deliberate decisions:

- Usage: `prompt_tokens = input_tokens + cache_creation_input_tokens + cache_read_input_tokens`,
  which is Anthropic's own definition of total input (OpenAI's `prompt_tokens` also counts cached
  tokens), and `prompt_tokens_details.cached_tokens = cache_read_input_tokens`.
  `completion_tokens = output_tokens`. In streams the counts are cumulative: the last
  `message_delta` wins over `message_start`.
- `thinking` is sent on as the non-standard `reasoning_content` delta (the name DeepSeek and vLLM
  use, which many clients show and strict ones ignore); signatures and `redacted_thinking` are
  dropped, since an OpenAI client has nowhere to keep them.
- Tool calls get OpenAI indexes from their own counter, because Anthropic's block `index` counts
  text and thinking blocks too. A call whose streamed arguments are empty gets `{}` (T5); a call
  given whole in `content_block_start` (some Anthropic-compatible servers) gets that input.
- The JSON response-format tool (see `request`) streams its input as content, and a
  `tool_use` stop with no other tool call finishes as "stop".
- The finish chunk goes out at the first `message_delta` with a `stop_reason`; the usage chunk (only
  when asked) at `message_stop`, or at the end of input when the upstream dropped `message_stop`
  after the stop reason. A stream that ends with no stop reason is `upstream_stream_truncated`,
  never a made-up "stop" (S7). `event: error` raises the classified error, whether or not
  content went out before it; the gateway decides between retrying and an in-band error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ...errors import Action, UpstreamError
from ...http.sse import ServerSentEvent
from ...reply import Chunk
from ..chunks import ChunkWriter, usage
from ..classify import invalid_response, json_or_none
from .errors import anthropic_error

__all__ = ["AnthropicStream", "finish_reason", "openai_usage"]

_FINISH: Final = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",  # only server tools pause, and the gateway sends none
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}


def finish_reason(stop_reason: Any, *, tool_calls: bool) -> str:
    """OpenAI's finish reason; `tool_calls` says whether any call reached the client."""
    reason = _FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"
    return "stop" if reason == "tool_calls" and not tool_calls else reason


def openai_usage(native: Mapping[str, Any]) -> dict[str, Any]:
    def count(key: str) -> int:
        value = native.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    cached = count("cache_read_input_tokens")
    prompt = count("input_tokens") + count("cache_creation_input_tokens") + cached
    return usage(prompt, count("output_tokens"), prompt_tokens_details={"cached_tokens": cached})


@dataclass(slots=True)
class _Block:
    kind: str  # "text", "tool", "json", "thinking" or "other"
    tool_index: int = -1
    sent: bool = False  # whether any argument text went out
    preset: Any = None  # the input given whole at the block's start


class AnthropicStream:
    """Turns one Anthropic event stream into OpenAI chunks; feed it the decoded events."""

    __slots__ = (
        "_blocks",
        "_include_usage",
        "_json_tool",
        "_model",
        "_provider",
        "_stop",
        "_tools",
        "_usage",
        "_writer",
        "done",
    )

    def __init__(self, provider: str, model: str, *, include_usage: bool, json_tool: str | None = None) -> None:
        self._provider = provider
        self._model = model
        self._include_usage = include_usage
        self._json_tool = json_tool
        self._writer: ChunkWriter | None = None
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._usage: dict[str, Any] = {}
        self._stop: str | None = None
        self.done = False  # message_stop seen: nothing after it matters

    def feed(self, event: ServerSentEvent) -> list[Chunk]:
        if self.done:
            return []
        payload = self._payload(event.data)
        kind = payload.get("type", event.event)
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        return handler(self, payload) if handler is not None else []  # ping and unknown events

    def close(self) -> list[Chunk]:
        """End of input: the usage chunk if it is still owed, or the truncation error."""
        return [] if self.done else self._end()

    @property
    def writer(self) -> ChunkWriter:
        if self._writer is None:  # content before message_start: a lenient compatible server
            self._writer = ChunkWriter(self._model, include_usage=self._include_usage)
        return self._writer

    def _payload(self, data: bytes) -> dict[str, Any]:
        payload = json_or_none(data)
        if payload is None:
            raise invalid_response(self._provider, "a stream event that is not JSON")
        return payload if isinstance(payload, dict) else {}

    def _end(self) -> list[Chunk]:
        self.done = True
        if self._stop is None:
            raise UpstreamError(
                f"Provider '{self._provider}' ended the stream before it finished.",
                provider=self._provider,
                action=Action.RETRY,
                code="upstream_stream_truncated",
            )
        chunk = self.writer.usage(openai_usage(self._usage))
        return [chunk] if chunk is not None else []

    def _merge_usage(self, native: Any) -> None:
        if isinstance(native, dict):
            self._usage.update({k: v for k, v in native.items() if v is not None})

    # -- events ---------------------------------------------------------------------------------

    def _message_start(self, payload: dict[str, Any]) -> list[Chunk]:
        message = payload.get("message")
        message = message if isinstance(message, dict) else {}
        model = _text(message.get("model")) or self._model
        message_id = _text(message.get("id"))
        self._writer = self._writer or ChunkWriter(model, id=message_id, include_usage=self._include_usage)
        self._merge_usage(message.get("usage"))
        return [self._writer.role()]

    def _block_start(self, payload: dict[str, Any]) -> list[Chunk]:
        block = payload.get("content_block")
        block = block if isinstance(block, dict) else {}
        kind = block.get("type")
        index = payload.get("index")
        out: list[Chunk] = []
        if kind == "text":
            state = _Block("text")
            if block.get("text"):
                out.append(self.writer.content(block["text"]))
        elif kind == "tool_use" and self._json_tool is not None and block.get("name") == self._json_tool:
            state = _Block("json", preset=block.get("input"))
        elif kind == "tool_use":
            state = _Block("tool", self._tools, preset=block.get("input"))
            self._tools += 1
            out.append(self.writer.tool_call_start(state.tool_index, str(block.get("id")), str(block.get("name"))))
        elif kind == "thinking":
            state = _Block("thinking")
            if block.get("thinking"):
                out.append(self.writer.reasoning(block["thinking"]))
        else:
            state = _Block("other")  # redacted thinking, server tools: nothing an OpenAI client can use
        if isinstance(index, int):
            self._blocks[index] = state
        return out

    def _block_delta(self, payload: dict[str, Any]) -> list[Chunk]:
        block = self._block(payload)
        delta = payload.get("delta")
        if block is None or not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self.writer.content(delta["text"])]
        if kind == "thinking_delta" and delta.get("thinking"):
            return [self.writer.reasoning(delta["thinking"])]
        if kind == "input_json_delta" and delta.get("partial_json"):
            block.sent = True
            return [self._arguments(block, delta["partial_json"])]
        return []  # signature_delta, citations_delta, empty fragments

    def _block_stop(self, payload: dict[str, Any]) -> list[Chunk]:
        block = self._block(payload)
        if block is None or block.kind not in ("tool", "json") or block.sent:
            return []
        block.sent = True
        whole = orjson.dumps(block.preset).decode() if isinstance(block.preset, dict) and block.preset else "{}"
        return [self._arguments(block, whole)]

    def _block(self, payload: dict[str, Any]) -> _Block | None:
        index = payload.get("index")
        return self._blocks.get(index) if isinstance(index, int) else None

    def _arguments(self, block: _Block, text: str) -> Chunk:
        if block.kind == "json":
            return self.writer.content(text)
        return self.writer.tool_call_arguments(block.tool_index, text)

    def _message_delta(self, payload: dict[str, Any]) -> list[Chunk]:
        self._merge_usage(payload.get("usage"))
        delta = payload.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
        if not isinstance(stop, str) or self._stop is not None:
            return []
        self._stop = stop
        return [self.writer.finish(finish_reason(stop, tool_calls=self._tools > 0))]

    def _message_stop(self, payload: dict[str, Any]) -> list[Chunk]:
        return self._end()

    def _error(self, payload: dict[str, Any]) -> list[Chunk]:
        raise anthropic_error(self._provider, payload, status=None, headers=None)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


_HANDLERS: Final[Mapping[str, Callable[[AnthropicStream, dict[str, Any]], list[Chunk]]]] = {
    "message_start": AnthropicStream._message_start,
    "content_block_start": AnthropicStream._block_start,
    "content_block_delta": AnthropicStream._block_delta,
    "content_block_stop": AnthropicStream._block_stop,
    "message_delta": AnthropicStream._message_delta,
    "message_stop": AnthropicStream._message_stop,
    "error": AnthropicStream._error,
}
