"""OpenAI's rate-limit headers, from an admission's standings.

`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`: the limit per minute, what is left
after this request's reservation, and how long until the limit is back to full, written as
OpenAI writes durations (`17ms`, `1s`, `1.5s`, `6m0s`, `1h2m0s`). Where several scopes limit the
same thing (a key's rpm and its model's), the headers describe the one with the least left.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .store import Rate, Standing

__all__ = ["duration", "ratelimit_headers"]


def duration(seconds: float) -> str:
    """A duration in OpenAI's header format."""
    if seconds < 1:
        return f"{max(math.ceil(seconds * 1000), 0)}ms"
    millis = math.ceil(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def ratelimit_headers(standings: Iterable[Standing]) -> dict[str, str]:
    # Runs on every admitted request: one pass, exact-class checks, no intermediate dicts.
    requests: Standing | None = None
    tokens: Standing | None = None
    for standing in standings:
        claim = standing.claim
        if type(claim) is not Rate and not isinstance(claim, Rate):
            continue
        if claim.name == "rpm":
            if requests is None or standing.remaining < requests.remaining:
                requests = standing
        elif claim.name == "tpm" and (tokens is None or standing.remaining < tokens.remaining):
            tokens = standing
    headers: dict[str, str] = {}
    if requests is not None:
        _describe(headers, "requests", requests)
    if tokens is not None:
        _describe(headers, "tokens", tokens)
    return headers


def _describe(headers: dict[str, str], kind: str, standing: Standing) -> None:
    assert isinstance(standing.claim, Rate)
    headers[f"x-ratelimit-limit-{kind}"] = str(standing.claim.limit)
    headers[f"x-ratelimit-remaining-{kind}"] = str(standing.remaining)
    headers[f"x-ratelimit-reset-{kind}"] = duration(standing.reset_after or 0.0)
