"""Shared pieces of upstream failure classification: status defaults and retry hints."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from ..errors import Action, UpstreamError, UpstreamTimeoutError
from ..http.upstream import UpstreamBodyError

__all__ = ["action_for_status", "error_from_transport", "invalid_response", "json_or_none", "retry_after_seconds"]

# Statuses where the same target may well succeed on another try.
_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# Statuses that say this target cannot serve the request now, though another might: our
# credentials are refused, the model is gone there, or the account ran out of money.
_FALLBACK_STATUSES = frozenset({401, 402, 403, 404})


def action_for_status(status: int, headers: Mapping[str, str] | httpx.Headers | None = None) -> Action:
    """The default action for an upstream status, honouring `x-should-retry`."""
    hint = headers.get("x-should-retry") if headers is not None else None
    if hint == "true":
        return Action.RETRY
    if status in _RETRY_STATUSES or status >= 500:
        # The upstream told us that another try cannot help: move on instead.
        return Action.FALLBACK if hint == "false" else Action.RETRY
    if status in _FALLBACK_STATUSES:
        return Action.FALLBACK
    if 400 <= status < 500:
        return Action.STOP
    return Action.FALLBACK


def retry_after_seconds(headers: Mapping[str, str] | httpx.Headers, *, now: float | None = None) -> float | None:
    """`retry-after-ms`, else `retry-after` as seconds or an HTTP date; None when absent or bad."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def invalid_response(provider: str, what: str) -> UpstreamError:
    """The upstream answered with something that is not its protocol; another try may differ."""
    return UpstreamError(
        f"Provider '{provider}' sent {what}.", provider=provider, action=Action.RETRY, code="invalid_upstream_response"
    )


def json_or_none(data: bytes) -> Any:
    """Decoded JSON, or None when it is not JSON (for callers that report it in their own words)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


def error_from_transport(provider: str, exc: Exception) -> UpstreamError:
    """Connect errors, resets and read timeouts: the network, not the request, failed.

    A body that cannot be decoded, or is larger than the gateway takes (`UpstreamBodyError`,
    an `httpx.DecodingError`), is an invalid response: as retryable as any other.
    """
    if isinstance(exc, UpstreamBodyError):
        return invalid_response(provider, str(exc))
    if isinstance(exc, httpx.DecodingError):
        return invalid_response(provider, f"a body that does not decode ({exc})")
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"Timed out talking to provider '{provider}'.", provider=provider)
    kind = type(exc).__name__
    return UpstreamError(
        f"Could not reach provider '{provider}' ({kind}).",
        provider=provider,
        action=Action.RETRY,
        code="upstream_unreachable",
    )
