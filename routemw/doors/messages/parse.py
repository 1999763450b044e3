"""An Anthropic Messages request: decoded, checked as Anthropic checks it, then read into OpenAI terms.

`parse_messages_request` returns the canonical `ChatRequest` the pipeline carries, with the
client's own request on `native` (see `routemw.native`). An Anthropic route sends that native
request untouched; every other route gets the canonical body, through the same adapters an
OpenAI client's request goes through. The two steps live in their own modules: `check` (the
shape Anthropic accepts, which decides whether the request is taken at all) and `translate`
(the OpenAI body, and what it could not carry). This module only decodes the bytes and joins
the two into a `ChatRequest`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ...chat import ChatRequest
from ...duplicate_keys import first_duplicate_key
from ...errors import InvalidRequestError
from ...native import NativeRequest
from .check import check
from .translate import Reader

__all__ = ["FORWARDED_HEADERS", "PROTOCOL", "decode", "parse_messages_request"]

PROTOCOL: Final = "anthropic"
_INDEX: Final = re.compile(r"\[(\d+)\]")
FORWARDED_HEADERS: Final = ("anthropic-version", "anthropic-beta")


def decode(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, refused when it is not one or repeats a key."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"There was an error parsing the body of your request: {exc}.", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    # `check` and `translate` read the last of two equal keys, while an Anthropic route is sent the
    # client's bytes with both: what was checked and what the upstream reads could differ.
    try:
        path = first_duplicate_key(raw, body)
    except RecursionError:
        raise InvalidRequestError("The JSON body of your request is nested too deeply.", code="invalid_json") from None
    if path is not None:
        param = _INDEX.sub(r".\1", path)  # `messages[0].role` as this door names fields: `messages.0.role`
        raise InvalidRequestError(f"{param}: Duplicate key; send each key once.", param=param, code="duplicate_key")
    return body


def parse_messages_request(raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
    """Decode, check and translate a `/v1/messages` body; `InvalidRequestError` names the field."""
    body = decode(raw)
    check(body)
    reader = Reader()
    canonical = reader.request(body)
    forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
    native = NativeRequest(
        PROTOCOL,
        body,
        raw,
        forwarded,
        untranslatable=tuple(reader.untranslatable),
        lossy=tuple(dict.fromkeys(reader.lossy)),
    )
    return ChatRequest(body=canonical, native=native)
