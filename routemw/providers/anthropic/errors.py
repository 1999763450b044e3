"""Anthropic errors -> `UpstreamError`, classified once.

Anthropic's body is `{"type": "error", "error": {"type", "message"}, "request_id"}`; the same
`error` object arrives as an `event: error` inside a 200 stream. Each error type has a status
(used when there is no HTTP status, as in a stream) and an OpenAI-style `code`:

    invalid_request_error  400  STOP      the request is at fault; the message is kept
    authentication_error   401  FALLBACK  invalid_api_key: the gateway's key, not the client's
    billing_error          402  FALLBACK  insufficient_quota
    permission_error       403  FALLBACK  permission_denied
    not_found_error        404  FALLBACK  model_not_found
    request_too_large      413  STOP      request_too_large (Cloudflare answers it, maybe as HTML)
    rate_limit_error       429  RETRY     rate_limit_exceeded, honouring retry-after
    api_error              500  RETRY     upstream_error
    timeout_error          504  RETRY     upstream_timeout
    overloaded_error       529  RETRY     upstream_overloaded

The action comes from `action_for_status`, so `x-should-retry` wins as it does for the SDK.
One exception: an exhausted credit balance arrives as a 400 `invalid_request_error` ("Your
credit balance is too low..."), which is the account's problem, not the request's: it falls
back, with code `insufficient_quota`. A 529 never reaches a client as 529: `UpstreamError` shows
every status outside 4xx as a 502 (wire-formats E3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import httpx
import orjson

from ...errors import Action, UpstreamError
from ..classify import action_for_status, retry_after_seconds

__all__ = ["ERROR_TYPES", "anthropic_error"]

# Anthropic error type -> (the status it comes with, the OpenAI-style code reported).
ERROR_TYPES: Final[Mapping[str, tuple[int, str | None]]] = {
    "invalid_request_error": (400, None),
    "authentication_error": (401, "invalid_api_key"),
    "billing_error": (402, "insufficient_quota"),
    "permission_error": (403, "permission_denied"),
    "not_found_error": (404, "model_not_found"),
    "request_too_large": (413, "request_too_large"),
    "rate_limit_error": (429, "rate_limit_exceeded"),
    "api_error": (500, "upstream_error"),
    "timeout_error": (504, "upstream_timeout"),
    "overloaded_error": (529, "upstream_overloaded"),
}
_CREDIT_EXHAUSTED: Final = "credit balance is too low"
_MAX_MESSAGE: Final = 2000


def anthropic_error(
    provider: str, body: bytes | Mapping[str, Any] | None, *, status: int | None, headers: httpx.Headers | None
) -> UpstreamError:
    """The classified error for an error body (HTTP) or an `event: error` payload (status None)."""
    payload = _load(body)
    error = payload.get("error")
    error = error if isinstance(error, dict) else {}
    error_type = error.get("type") if isinstance(error.get("type"), str) else None
    message = error.get("message") if isinstance(error.get("message"), str) else None
    typical_status, code = ERROR_TYPES.get(error_type or "", (None, None))
    effective = status if status is not None else typical_status or 500
    action = action_for_status(effective, headers)
    if message and _CREDIT_EXHAUSTED in message.lower():
        action, code = Action.FALLBACK, "insufficient_quota"  # another provider can still serve it
    elif status is not None and code is None and error_type is None:
        code = _code_for_status(status)  # not Anthropic's own body (a proxy's HTML page, say)
    request_id = headers.get("request-id") if headers is not None else None
    return UpstreamError(
        (message or f"Provider '{provider}' answered HTTP {effective}.")[:_MAX_MESSAGE],
        provider=provider,
        action=action,
        status=effective,
        error_type="invalid_request_error" if action is Action.STOP else None,
        code=code,
        retry_after=retry_after_seconds(headers) if headers is not None else None,
        upstream_request_id=request_id or _str(payload.get("request_id")),
    )


def _load(body: bytes | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        payload = None
    return payload if isinstance(payload, dict) else {}


def _code_for_status(status: int) -> str | None:
    for typical, code in ERROR_TYPES.values():
        if typical == status:
            return code
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
