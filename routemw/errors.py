"""Every error routemw raises, organised by what the caller can do about it.

    RouteMWError                    rendered to clients in the OpenAI error envelope
    ├── ClientError                 the request is at fault; never retried
    │   ├── InvalidRequestError       400, names the offending `param`
    │   ├── AuthenticationError       401
    │   ├── PermissionDeniedError     403
    │   ├── NotFoundError             404 (unknown path, unknown model)
    │   ├── MethodNotAllowedError     405
    │   ├── PayloadTooLargeError      413
    │   ├── RateLimitError            429, a limit of routemw's own (rpm, tpm, concurrency)
    │   └── QuotaExceededError        402, a budget or token quota used up for the period
    ├── UpstreamError               one attempt at one provider failed; carries an `Action`
    │   └── UpstreamTimeoutError      the attempt ran out of time
    ├── AllTargetsFailedError       every candidate was tried; carries the attempt log
    ├── StateUnavailableError       503, the shared state store is away and `state.on_error` is closed
    └── ServerShuttingDownError     503, the server is draining (see `routemw.shutdown`)

    ConfigError                     startup only; lists every problem found, never rendered

An `UpstreamError` is classified exactly once, by the adapter that saw it (`Action.RETRY` the
same target, `Action.FALLBACK` to the next, `Action.STOP` and answer the client). Everything
above the adapter reads that decision and never second-guesses the status code.

What an error may say. A message that quotes the client's own input (a model name, a path, a
value) quotes it through `echo`, which keeps at most `ECHO_LIMIT` characters. Nothing in such a
message is ever redacted: blanking configured secrets out of text the client chose would tell
the client which of its guesses were secrets (an oracle), and the client already knows what it
sent. Text from an upstream is the opposite case: it may carry the provider's credentials (an
upstream that echoes the key it was given), so it is scrubbed with `UpstreamError.scrub` as soon
as the adapter hands it over, before any middleware, log handler or error reporter can see it.
Rendering then sends every message as it is.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ECHO_LIMIT",
    "Action",
    "AllTargetsFailedError",
    "Attempt",
    "AuthenticationError",
    "ClientError",
    "ConfigError",
    "InvalidRequestError",
    "MethodNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RouteMWError",
    "ServerShuttingDownError",
    "StateUnavailableError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "echo",
    "redact",
]

ECHO_LIMIT: Final = 64
REDACTED: Final = "[redacted]"


def echo(text: str) -> str:
    """Client input as an error message may quote it: at most `ECHO_LIMIT` characters, then "…".

    Enough for the client to recognise what it sent; never a way to have the gateway reflect a
    large or crafted input back.
    """
    return text if len(text) <= ECHO_LIMIT else text[:ECHO_LIMIT] + "…"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every one of `secrets` blanked out (pass the longest first)."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RouteMWError(Exception):
    """Base of every error that reaches a client as an OpenAI error envelope."""

    status_code: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    def envelope(self) -> dict[str, Any]:
        """The body OpenAI clients expect: all four keys present, `param`/`code` maybe null."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status_code}, code={self.code!r}, message={self.message!r})"


class ClientError(RouteMWError):
    """The request itself is wrong; retrying or falling back cannot help."""

    status_code = 400
    error_type = "invalid_request_error"


class InvalidRequestError(ClientError):
    status_code = 400


class AuthenticationError(ClientError):
    # OpenAI answers a bad key with type invalid_request_error, not authentication_error.
    status_code = 401
    code = "invalid_api_key"


class PermissionDeniedError(ClientError):
    status_code = 403
    code = "permission_denied"


class NotFoundError(ClientError):
    status_code = 404
    code = "not_found"


class MethodNotAllowedError(ClientError):
    status_code = 405
    code = "method_not_allowed"


class PayloadTooLargeError(ClientError):
    status_code = 413
    code = "request_too_large"


class RateLimitError(ClientError):
    """A limit of the gateway's own was reached; no upstream was called.

    `kind` is what ran out (`requests`, `tokens` or `concurrency`) and becomes the envelope's
    `type`, as in OpenAI's own 429s. `retry_after` (seconds) is when the request would be
    admitted, sent as `retry-after` (whole seconds, rounded up) and `retry-after-ms`; None for a
    request that waiting cannot admit (larger than the limit itself), which gets
    `x-should-retry: false` instead. `limit` is the same kind, for telemetry.
    """

    status_code = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, kind: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.error_type = kind
        self.limit: str = kind
        self.retry_after = retry_after
        if retry_after is None:
            self.headers["x-should-retry"] = "false"
        else:
            self.headers["retry-after"] = str(max(1, math.ceil(retry_after)))
            self.headers["retry-after-ms"] = str(max(1, math.ceil(retry_after * 1000)))


class QuotaExceededError(ClientError):
    """A budget or token quota is used up until its period resets; retrying sooner cannot help.

    `limit` says which, for telemetry: `budget` or `tokens_quota`.
    """

    status_code = 402
    error_type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message: str, *, limit: str = "budget") -> None:
        super().__init__(message, headers={"x-should-retry": "false"})
        self.limit = limit


class Action(enum.Enum):
    """What the router should do after an upstream failure."""

    RETRY = "retry"  # the same target may succeed on another try (429 rate limit, 5xx, network)
    FALLBACK = "fallback"  # this target cannot serve it now; the next one might (quota, 401, 404)
    STOP = "stop"  # the request is at fault; every target would reject it (400 about the content)


class UpstreamError(RouteMWError):
    """One attempt at one provider failed."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        action: Action,
        status: int | None = None,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        upstream_request_id: str | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.provider = provider
        self.action = action
        self.upstream_status = status
        # A hint that is not a finite, non-negative number (inf, nan, 1e400) is no hint at all.
        sane = retry_after is not None and math.isfinite(retry_after) and retry_after >= 0
        self.retry_after = retry_after if sane else None
        self.upstream_request_id = upstream_request_id
        self.deadline_bound = False
        # What the client sees when this error is returned as is (Action.STOP, or in-band after
        # a stream has started): a client-side status keeps the upstream's, anything else is a
        # gateway failure (502), since the caller did nothing wrong.
        self.status_code = status if status is not None and 400 <= status < 500 and status != 429 else 502
        self.error_type = error_type or ("invalid_request_error" if self.status_code < 500 else "upstream_error")
        if self.code is None and self.status_code == 502:
            self.code = "upstream_error"

    def scrub(self, secrets: Sequence[str]) -> None:
        """Blank `secrets` out of every piece of upstream text this error carries, in place.

        Called where the adapter hands the error over (the dispatcher), with that provider's own
        credentials; `str(error)` and tracebacks show the scrubbed message from then on.
        """
        if not secrets:
            return
        self.message = redact(self.message, secrets)
        self.args = (self.message,)
        for name in ("param", "code", "error_type", "upstream_request_id"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, redact(value, secrets))


class UpstreamTimeoutError(UpstreamError):
    """The attempt did not finish (or a stream did not start) within its timeout.

    `deadline_bound` marks an attempt cut short by the request's own deadline rather than by the
    provider's timeout: that says nothing about the provider's health.
    """

    def __init__(self, message: str, *, provider: str, deadline_bound: bool = False) -> None:
        super().__init__(message, provider=provider, action=Action.RETRY, code="upstream_timeout")
        self.deadline_bound = deadline_bound
        self.status_code = 504
        self.error_type = "timeout_error"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to one target, as reported to clients and traces (no URLs, no secrets)."""

    provider: str
    model: str
    status: int | None  # the upstream's HTTP status; None when there was no response
    code: str | None
    action: Action | None  # how the failure was classified; None for the attempt that answered
    latency: float = 0.0  # seconds
    retry_after: float | None = None  # the upstream's hint, when it gave one

    def describe(self) -> str:
        status = self.status if self.status is not None else "no response"
        return f"{self.provider}/{self.model}: {status} {self.code or ''}".rstrip()


class AllTargetsFailedError(RouteMWError):
    """Every candidate target failed, or the deadline passed; the message lists each attempt.

    429 (with `retry-after`) when every failure was a rate limit, 504 when the request's deadline
    passed, 502 otherwise; `x-should-retry: false` when no failure was of a kind that a later
    retry could fix (credentials, quota, missing models), so SDKs do not retry in vain.
    """

    error_type = "upstream_error"

    def __init__(self, model: str, attempts: Sequence[Attempt], *, deadline_passed: bool = False) -> None:
        self.attempts = tuple(attempts)
        tried = "; ".join(a.describe() for a in self.attempts) or "no target could be tried"
        if deadline_passed:
            message = (
                f"The deadline for model '{echo(model)}' passed before any upstream target answered. Tried: {tried}"
            )
        else:
            message = f"All upstream targets for model '{echo(model)}' failed: {tried}"
        super().__init__(message, code="upstream_error")
        failures = [a for a in self.attempts if a.action is not None]
        if deadline_passed or (failures and all(a.code == "upstream_timeout" for a in failures)):
            self.status_code = 504
            self.error_type = "timeout_error"
            self.code = "upstream_timeout"
        elif failures and all(a.status == 429 and a.action is Action.RETRY for a in failures):
            self.status_code = 429
            self.error_type = "rate_limit_error"
            self.code = "rate_limit_exceeded"
            hints = [a.retry_after for a in failures if a.retry_after is not None]
            self.headers["retry-after"] = str(max(1, math.ceil(min(hints, default=1.0))))
        else:
            self.status_code = 502
        if failures and all(a.action is Action.FALLBACK for a in failures):
            self.headers["x-should-retry"] = "false"


class StateUnavailableError(RouteMWError):
    """The shared state (Redis) did not answer and the operator chose to refuse rather than guess.

    `retry_after` is when the gateway will next try the store, so a client that waits that long
    is not refused again by a store that has recovered.
    """

    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, headers={"retry-after": str(max(1, math.ceil(retry_after)))})
        self.retry_after = retry_after


class ServerShuttingDownError(RouteMWError):
    """503: the server is shutting down; the request was refused, or ended at the drain deadline."""

    status_code = 503
    error_type = "server_error"
    code = "server_shutting_down"

    def __init__(self, message: str = "The server is shutting down; send the request again.") -> None:
        super().__init__(message)


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists every one found, each with its path."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))
