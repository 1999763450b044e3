"""Anthropic in, Anthropic out: the client's request and the upstream's answer, untouched.

When a request came through the Messages door (`routemw.doors.messages`) and its target is an
Anthropic route, there is nothing to translate: the client's body goes upstream as it was sent,
and the upstream's answer comes back as it was sent. Thinking blocks and their signatures,
`cache_control`, `metadata`, documents, server tools and fields newer than this code all
survive, because nothing here reads them. Decisions:

- Only `model` changes on the way in, to the route's upstream model; when it is already that,
  the client's bytes go out as they are (no re-encoding). The route's `params` fill fields the
  client left out where they have a Messages equivalent (`temperature`, `top_p`, `top_k`,
  `stop` as `stop_sequences`); a route's output limit never applies, since `max_tokens` is
  required of the client.
- The client's `anthropic-version` and `anthropic-beta` headers go upstream unchanged, in
  place of the provider's configured ones; betas configured on the provider and not named by
  the client are added after the client's. Headers the operator set in the provider's
  `headers` still win, as they do for every request. The client's credentials never travel.
- On the way out only `model` changes, to the public model id when the model's `response_model`
  is `public` (the default; the dispatcher asks for it through `report_model` on the stream and
  `completion_with_model` on the adapter, and with `upstream` nothing changes). It is spliced
  into the upstream's bytes: found cheaply as the first `"model"` key before the first
  `"content"` key (Anthropic writes `id`, `type`, `role`, `model`, then `content`); in a body
  ordered otherwise, the first `"model"` key with the upstream's value whose splice decodes to
  the same message with the new model (one more parse, only for such bodies); failing both,
  the answer is re-encoded with the new model, which changes nothing but whitespace and escapes.
- Every answer is also read into OpenAI's shape by the same code as a translated one (the
  `data` of the `Completion` and of each `Chunk`), so usage accounting, commit detection and
  every middleware see what they always see; the client gets the `native` bytes. Each stream
  event is one chunk; an event that means nothing in OpenAI terms (a ping, a block stop) carries
  an empty `choices` list. An `event: error` raises the classified error as in a translated
  stream, so before the commit point it is retried or falls back like any other failure.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from ...http.sse import ServerSentEvent, encode_data
from ...native import NativeRequest
from ...reply import Chunk
from ..base import Target
from ..sse_translator import SSETranslator
from .stream import AnthropicStream

__all__ = ["NativeStream", "forwarded_headers", "message_with_model", "native_body", "with_model"]

# Route params in OpenAI's vocabulary that have a Messages equivalent.
_PARAMS: Final = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "stop": "stop_sequences"}
_PROTOCOL_HEADERS: Final = ("anthropic-version", "anthropic-beta")
_MODEL: Final = b'"model"'
_CONTENT: Final = b'"content"'
_WHITESPACE: Final = b" \t\r\n"
# The OpenAI reading of an event that says nothing to an OpenAI client. Shared and never
# changed: a middleware that wants another builds a new chunk.
_NOTHING: Final[dict[str, Any]] = {"object": "chat.completion.chunk", "choices": []}


def native_body(native: NativeRequest, target: Target) -> bytes:
    """The client's body for `target`: its bytes when nothing changes, else re-encoded."""
    body = native.body
    defaults = {
        _PARAMS[key]: value
        for key, value in target.params.items()
        if key in _PARAMS and value is not None and _PARAMS[key] not in body
    }
    if body.get("model") == target.model and not defaults:
        return native.raw
    out = dict(body)
    out["model"] = target.model
    for key, value in defaults.items():
        out[key] = [value] if key == "stop_sequences" and isinstance(value, str) else value
    return orjson.dumps(out)


def forwarded_headers(
    native: NativeRequest, configured_beta: tuple[str, ...], fixed: frozenset[str]
) -> tuple[tuple[str, str], ...]:
    """The client's protocol headers to send in place of the provider's own (see the docstring)."""
    out: list[tuple[str, str]] = []
    for name in _PROTOCOL_HEADERS:
        value = native.headers.get(name)
        if value is None or name in fixed:
            continue
        if name == "anthropic-beta" and configured_beta:
            named = {part.strip() for part in value.split(",")}
            extra = [beta for beta in configured_beta if beta not in named]
            value = ",".join([value, *extra]) if extra else value
        out.append((name, value))
    return tuple(out)


def with_model(raw: bytes, upstream_model: Any, public_model: str) -> bytes | None:
    """`raw` with its message's `model` value replaced, or None when it cannot be found safely."""
    if upstream_model == public_model:
        return raw
    if not isinstance(upstream_model, str):
        return None
    start = raw.find(_MODEL)
    content = raw.find(_CONTENT)
    if start < 0 or (0 <= content < start):
        return None
    return _splice_at(raw, start, orjson.dumps(upstream_model), public_model)


def _skip(raw: bytes, at: int) -> int:
    while raw[at : at + 1] and raw[at : at + 1] in _WHITESPACE:
        at += 1
    return at


def message_with_model(raw: bytes, upstream_model: Any, public_model: str) -> bytes:
    """A `message` body (naming `upstream_model`) with the public model id, spliced when possible."""
    spliced = with_model(raw, upstream_model, public_model)
    if spliced is not None:
        return spliced
    data = orjson.loads(raw)  # only for a body ordered unlike Anthropic's
    wanted = {**data, "model": public_model}
    if isinstance(upstream_model, str):
        value = orjson.dumps(upstream_model)
        at = raw.find(_MODEL)
        while at >= 0:
            candidate = _splice_at(raw, at, value, public_model)
            if candidate is not None and orjson.loads(candidate) == wanted:
                return candidate
            at = raw.find(_MODEL, at + 1)
    return orjson.dumps(wanted)


def _splice_at(raw: bytes, key: int, value: bytes, public_model: str) -> bytes | None:
    at = _skip(raw, key + len(_MODEL))
    if raw[at : at + 1] != b":":
        return None
    at = _skip(raw, at + 1)
    if raw[at : at + len(value)] != value:
        return None
    return raw[:at] + orjson.dumps(public_model) + raw[at + len(value) :]


class NativeStream(SSETranslator):
    """An Anthropic stream passed on event by event, each also read into OpenAI chunks."""

    def __init__(self, machine: AnthropicStream) -> None:
        super().__init__()
        self._machine = machine
        self._public_model: str | None = None  # None: the upstream's name stays

    def report_model(self, model: str) -> None:
        """Say `model` in `message_start` and in every chunk (the dispatcher's `response_model` hook)."""
        self._public_model = model
        self._machine.report_model(model)

    def event(self, event: ServerSentEvent) -> list[Chunk]:
        chunks = self._machine.feed(event)  # raises the classified error for `event: error`
        self.finished = self._machine.done
        data = event.data
        if event.event == "message_start" and self._public_model is not None:
            data = self._start(data, self._public_model)
        framed = encode_data(data)
        if event.event != "message":  # an event without a name line stays without one
            framed = b"event: " + event.event.encode() + b"\n" + framed
        if not chunks:
            return [Chunk(_NOTHING, native=framed)]
        # The event's bytes go with its first chunk; any further ones have nothing of their own.
        return [Chunk(c.data, native=framed if i == 0 else b"") for i, c in enumerate(chunks)]

    def end(self) -> list[Chunk]:
        # What the machine makes of the end (the usage chunk, when message_stop never came) has
        # no event of its own to show an Anthropic client.
        return [Chunk(c.data, native=b"") for c in self._machine.close()]

    def _start(self, data: bytes, model: str) -> bytes:
        payload = orjson.loads(data)  # the machine has parsed it already: it is a JSON object
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, dict):
            return data
        spliced = with_model(data, message.get("model"), model)
        if spliced is not None:
            return spliced
        return orjson.dumps({**payload, "message": {**message, "model": model}})
