"""OpenAI's Responses API passed through: the client's request out, the upstream's answer back.

Only a route whose adapter speaks OpenAI's protocol serves `/v1/responses` (see
`routemw.doors.responses`), so nothing is translated: the client's body goes upstream with only
`model` changed to the route's (its own bytes when that changes nothing), and the answer comes
back as the upstream sent it. Beside the bytes, each answer is also read into OpenAI chat terms
(`Completion.data`, `Chunk.data`), as the Anthropic passthrough does, so the gateway's usage
meter, commit point and middleware see what they always see:

- a `response` object reads as `{id, object, model, usage}` with the usage in chat terms
  (`input_tokens` as `prompt_tokens`, cached and reasoning details likewise);
- a stream event reads as a chunk: `response.output_text.delta` as a content delta, a function
  call's argument delta as a tool-call delta, `response.completed` / `response.incomplete` as a
  finish (`stop` / `length`) with usage, and every other event as a chunk with no choices. So
  the stream commits, as chat does, at the first text, tool call or finish; `response.created`
  and the events before output are held until then.
- `response.failed` and `error` before the commit point are failures like an error status:
  classified from the event's `code`, retried or passed to the next route. After it they are
  passed to the client as the provider sent them (a reading with no choices), since the client
  has already seen the response begin. A stream that ends without `response.completed`,
  `response.incomplete` or `response.failed` is reported cut short.
- With `response_model: public`, the `model` of the response object (in the JSON answer and in
  the events that carry the response) is the public id; those few events are re-encoded, text
  deltas never are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from ...errors import Action, UpstreamError
from ...http.sse import ServerSentEvent, encode_data
from ...native import NativeRequest
from ...reply import Chunk, Completion
from ..base import Target
from ..classify import invalid_response
from ..sse_translator import SSETranslator

__all__ = ["ResponsesStream", "chat_usage", "native_body", "reading", "renamed"]

_HELD: Final = frozenset({"response.created", "response.in_progress", "response.queued"})
_FINISH: Final = {"response.completed": "stop", "response.incomplete": "length"}
_FAILED: Final = frozenset({"response.failed", "error"})
_WITH_RESPONSE: Final = frozenset({*_HELD, *_FINISH, "response.failed"})
# Codes of an in-stream failure that another attempt may not hit; anything else is retried.
_RATE: Final = frozenset({"rate_limit_exceeded"})
_CLIENT: Final = frozenset({"invalid_prompt", "invalid_request_error", "context_length_exceeded"})


def native_body(native: NativeRequest, target: Target) -> bytes:
    """The client's body for `target`: its bytes when the model name is already the route's."""
    if native.body.get("model") == target.model:
        return native.raw
    return orjson.dumps({**native.body, "model": target.model})


def chat_usage(usage: Any) -> dict[str, Any] | None:
    """A Responses `usage` in chat terms, or None when there is none."""
    if not isinstance(usage, Mapping):
        return None
    prompt = usage.get("input_tokens")
    completion = usage.get("output_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": usage.get("total_tokens", prompt + completion),
    }
    inputs = usage.get("input_tokens_details")
    if isinstance(inputs, Mapping) and isinstance(inputs.get("cached_tokens"), int):
        out["prompt_tokens_details"] = {"cached_tokens": inputs["cached_tokens"]}
    outputs = usage.get("output_tokens_details")
    if isinstance(outputs, Mapping) and isinstance(outputs.get("reasoning_tokens"), int):
        out["completion_tokens_details"] = {"reasoning_tokens": outputs["reasoning_tokens"]}
    return out


def reading(response: Mapping[str, Any]) -> dict[str, Any]:
    """A `response` object in the chat terms every middleware reads."""
    out: dict[str, Any] = {"id": response.get("id"), "object": "response", "model": response.get("model")}
    usage = chat_usage(response.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def parse_response_body(provider: str, body: bytes) -> Completion:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or data.get("object") != "response" or not isinstance(data.get("id"), str):
        raise invalid_response(provider, "a response that is not a Responses API `response`")
    return Completion(data=reading(data), native=body)


def renamed(completion: Completion, model: str) -> Completion:
    """A Responses answer reporting `model`, in its bytes and in its reading."""
    data = {**completion.data, "model": model}
    native = completion.native
    if native is not None:
        payload = orjson.loads(native)
        if payload.get("model") != model:
            native = orjson.dumps({**payload, "model": model})
    return Completion(data=data, headers=completion.headers, native=native)


class ResponsesStream(SSETranslator):
    """A Responses event stream passed on event by event, each also read as a chat chunk."""

    def __init__(self, provider: str) -> None:
        super().__init__()
        self._provider = provider
        self._model: str | None = None  # the public model to report, when set
        self._committed = False  # a meaningful chunk has been produced: the client sees what follows
        self._id: str | None = None

    def report_model(self, model: str) -> None:
        self._model = model

    def event(self, event: ServerSentEvent) -> list[Chunk]:
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            raise invalid_response(self._provider, "a stream event that is not JSON") from None
        if not isinstance(payload, dict):
            raise invalid_response(self._provider, "a stream event that is not an object")
        kind = payload.get("type")
        name = event.event if event.event != "message" else kind
        data = event.data
        response = payload.get("response")
        if kind in _FAILED:
            self.finished = kind == "response.failed"
            if not self._committed:
                raise self._failure(payload)
        if kind in _WITH_RESPONSE and isinstance(response, dict):
            if isinstance(response.get("id"), str):
                self._id = response["id"]
            if self._model is not None and response.get("model") != self._model:
                response = {**response, "model": self._model}
                data = orjson.dumps({**payload, "response": response})
        framed = encode_data(data)
        if isinstance(name, str):
            framed = b"event: " + name.encode() + b"\n" + framed
        chunk = self._read(kind, payload, response)
        if kind in _FINISH:
            self.finished = True
        return [Chunk(chunk, native=framed)]

    def _read(self, kind: Any, payload: Mapping[str, Any], response: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self._id, "object": "chat.completion.chunk", "choices": []}
        if isinstance(response, Mapping):
            out["model"] = response.get("model")
        if kind == "response.output_text.delta":
            delta = payload.get("delta")
            if isinstance(delta, str) and delta:
                out["choices"] = [{"index": 0, "delta": {"content": delta}, "finish_reason": None}]
                self._committed = True
        elif kind == "response.function_call_arguments.delta":
            index = payload.get("output_index", 0)
            call = {"index": index, "function": {"arguments": payload.get("delta") or ""}}
            out["choices"] = [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]
            self._committed = True
        elif kind in _FINISH:
            out["choices"] = [{"index": 0, "delta": {}, "finish_reason": _FINISH[kind]}]
            self._committed = True
        if isinstance(response, Mapping):
            usage = chat_usage(response.get("usage"))
            if usage is not None:
                out["usage"] = usage
        return out

    def _failure(self, payload: Mapping[str, Any]) -> UpstreamError:
        error: Any = payload
        if payload.get("type") == "response.failed":
            response = payload.get("response")
            error = response.get("error") if isinstance(response, Mapping) else None
        fields = error if isinstance(error, Mapping) else {}
        code = fields.get("code") if isinstance(fields.get("code"), str) else None
        message = fields.get("message") if isinstance(fields.get("message"), str) else None
        action = Action.STOP if code in _CLIENT else Action.RETRY
        return UpstreamError(
            (message or f"Provider '{self._provider}' reported a failed response.")[:2000],
            provider=self._provider,
            action=action,
            status=429 if code in _RATE else 400 if action is Action.STOP else None,
            error_type="invalid_request_error" if action is Action.STOP else None,
            code=code or "upstream_error",
        )

    def end(self) -> list[Chunk]:
        if not self.finished:
            raise UpstreamError(
                f"Provider '{self._provider}' ended the stream before the response finished.",
                provider=self._provider,
                action=Action.RETRY,
                code="upstream_stream_truncated",
            )
        return []
