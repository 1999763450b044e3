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
- Only blocks the client can use reach it: `text`, `thinking`, the client's own `tool_use` blocks
  and the JSON tool. Every other block, whatever it holds, is passed over: server tools
  (`server_tool_use` for web search or code execution, `mcp_tool_use`) are Anthropic's own calls,
  already run, not calls for the client to make; their results (`web_search_tool_result`,
  `mcp_tool_result`, ...), `container_upload`, `redacted_thinking` and types yet to come have no
  OpenAI form. The answer around them streams on, and a server tool alone never makes the finish
  `tool_calls`; the non-streamed answer (`adapter`) leaves out the same blocks.
- Within a block the client sees, only the delta types that carry its content are read
  (`text_delta`, `thinking_delta`, `input_json_delta`); others (`signature_delta`,
  `citations_delta`, future ones) are ignored, as Anthropic asks of clients.
- Malformed events are judged by one rule: what would put wrong data in front of the client is
  an invalid upstream response (retryable, and in-band after the commit point), never guessed
  at; what touches nothing the client sees is ignored. So a text, thinking or arguments fragment
  that is not a string, a client `tool_use` start without a string `id` and `name`, and a
  `content_block_start`, `_delta` or `_stop` whose `index` names no started block (a delta
  before its block's start included: the block's kind, and so its owner, is unknown) are
  `invalid_upstream_response`; the same defects inside a block that is passed over are not
  looked at. Fragments are never sent as anything but strings.
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
        "_reported",
        "_stop",
        "_tools",
        "_usage",
        "_writer",
        "done",
    )

    def __init__(self, provider: str, model: str, *, include_usage: bool, json_tool: str | None = None) -> None:
        self._provider = provider
        self._model = model
        self._reported: str | None = None  # the name every chunk reports, when told one
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

    def report_model(self, model: str) -> None:
        """Make every chunk say `model`, whatever the upstream's `message_start` names."""
        self._reported = model

    def close(self) -> list[Chunk]:
        """End of input: the usage chunk if it is still owed, or the truncation error."""
        return [] if self.done else self._end()

    @property
    def writer(self) -> ChunkWriter:
        if self._writer is None:  # content before message_start: a lenient compatible server
            self._writer = ChunkWriter(self._reported or self._model, include_usage=self._include_usage)
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
        model = self._reported or _text(message.get("model")) or self._model
        message_id = _text(message.get("id"))
        self._writer = self._writer or ChunkWriter(model, id=message_id, include_usage=self._include_usage)
        self._merge_usage(message.get("usage"))
        return [self._writer.role()]

    def _block_start(self, payload: dict[str, Any]) -> list[Chunk]:
        index = _index(payload)
        block = payload.get("content_block")
        block = block if isinstance(block, dict) else {}
        kind = block.get("type")
        if index is None:
            raise self._invalid("a content block without an index")
        out: list[Chunk] = []
        if kind == "text":
            state = _Block("text")
            start_text = self._fragment(block.get("text", ""), "text")
            if start_text:
                out.append(self.writer.content(start_text))
        elif kind == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
                raise self._invalid("a tool_use block without a string id and name")
            if self._json_tool is not None and name == self._json_tool:
                state = _Block("json", preset=block.get("input"))
            else:
                state = _Block("tool", self._tools, preset=block.get("input"))
                self._tools += 1
                out.append(self.writer.tool_call_start(state.tool_index, call_id, name))
        elif kind == "thinking":
            state = _Block("thinking")
            start_thinking = self._fragment(block.get("thinking", ""), "thinking")
            if start_thinking:
                out.append(self.writer.reasoning(start_thinking))
        else:
            state = _Block("other")  # server tools and their results, redacted thinking, future types
        self._blocks[index] = state
        return out

    def _block_delta(self, payload: dict[str, Any]) -> list[Chunk]:
        block = self._block(payload)
        if block.kind == "other":
            return []  # not the client's: its deltas are not even looked at
        delta = payload.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        field = _CONTENT_FIELD.get((block.kind, kind)) if isinstance(kind, str) else None
        if field is None or not isinstance(delta, dict):
            return []  # signature_delta, citations_delta, types yet to come
        fragment = self._fragment(delta.get(field), field)
        if not fragment:
            return []  # empty fragments, such as the first input_json_delta
        if block.kind == "text":
            return [self.writer.content(fragment)]
        if block.kind == "thinking":
            return [self.writer.reasoning(fragment)]
        block.sent = True
        return [self._arguments(block, fragment)]

    def _block_stop(self, payload: dict[str, Any]) -> list[Chunk]:
        block = self._block(payload)
        if block.kind not in ("tool", "json") or block.sent:
            return []
        block.sent = True
        whole = orjson.dumps(block.preset).decode() if isinstance(block.preset, dict) and block.preset else "{}"
        return [self._arguments(block, whole)]

    def _block(self, payload: dict[str, Any]) -> _Block:
        index = _index(payload)
        block = self._blocks.get(index) if index is not None else None
        if block is None:
            raise self._invalid("a content block event for a block that never started")
        return block

    def _fragment(self, value: Any, field: str) -> str:
        """`value` when it is a string; it is bound for the client, so anything else is refused."""
        if isinstance(value, str):
            return value
        raise self._invalid(f"a {field} fragment that is not a string")

    def _invalid(self, what: str) -> UpstreamError:
        return invalid_response(self._provider, what)

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


def _index(payload: dict[str, Any]) -> int | None:
    index = payload.get("index")
    return index if type(index) is int else None  # not bool, which `isinstance` would let through


# Which field of which delta type carries a visible block's content; any other pair is ignored.
_CONTENT_FIELD: Final = {
    ("text", "text_delta"): "text",
    ("thinking", "thinking_delta"): "thinking",
    ("tool", "input_json_delta"): "partial_json",
    ("json", "input_json_delta"): "partial_json",
}


_HANDLERS: Final[Mapping[str, Callable[[AnthropicStream, dict[str, Any]], list[Chunk]]]] = {
    "message_start": AnthropicStream._message_start,
    "content_block_start": AnthropicStream._block_start,
    "content_block_delta": AnthropicStream._block_delta,
    "content_block_stop": AnthropicStream._block_stop,
    "message_delta": AnthropicStream._message_delta,
    "message_stop": AnthropicStream._message_stop,
    "error": AnthropicStream._error,
}
