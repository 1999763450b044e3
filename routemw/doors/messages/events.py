"""The reply stream as Anthropic's event stream: the `StreamEncoder` of the Messages door.

Two cases, told apart by the first chunk:

- **Passthrough** (an Anthropic route): every chunk carries its upstream event's bytes in
  `native`, and those are written as they are; nothing is parsed or built here. A chunk that a
  middleware replaced has lost its `native` bytes (see `routemw.reply`) and cannot be shown
  inside someone else's event sequence, so it is left out; a middleware that must change what
  an Anthropic client sees of a passthrough stream builds chunks with `native` set.
- **Translated** (any other route): OpenAI chunks are rendered as events, a state machine
  written for Anthropic's grammar. `message_start` (with the model the answer reports, the public
  id unless the model's `response_model` is `upstream`, and input usage
  estimated from the request since OpenAI-shaped upstreams report usage only at the end; a
  missing or zeroed usage there broke strict clients) comes with the first chunk. Each run of
  text, reasoning (only when the client asked for thinking) or one tool call is a block:
  `content_block_start`, its deltas (`text_delta`, `thinking_delta`, `input_json_delta` with the
  argument fragments as they arrive), `content_block_stop` when the next block begins or the
  answer ends. At the end comes one `message_delta` with the stop reason (see `render`) and the
  cumulative usage (the upstream's, whose input count replaces the estimate; an estimate from
  the characters sent when the upstream gave none), then `message_stop`.

Keep-alives are `event: ping`. An error after the commit point is `event: error` in Anthropic's
envelope, and nothing follows it (no `message_stop`), as Anthropic's own streams end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from ...errors import RouteMWError
from ...reply import Chunk
from .errors import error_event
from .ids import to_anthropic
from .render import anthropic_usage, message_id, stop_reason

__all__ = ["PING", "MessageEvents"]

PING: Final = b'event: ping\ndata: {"type": "ping"}\n\n'


def _event(name: bytes, payload: Mapping[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessageEvents:
    """One stream's encoder; `batch`, `end` and `error` as `routemw.http.responses.StreamEncoder`."""

    __slots__ = (
        "_block",
        "_blocks",
        "_finish",
        "_follow",
        "_input_estimate",
        "_kind",
        "_model",
        "_native",
        "_output_chars",
        "_refusal",
        "_started",
        "_thinking",
        "_tools",
        "_usage",
    )

    ping = PING

    def __init__(self, *, model: str, input_estimate: int, thinking: bool, follow_upstream: bool = False) -> None:
        self._model = model
        self._follow = follow_upstream  # report the name the first chunk gives, when it gives one
        self._input_estimate = input_estimate
        self._thinking = thinking
        self._native: bool | None = None  # decided by the first chunk
        self._started = False
        self._blocks = 0  # blocks opened so far; the next one's index
        self._block = -1  # the open block's index, -1 when none is open
        self._kind = ""  # the open block's type
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> block index
        self._finish: Any = None
        self._refusal = False
        self._usage: Mapping[str, Any] | None = None
        self._output_chars = 0

    # -- StreamEncoder

    def batch(self, chunks: list[Chunk]) -> bytes:
        out: list[bytes] = []
        for chunk in chunks:
            native = chunk.native
            if self._native is None:
                self._native = native is not None
            if self._native:
                if native:
                    out.append(native)
            else:
                self._render(chunk.data, out)
        return b"".join(out)

    def end(self) -> bytes:
        if self._native:
            return b""
        out: list[bytes] = []
        self._start(None, out)
        self._close_block(out)
        usage = anthropic_usage(
            self._usage,
            input_estimate=self._input_estimate,
            output_estimate=(self._output_chars + 3) // 4,
        )
        reason = stop_reason(self._finish, tool_use=bool(self._tools), refusal=self._refusal)
        delta = {"stop_reason": reason, "stop_sequence": None}
        out.append(_event(b"message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        return b"".join(out)

    def error(self, exc: RouteMWError) -> bytes:
        return error_event(exc)

    # -- rendering OpenAI chunks

    def _start(self, data: Mapping[str, Any] | None, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        named = data.get("model") if self._follow and data is not None else None
        usage = {
            "input_tokens": self._input_estimate,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
        }
        message: dict[str, Any] = {
            "id": message_id(data.get("id") if data is not None else None),
            "type": "message",
            "role": "assistant",
            "model": named if isinstance(named, str) else self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        out.append(_event(b"message_start", {"type": "message_start", "message": message}))

    def _render(self, data: Mapping[str, Any], out: list[bytes]) -> None:
        self._start(data, out)
        usage = data.get("usage")
        if isinstance(usage, Mapping):
            self._usage = usage
        choices = data.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Anthropic has one answer; n > 1 is never asked of a translated target
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            if choice.get("finish_reason") is not None:
                self._finish = choice["finish_reason"]

    def _delta(self, delta: Mapping[str, Any], out: list[bytes]) -> None:
        reasoning = delta.get("reasoning_content")
        if self._thinking and isinstance(reasoning, str) and reasoning:
            self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._append({"type": "thinking_delta", "thinking": reasoning}, out)
        for key in ("content", "refusal"):
            text = delta.get(key)
            if isinstance(text, str) and text:
                self._refusal = self._refusal or key == "refusal"
                self._output_chars += len(text)
                self._open("text", {"type": "text", "text": ""}, out)
                self._append({"type": "text_delta", "text": text}, out)
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict):
                self._tool_call(call, out)

    def _tool_call(self, call: Mapping[str, Any], out: list[bytes]) -> None:
        index = call.get("index")
        if not isinstance(index, int):
            # T8: a delta with an id starts a call, one without continues the latest.
            index = len(self._tools) if call.get("id") or not self._tools else next(reversed(self._tools))
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        block = self._tools.get(index)
        if block is None:
            self._close_block(out)
            block = self._blocks
            self._tools[index] = block
            opening = {
                "type": "tool_use",
                "id": to_anthropic(str(call.get("id") or f"call_{index}")),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            self._open_new("tool_use", opening, out)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._output_chars += len(arguments)
            # A fragment for a call whose block already closed (upstreams do not interleave calls,
            # but nothing forbids it) still goes to that call's own index.
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(_event(b"content_block_delta", {"type": "content_block_delta", "index": block, "delta": delta}))

    def _open(self, kind: str, opening: dict[str, Any], out: list[bytes]) -> None:
        if self._block >= 0 and self._kind == kind:
            return
        self._close_block(out)
        self._open_new(kind, opening, out)

    def _open_new(self, kind: str, opening: dict[str, Any], out: list[bytes]) -> None:
        self._block = self._blocks
        self._blocks += 1
        self._kind = kind
        out.append(
            _event(
                b"content_block_start", {"type": "content_block_start", "index": self._block, "content_block": opening}
            )
        )

    def _append(self, delta: dict[str, Any], out: list[bytes]) -> None:
        out.append(
            _event(b"content_block_delta", {"type": "content_block_delta", "index": self._block, "delta": delta})
        )

    def _close_block(self, out: list[bytes]) -> None:
        if self._block < 0:
            return
        out.append(b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n' % self._block)
        self._block = -1
        self._kind = ""
