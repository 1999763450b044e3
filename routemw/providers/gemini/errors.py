"""Gemini error bodies -> a classified `UpstreamError`.

Gemini answers `{"error": {"code", "message", "status", "details"}}`, sometimes wrapped in a
one-element array, and does so on the streaming endpoint too (with an event-stream content type
and no `data:` framing). `status` is the google.rpc code name; `details` may hold `ErrorInfo`,
`RetryInfo`, `QuotaFailure` and others. The decisions:

- `INVALID_ARGUMENT` is the request's fault (STOP), except when `ErrorInfo.reason` says the
  gateway's own credentials are bad (`API_KEY_INVALID` and the other `API_KEY_*` reasons, a
  disabled service): that is a configuration problem at this target, so FALLBACK, and a client
  that ends up seeing it gets a 502, never a 400 "API key not valid" it could not have caused.
- `FAILED_PRECONDITION` (free tier not offered in the region, billing required),
  `PERMISSION_DENIED`, `UNAUTHENTICATED` and `NOT_FOUND` belong to this target: FALLBACK.
- `RESOURCE_EXHAUSTED`: a per-day quota (`QuotaFailure` or `ErrorInfo` quota ids containing
  `PerDay`) will not clear soon, so FALLBACK even when a `RetryInfo` is attached; anything else
  (per-minute limits, `RATE_LIMIT_EXCEEDED`) is RETRY, waiting `RetryInfo.retryDelay` when given.
- `UNAVAILABLE`, `INTERNAL`, `DEADLINE_EXCEEDED`: RETRY.
- The OpenAI envelope's `code` is the lower-cased rpc status (`resource_exhausted`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import httpx
import orjson

from ...errors import Action, UpstreamError
from ..classify import action_for_status, retry_after_seconds

__all__ = ["error_from_body", "error_payload", "gemini_error"]

_MAX_MESSAGE: Final = 2000
_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_STATUS_BY_RPC: Final = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_TARGET_PROBLEMS: Final = frozenset({"FAILED_PRECONDITION", "PERMISSION_DENIED", "UNAUTHENTICATED", "NOT_FOUND"})
_TRANSIENT: Final = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "UNKNOWN"})
_CREDENTIAL_REASONS: Final = frozenset({"SERVICE_DISABLED", "CONSUMER_SUSPENDED", "ACCESS_TOKEN_EXPIRED"})


def error_payload(data: Any) -> Mapping[str, Any] | None:
    """The `error` object of a Gemini error body (bare or in a one-element array), else None."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    error = data.get("error") if isinstance(data, Mapping) else None
    return error if isinstance(error, Mapping) else None


def gemini_error(
    provider: str, data: Any, *, status: int | None, headers: httpx.Headers | None = None
) -> UpstreamError:
    """Classify an error body; `status` is None for an error found inside a 200 stream."""
    error = error_payload(data) or {}
    rpc = error.get("status") if isinstance(error.get("status"), str) else None
    code = error.get("code")
    if status is None:
        status = code if isinstance(code, int) and not isinstance(code, bool) else _STATUS_BY_RPC.get(rpc or "")
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"Provider '{provider}' answered HTTP {status}." if status else f"Provider '{provider}' failed."
    details = _details(error.get("details"))
    reason = _reason(details)
    credentials = reason is not None and (reason.startswith("API_KEY_") or reason in _CREDENTIAL_REASONS)
    action = _action(rpc, status, headers, details, message, credentials)
    retry_after = _retry_delay(details)
    if retry_after is None and headers is not None:
        retry_after = retry_after_seconds(headers)
    if credentials:
        message = f"Provider '{provider}' refused the gateway's credentials ({reason}): {message}"
    failure = UpstreamError(
        message[:_MAX_MESSAGE],
        provider=provider,
        action=action,
        status=status,
        error_type="invalid_request_error" if action is Action.STOP else None,
        code=rpc.lower() if rpc else None,
        retry_after=retry_after if action is Action.RETRY else None,
        upstream_request_id=headers.get("x-request-id") if headers is not None else None,
    )
    if credentials:
        # The upstream said 400, but the caller did nothing wrong: if this error reaches a
        # client (in-band, after a stream started), it is the gateway's failure.
        failure.status_code = 502
        failure.error_type = "upstream_error"
    return failure


def error_from_body(provider: str, body: bytes, status: int, headers: httpx.Headers) -> UpstreamError:
    try:
        data: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        data = None  # an HTML page from a proxy, say: only the status tells anything
    return gemini_error(provider, data, status=status, headers=headers)


def _action(
    rpc: str | None,
    status: int | None,
    headers: httpx.Headers | None,
    details: Mapping[str, list[Mapping[str, Any]]],
    message: str,
    credentials: bool,
) -> Action:
    if credentials or rpc in _TARGET_PROBLEMS:
        return Action.FALLBACK
    if rpc == "RESOURCE_EXHAUSTED" or status == 429:
        return Action.FALLBACK if _per_day(details, message) else Action.RETRY
    if rpc in _TRANSIENT:
        return Action.RETRY
    if rpc == "INVALID_ARGUMENT":
        return Action.STOP
    return action_for_status(status, headers) if status is not None else Action.RETRY


def _details(raw: Any) -> dict[str, list[Mapping[str, Any]]]:
    """Details by type name (`ErrorInfo`, `RetryInfo`, ...), from their `@type` URLs."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for detail in raw if isinstance(raw, list) else ():
        if isinstance(detail, Mapping) and isinstance(detail.get("@type"), str):
            out.setdefault(detail["@type"].rsplit(".", 1)[-1], []).append(detail)
    return out


def _reason(details: Mapping[str, list[Mapping[str, Any]]]) -> str | None:
    for info in details.get("ErrorInfo", ()):
        reason = info.get("reason")
        if isinstance(reason, str) and reason:
            return reason
    return None


def _per_day(details: Mapping[str, list[Mapping[str, Any]]], message: str) -> bool:
    ids: list[Any] = []
    for failure in details.get("QuotaFailure", ()):
        for violation in failure.get("violations") or ():
            if isinstance(violation, Mapping):
                ids += [violation.get("quotaId"), violation.get("quotaMetric")]
    for info in details.get("ErrorInfo", ()):
        metadata = info.get("metadata")
        if isinstance(metadata, Mapping):
            ids.append(metadata.get("quota_limit"))
    return any(isinstance(i, str) and "perday" in i.lower() for i in ids) or "per day" in message.lower()


def _retry_delay(details: Mapping[str, list[Mapping[str, Any]]]) -> float | None:
    for info in details.get("RetryInfo", ()):
        delay = info.get("retryDelay")
        match = _DURATION.match(delay) if isinstance(delay, str) else None
        if match:
            return float(match.group(1))
    return None
