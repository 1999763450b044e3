"""OpenAI's rate-limit headers, from an admission's figures.

`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`: the limit per minute, what is left
after this request's reservation, and how long until the limit is back to full, written as
OpenAI writes durations (`17ms`, `1s`, `1.5s`, `6m0s`, `1h2m0s`). Where several scopes limit the
same thing (a key's rpm and its model's), the headers describe the one with the least left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .store import Claim, Figures, Rate

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


def ratelimit_headers(claims: Sequence[Claim], figures: Sequence[Figures]) -> dict[str, str]:
    """The headers for an admission: its claims and the figures the store gave for each."""
    # Runs on every admitted request: one pass over plain tuples, exact-class checks.
    requests: tuple[Rate, Figures] | None = None
    tokens: tuple[Rate, Figures] | None = None
    for claim, figure in zip(claims, figures, strict=True):
        if type(claim) is not Rate and not isinstance(claim, Rate):
            continue
        if claim.name == "rpm":
            if requests is None or figure[1] < requests[1][1]:
                requests = (claim, figure)
        elif claim.name == "tpm" and (tokens is None or figure[1] < tokens[1][1]):
            tokens = (claim, figure)
    headers: dict[str, str] = {}
    if requests is not None:
        _describe(headers, "requests", *requests)
    if tokens is not None:
        _describe(headers, "tokens", *tokens)
    return headers


def _describe(headers: dict[str, str], kind: str, claim: Rate, figure: Figures) -> None:
    headers[f"x-ratelimit-limit-{kind}"] = str(claim.limit)
    headers[f"x-ratelimit-remaining-{kind}"] = str(figure[1])
    headers[f"x-ratelimit-reset-{kind}"] = duration(figure[3] or 0.0)
