"""The embeddings request and answer in OpenAI's shape, which is the canonical one for `/v1/embeddings`.

`parse_embeddings_request` checks a body as OpenAI documents it and returns a `ChatRequest` of
kind `embeddings` whose body is the client's own object (unknown fields ride along, as for
chat: an OpenAI-compatible server may take extensions such as `input_type`). Checked: `model`
a non-empty string; `input` a non-empty string, or a non-empty list of at most 2,048 items that
are all strings (none empty), all integers (one token array), or all non-empty integer lists
(token arrays); `encoding_format` `float` or `base64`; `dimensions` a whole number >= 1;
`user` a string. A bad field is a 400 naming it (`input[3]`), as for chat.

The rest is shared by every adapter and the dispatcher, so each adapter only translates:
`inputs` lists what is to be embedded, one entry per vector; `batches` splits a request into
requests of at most `limit` inputs (an upstream's batch limit), in order; `join` puts their
answers back together, re-indexed and with usage summed; `base64_vector` is the client's
`encoding_format: base64` made by the gateway from floats (little-endian float32, exactly what
OpenAI sends and the SDKs decode) for an upstream that only gives floats.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any, Final

import orjson

from .chat import ChatRequest, check_unique_keys, decode_object
from .errors import InvalidRequestError
from .reply import Completion

__all__ = [
    "MAX_INPUTS",
    "base64_vector",
    "batches",
    "inputs",
    "join",
    "parse_embeddings_request",
]

MAX_INPUTS: Final = 2048  # OpenAI's limit on the items of `input`, and so the door's


def _invalid(param: str, message: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_embeddings_request(raw: bytes) -> ChatRequest:
    """Decode and check a `/v1/embeddings` body; `InvalidRequestError` naming the bad field."""
    body = decode_object(raw)
    check_unique_keys(raw, body)
    model = body.get("model")
    if "model" not in body:
        raise _invalid("model", "Missing required parameter: 'model'.", "missing_required_parameter")
    if not isinstance(model, str):
        raise _invalid("model", f"Invalid type for 'model': expected a string, but got {_kind(model)}.", "invalid_type")
    if not model:
        raise _invalid("model", "'model' must not be empty.")
    if "input" not in body:
        raise _invalid("input", "Missing required parameter: 'input'.", "missing_required_parameter")
    _check_input(body["input"])
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        shown = orjson.dumps(encoding).decode()[:40]
        raise _invalid("encoding_format", f"Invalid value for 'encoding_format': {shown}; use 'float' or 'base64'.")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions < 1):
        raise _invalid("dimensions", "Invalid value for 'dimensions': expected a whole number of at least 1.")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _invalid("user", f"Invalid type for 'user': expected a string, but got {_kind(user)}.", "invalid_type")
    return ChatRequest(body=body, raw=raw, kind="embeddings")


_INPUT_SHAPES: Final = "a string, an array of strings, an array of integers, or an array of arrays of integers"


def _check_input(value: Any) -> None:
    if isinstance(value, str):
        if not value:
            raise _invalid("input", "'input' must not be an empty string.")
        return
    if not isinstance(value, list):
        raise _invalid("input", f"Invalid type for 'input': expected {_INPUT_SHAPES}, but got {_kind(value)}.")
    if not value:
        raise _invalid("input", "'input' must not be an empty array.", "empty_array")
    if len(value) > MAX_INPUTS:
        raise _invalid(
            "input", f"'input' has {len(value)} items; at most {MAX_INPUTS} are allowed.", "array_above_max_length"
        )
    first = value[0]
    if isinstance(first, str):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise _invalid(f"input[{i}]", f"Invalid type for 'input[{i}]': expected a string like the others.")
            if not item:
                raise _invalid(f"input[{i}]", f"'input[{i}]' must not be an empty string.")
    elif _is_int(first):
        for i, item in enumerate(value):
            if not _is_int(item):
                message = f"Invalid type for 'input[{i}]': expected an integer token like the others."
                raise _invalid(f"input[{i}]", message)
    elif isinstance(first, list):
        for i, item in enumerate(value):
            if not isinstance(item, list) or not item:
                raise _invalid(f"input[{i}]", f"'input[{i}]' must be a non-empty array of integer tokens.")
            if not all(_is_int(token) for token in item):
                raise _invalid(f"input[{i}]", f"'input[{i}]' must contain integer tokens only.")
    else:
        raise _invalid("input[0]", f"Invalid type for 'input[0]': expected {_INPUT_SHAPES}, but got {_kind(first)}.")


def inputs(body: Any) -> list[Any]:
    """One entry per vector asked for: a text, or a token array."""
    value = body["input"]
    if isinstance(value, str) or (isinstance(value, list) and value and _is_int(value[0])):
        return [value]
    return list(value)


def batches(request: ChatRequest, limit: int) -> list[ChatRequest]:
    """`request` split into requests of at most `limit` inputs each, in order; itself when it fits."""
    items = inputs(request.body)
    if len(items) <= limit:
        return [request]
    return [
        ChatRequest(body={**request.body, "input": items[start : start + limit]}, kind="embeddings")
        for start in range(0, len(items), limit)
    ]


def join(parts: Sequence[Completion]) -> Completion:
    """The answers to `batches` as one answer: vectors in order, re-indexed, usage summed."""
    if len(parts) == 1:
        return parts[0]
    data: list[Any] = []
    prompt = total = 0
    for part in parts:
        # An OpenAI answer travels as its bytes (`native`), its vectors unread until now.
        whole = orjson.loads(part.native) if part.native is not None else part.data
        for item in whole.get("data") or ():
            data.append({**item, "index": len(data)})
        usage = part.data.get("usage") or {}
        prompt += usage.get("prompt_tokens") or 0
        total += usage.get("total_tokens") or 0
    first = {key: value for key, value in parts[0].data.items() if key != "data"}
    out = {**first, "data": data, "usage": {"prompt_tokens": prompt, "total_tokens": total}}
    headers: dict[str, str] = {}
    for part in parts:
        headers.update(part.headers)
    return Completion(data=out, headers=headers)


def base64_vector(vector: Sequence[float]) -> str:
    """A float vector as OpenAI's base64 encoding: little-endian float32 values."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
