"""The Responses door: `POST /v1/responses`, OpenAI's Responses API, passed through to OpenAI-type routes.

Only routes that speak OpenAI's protocol (`type: openai`, any OpenAI-compatible server, and
`type: azure`) serve it, through their own Responses endpoint; Anthropic and Gemini routes are
left out by the capability check (a 400 naming `model` when nothing else is left). So the
request is not translated: the door checks the fields the gateway relies on and hands the
pipeline a small canonical request of kind `responses` (`model`, `stream`, the output limit as
`max_completion_tokens`, the client's bytes for the size estimate) with the client's own
request on `native`, which the adapter sends (`routemw.providers.openai.responses`).

Checked, each a 400 naming the field: a JSON object with each key once; `model` a non-empty
string (the gateway routes on it); `stream`, `store`, `background` booleans; `input` a string
or an array; `instructions` and `previous_response_id` strings; `conversation` a string or an
object with a string `id`, and not together with `previous_response_id`; `max_output_tokens` a
whole number. The rest is the upstream's to judge.

A continuation (`previous_response_id`, `conversation`) is pinned to the provider that holds
it (`routemw.affinity`); an answer's id is remembered unless `store` is false.

Answers are the upstream's bytes: the JSON `response`, or its event stream event by event. An
error before the stream starts is OpenAI's error envelope; one after it is an `error` event
(`{"type": "error", "code", "message", "param", "sequence_number"}`); `response.failed` and
`error` events the upstream sends after that point pass through as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import orjson

from ..chat import Affinity, ChatRequest, check_unique_keys, decode_object
from ..errors import InvalidRequestError, RouteMWError
from ..http.asgi import Send
from ..http.responses import send_error, send_json, send_stream
from ..http.sse import encode_comment, encode_data
from ..native import NativeRequest
from ..pipeline import Call
from ..reply import Chunk, Completion, Reply

__all__ = ["PROTOCOL", "RESPONSES_PATH", "ResponsesDoor", "parse_responses_request"]

RESPONSES_PATH: Final = "/v1/responses"
PROTOCOL: Final = "openai"  # the adapters that speak it get the client's request as it is

_TYPES: Final[Mapping[str, tuple[type, ...]]] = {
    "stream": (bool,),
    "store": (bool,),
    "background": (bool,),
    "input": (str, list),
    "instructions": (str,),
    "previous_response_id": (str,),
    "conversation": (str, dict),
}
_NAMES: Final = {bool: "boolean", str: "string", list: "array", dict: "object"}


def parse_responses_request(raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
    body = decode_object(raw)
    check_unique_keys(raw, body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        if "model" not in body:
            raise InvalidRequestError(
                "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
            )
        raise InvalidRequestError("'model' must be a non-empty string.", param="model", code="invalid_value")
    for key, types in _TYPES.items():
        value = body.get(key)
        if value is not None and (not isinstance(value, types) or (bool not in types and isinstance(value, bool))):
            wanted = " or ".join(_NAMES[t] for t in types)
            raise InvalidRequestError(f"Invalid type for '{key}': expected {wanted}.", param=key, code="invalid_type")
    limit = body.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise InvalidRequestError(
            "Invalid type for 'max_output_tokens': expected an integer.", param="max_output_tokens", code="invalid_type"
        )
    continues: list[str] = []
    previous = body.get("previous_response_id")
    if previous:
        continues.append(f"response:{previous}")
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
        if not isinstance(conversation, str):
            raise InvalidRequestError(
                "Invalid type for 'conversation.id': expected a string.", param="conversation.id", code="invalid_type"
            )
    if conversation:
        if previous:
            raise InvalidRequestError(
                "'previous_response_id' cannot be used together with 'conversation'.",
                param="conversation",
                code="invalid_value",
            )
        continues.append(f"conversation:{conversation}")
    stream = body.get("stream") is True
    canonical: dict[str, Any] = {"model": model, "messages": [], "stream": stream}
    if stream:
        # Usage comes in `response.completed` whatever is asked; saying so keeps the gateway
        # from asking for it another way.
        canonical["stream_options"] = {"include_usage": True}
    if isinstance(limit, int):
        canonical["max_completion_tokens"] = limit
    return ChatRequest(
        body=canonical,
        raw=raw,
        native=NativeRequest(PROTOCOL, body, raw, {}),
        kind="responses",
        affinity=Affinity(continues=tuple(continues), remember=body.get("store") is not False),
    )


class _Events:
    """The upstream's events as they came; the gateway's own in-band error as an `error` event."""

    ping: Final = encode_comment("ping")

    def __init__(self) -> None:
        self.sent = 0  # events written, which is the next sequence number

    def batch(self, chunks: list[Chunk]) -> bytes:
        events = [chunk.native for chunk in chunks if chunk.native]
        self.sent += len(events)
        return b"".join(events)

    def end(self) -> bytes:
        return b""

    def error(self, exc: RouteMWError) -> bytes:
        error = exc.envelope()["error"]
        payload = {
            "type": "error",
            "code": error.get("code"),
            "message": error.get("message"),
            "param": error.get("param"),
            "sequence_number": self.sent,
        }
        return b"event: error\n" + encode_data(orjson.dumps(payload))


class ResponsesDoor:
    """`POST /v1/responses`; errors in OpenAI's envelope."""

    def __init__(self, *, keepalive: float) -> None:
        self.keepalive = keepalive

    def parse(self, raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
        return parse_responses_request(raw, headers)

    async def send_error(self, send: Send, exc: RouteMWError, headers: Mapping[str, str]) -> None:
        await send_error(send, exc, headers)

    async def send_reply(
        self,
        send: Send,
        call: Call,
        reply: Reply,
        headers: Mapping[str, str],
        interrupt: AbstractAsyncContextManager[None] | None = None,
    ) -> None:
        if isinstance(reply, Completion):
            # A middleware that replaced the answer dropped the upstream's bytes; its own JSON goes.
            await send_json(send, 200, reply.native if reply.native is not None else reply.encode(), headers)
            return
        await send_stream(send, reply, headers, keepalive=self.keepalive, interrupt=interrupt, encoder=_Events())
