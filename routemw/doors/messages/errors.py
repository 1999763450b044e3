"""routemw's errors in Anthropic's envelope, from one mapping of the error tree.

`{"type": "error", "error": {"type", "message"}, "request_id"}`, with the status Anthropic uses
for that type, so the official SDKs raise the exception a direct call would. The type follows
from the status routemw decided, which already says whose fault it was and what to do, so new
error classes (limits, quotas) map without being listed here:

    400 and other 4xx   invalid_request_error   unknown-field refusals, unsupported capability
    401                 authentication_error    unknown or expired key
    402                 billing_error           a used-up quota or budget
    403                 permission_error
    404                 not_found_error         unknown model, or one the key may not use
    413                 request_too_large
    429                 rate_limit_error        limits, and every upstream rate-limited
    503, 529            overloaded_error        sent as 529, Anthropic's status for it
    504                 timeout_error
    other 5xx           api_error               upstream failures (502)

One refinement by code: when the upstream said it is overloaded (Anthropic's
`overloaded_error`, OpenAI's `server_is_overloaded`), on the only attempt or on every failed one,
the answer is an `overloaded_error` even though routemw reports it as a 502. After the commit point of a stream the
same error goes out as `event: error`. Messages are sent as they are, like every error routemw
renders (upstream text was scrubbed where the error was made; see `routemw.errors`).
"""

from __future__ import annotations

from typing import Final

import orjson

from ...errors import AllTargetsFailedError, RouteMWError

__all__ = ["error_body", "error_event", "error_status", "error_type"]

_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OVERLOADED: Final = 529
_OVERLOADED_CODES: Final = frozenset({"upstream_overloaded", "server_is_overloaded"})


def error_type(exc: RouteMWError) -> str:
    if exc.code in _OVERLOADED_CODES:
        return "overloaded_error"
    if isinstance(exc, AllTargetsFailedError):
        failures = [a for a in exc.attempts if a.action is not None]
        if failures and all(a.code in _OVERLOADED_CODES for a in failures):
            return "overloaded_error"
    status = exc.status_code
    known = _TYPES.get(status)
    if known is not None:
        return known
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def error_status(exc: RouteMWError) -> int:
    return _OVERLOADED if error_type(exc) == "overloaded_error" else exc.status_code


def error_body(exc: RouteMWError, request_id: str | None) -> bytes:
    body: dict[str, object] = {"type": "error", "error": {"type": error_type(exc), "message": exc.message}}
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)


def error_event(exc: RouteMWError) -> bytes:
    return b"event: error\ndata: " + error_body(exc, None) + b"\n\n"
