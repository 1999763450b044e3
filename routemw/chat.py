"""The chat completion request as the client sent it, checked but never rebuilt.

The request body stays the JSON object the client sent (`ChatRequest.body`): a key the client
sent is present with exactly its value (`0`, `false`, `""`, `[]` and `null` included), a key it
did not send is absent, and unknown keys ride along untouched. That is the whole of
"presence preservation": there is no model class with defaults that could be confused with
values, so nothing needs `exclude_unset` discipline. Validation checks only the shape the gateway
relies on and the JSON types of the well-known fields, and names the offending field path in
the 400, as OpenAI does (`messages[2].content`).

The original bytes are kept too, so a passthrough to an OpenAI-shaped upstream that changes
nothing can forward them without re-encoding. That is only safe because a body that repeats a
key (at any depth) is refused: the parsed view keeps the last of the two, the bytes keep both,
and an upstream that reads the first would see a request routemw never checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from .duplicate_keys import first_duplicate_key
from .errors import InvalidRequestError, echo
from .native import NativeRequest

__all__ = ["Affinity", "ChatRequest", "RequestKind", "check_unique_keys", "decode_object", "parse_chat_request"]

# What a request asks for: a chat completion, embeddings (`/v1/embeddings`), or a response of
# OpenAI's Responses API (`/v1/responses`). The canonical body has that kind's OpenAI shape.
RequestKind = Literal["chat", "embeddings", "responses"]

# JSON types, as Python sees them after decoding. bool is checked before int on purpose:
# in Python `True` is an int, in JSON it is not.
_NUMBER: Final = "number"
_INTEGER: Final = "integer"
_BOOLEAN: Final = "boolean"
_STRING: Final = "string"
_OBJECT: Final = "object"
_ARRAY: Final = "array"

# The well-known top-level fields and the JSON types OpenAI accepts for each (null is always
# accepted: OpenAI documents every optional field as nullable or ignores null). Range checks are
# left to the upstream, which knows its own limits; routemw only refuses what no provider takes.
_FIELD_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    "stream": (_BOOLEAN,),
    "stream_options": (_OBJECT,),
    "temperature": (_NUMBER,),
    "top_p": (_NUMBER,),
    "n": (_INTEGER,),
    "stop": (_STRING, _ARRAY),
    "max_tokens": (_INTEGER,),
    "max_completion_tokens": (_INTEGER,),
    "presence_penalty": (_NUMBER,),
    "frequency_penalty": (_NUMBER,),
    "logit_bias": (_OBJECT,),
    "logprobs": (_BOOLEAN,),
    "top_logprobs": (_INTEGER,),
    "seed": (_INTEGER,),
    "user": (_STRING,),
    "tools": (_ARRAY,),
    "tool_choice": (_STRING, _OBJECT),
    "parallel_tool_calls": (_BOOLEAN,),
    "response_format": (_OBJECT,),
    "reasoning_effort": (_STRING,),
    "metadata": (_OBJECT,),
    "store": (_BOOLEAN,),
    "modalities": (_ARRAY,),
    "service_tier": (_STRING,),
}

_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Roles whose `content` may be absent or null (an assistant turn that only calls tools).
_CONTENT_OPTIONAL: Final = frozenset({"assistant", "function"})


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return _BOOLEAN
    if isinstance(value, int):
        return _INTEGER
    if isinstance(value, float):
        return _NUMBER
    if isinstance(value, str):
        return _STRING
    if isinstance(value, list):
        return _ARRAY
    return _OBJECT


def _accepts(expected: tuple[str, ...], actual: str) -> bool:
    return actual in expected or (actual == _INTEGER and _NUMBER in expected)


def _type_error(param: str, expected: tuple[str, ...], actual: str) -> InvalidRequestError:
    wanted = " or ".join(expected)
    return InvalidRequestError(
        f"Invalid type for '{param}': expected {wanted}, but got {actual}.",
        param=param,
        code="invalid_type",
    )


@dataclass(frozen=True, slots=True)
class Affinity:
    """State a request builds on that only the provider holding it can serve (see `routemw.affinity`).

    `continues` names the provider-held objects the request refers to (`response:ID`,
    `conversation:ID`); `remember` says the answer's id names such an object too, so the
    gateway notes which provider made it.
    """

    continues: tuple[str, ...] = ()
    remember: bool = False


@dataclass(slots=True)
class ChatRequest:
    """A validated chat completion request: the client's JSON object, and its bytes."""

    body: dict[str, Any]
    raw: bytes | None = field(default=None, repr=False)
    # Set by a door other than OpenAI chat: the client's request before translation (see
    # `routemw.native`); an adapter that speaks that protocol sends it instead of `body`.
    native: NativeRequest | None = field(default=None, repr=False)
    kind: RequestKind = "chat"
    affinity: Affinity | None = None

    @property
    def model(self) -> str:
        model: str = self.body["model"]
        return model

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body["messages"]
        return messages

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def without(self, *keys: str) -> ChatRequest:
        """A copy without `keys`; the original bytes no longer describe it, so they are not kept."""
        body = {k: v for k, v in self.body.items() if k not in keys}
        return ChatRequest(body=body, native=self.native, kind=self.kind, affinity=self.affinity)

    def has(self, key: str) -> bool:
        """Whether the client sent `key` at all, whatever its value."""
        return key in self.body


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Decode and check a request body; raise `InvalidRequestError` naming the bad field."""
    body = decode_object(raw)
    check_unique_keys(raw, body)
    _check_model(body)
    _check_messages(body)
    for key, expected in _FIELD_TYPES.items():
        if key in body and body[key] is not None:
            actual = _json_type(body[key])
            if not _accepts(expected, actual):
                raise _type_error(key, expected, actual)
    return ChatRequest(body=body, raw=raw)


def decode_object(raw: bytes) -> dict[str, Any]:
    """The JSON object in `raw`; `InvalidRequestError` when it is not JSON or not an object."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"We could not parse the JSON body of your request: {exc}.", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequestError(
            f"The request body must be a JSON object, not {_json_type(body)}.", code="invalid_json"
        )
    return body


def check_unique_keys(raw: bytes, body: dict[str, Any]) -> None:
    # The parsed body keeps the last of two equal keys, while the bytes forwarded keep both: what
    # routemw checks and what an upstream reads could differ. See `duplicate_keys`.
    try:
        path = first_duplicate_key(raw, body)
    except RecursionError:
        raise InvalidRequestError("The JSON body of your request is nested too deeply.", code="invalid_json") from None
    if path is not None:
        raise InvalidRequestError(
            f"The JSON body of your request repeats the key '{path}'; send each key once.",
            param=path,
            code="duplicate_key",
        )


def _check_model(body: dict[str, Any]) -> None:
    if "model" not in body:
        raise InvalidRequestError(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    model = body["model"]
    if not isinstance(model, str):
        raise _type_error("model", (_STRING,), _json_type(model))
    if not model:
        raise InvalidRequestError("'model' must not be empty.", param="model", code="invalid_value")


def _check_messages(body: dict[str, Any]) -> None:
    if "messages" not in body:
        raise InvalidRequestError(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _type_error("messages", (_ARRAY,), _json_type(messages))
    if not messages:
        raise InvalidRequestError("'messages' must contain at least one message.", param="messages", code="empty_array")
    for index, message in enumerate(messages):
        _check_message(f"messages[{index}]", message)


def _check_message(path: str, message: Any) -> None:
    if not isinstance(message, dict):
        raise _type_error(path, (_OBJECT,), _json_type(message))
    role = message.get("role")
    if not isinstance(role, str):
        if role is None:
            raise InvalidRequestError(
                f"Missing required parameter: '{path}.role'.", param=f"{path}.role", code="missing_required_parameter"
            )
        raise _type_error(f"{path}.role", (_STRING,), _json_type(role))
    if role not in _ROLES:
        raise InvalidRequestError(
            f"Invalid value: '{echo(role)}'. Supported values are: {', '.join(sorted(_ROLES))}.",
            param=f"{path}.role",
            code="invalid_value",
        )
    content = message.get("content")
    if content is None:
        if role not in _CONTENT_OPTIONAL:
            raise InvalidRequestError(
                f"Missing required parameter: '{path}.content'.",
                param=f"{path}.content",
                code="missing_required_parameter",
            )
    elif isinstance(content, list):
        for index, part in enumerate(content):
            part_path = f"{path}.content[{index}]"
            if not isinstance(part, dict):
                raise _type_error(part_path, (_OBJECT,), _json_type(part))
            if not isinstance(part.get("type"), str):
                raise InvalidRequestError(
                    f"Missing required parameter: '{part_path}.type'.",
                    param=f"{part_path}.type",
                    code="missing_required_parameter",
                )
    elif not isinstance(content, str):
        raise _type_error(f"{path}.content", (_STRING, _ARRAY), _json_type(content))
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise InvalidRequestError(
            f"Missing required parameter: '{path}.tool_call_id'.",
            param=f"{path}.tool_call_id",
            code="missing_required_parameter",
        )
    tool_calls = message.get("tool_calls")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise _type_error(f"{path}.tool_calls", (_ARRAY,), _json_type(tool_calls))
