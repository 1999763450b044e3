"""The request pipeline: a per-request `Call`, the `Middleware` protocol, and composition.

A middleware is a small object with `async def __call__(self, call, next) -> Reply`. It may
work on the way in (read or change `call`), on the way out (wrap the reply, or each chunk of a
stream with `Stream.map`), or answer without calling `next`. Per-request state lives on the
`Call`, never on the middleware. The pipeline is a plain list, composed once into a chain of
closures when the gateway is built, so a request pays one call per middleware and nothing else.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from .chat import ChatRequest
from .errors import Attempt
from .providers.base import Target
from .reply import Reply
from .usage import Meter

__all__ = ["Call", "Handler", "Middleware", "compose"]

Handler = Callable[["Call"], Awaitable[Reply]]


@dataclass(slots=True, eq=False)
class Call:
    """Everything about one request as it moves through the pipeline."""

    request: ChatRequest
    request_id: str
    headers: Mapping[str, str]  # inbound headers, lower-cased names
    scope: Mapping[str, Any]  # the ASGI scope, for middleware that needs the host's view
    account: Any = None  # set by authentication middleware
    candidates: list[Target] = field(default_factory=list)
    target: Target | None = None  # the candidate the current attempt is for
    attempts: list[Attempt] = field(default_factory=list)
    skipped: list[tuple[Target, str]] = field(default_factory=list)  # candidates left out, and why
    # For a candidate, how many listed before it the capability check left out: they count as
    # passed over in `x-routemw-fallbacks` when it answers. Absent means none.
    unfit_ahead: dict[Target, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)  # request fields removed for every target
    # The `model` every answer reports (the public id the client asked for), or None to keep
    # the upstream's own name; set from the model's `response_model` option.
    response_model: str | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # free for user middleware
    started: float = field(default_factory=time.monotonic)
    deadline: float = math.inf  # monotonic time by which an upstream must have answered
    meter: Meter | None = None  # reads the reply's usage, when limits or a usage subscriber need it
    error: Exception | None = None  # the error the client was answered with, if it was one

    def trace(self) -> dict[str, Any]:
        """What routing decided and why, as plain data for a log line or an exporter.

        `overhead_ms` is the time so far not spent waiting on upstream attempts: the gateway's
        own work, plus any retry sleeps. Taken after the reply, it covers the whole request
        up to the commit point of a stream.
        """
        elapsed = time.monotonic() - self.started
        upstream = sum(a.latency for a in self.attempts)
        return {
            "request_id": self.request_id,
            "model": self.request.model,
            "account": getattr(self.account, "name", None),
            "candidates": [t.key for t in self.candidates],
            "skipped": [{"target": t.key, "reason": why} for t, why in self.skipped],
            "attempts": [
                {
                    "target": f"{a.provider}/{a.model}",
                    "provider": a.provider,
                    "upstream_model": a.model,
                    "status": a.status,
                    "code": a.code,
                    "outcome": a.action.value if a.action is not None else "answered",
                    "latency_ms": round(a.latency * 1000, 3),
                }
                for a in self.attempts
            ],
            "dropped_params": list(self.dropped),
            "elapsed_ms": round(elapsed * 1000, 3),
            "overhead_ms": round((elapsed - upstream) * 1000, 3),
        }


class Middleware(Protocol):
    async def __call__(self, call: Call, next: Handler) -> Reply: ...


def compose(middleware: Sequence[Middleware], endpoint: Handler) -> Handler:
    """Chain `middleware` (outermost first) in front of `endpoint`."""
    handler = endpoint
    for layer in reversed(middleware):
        handler = partial(layer, next=handler)
    return handler
