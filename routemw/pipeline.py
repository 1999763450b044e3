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
    dropped: list[str] = field(default_factory=list)  # request fields removed for every target
    response_headers: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # free for user middleware
    started: float = field(default_factory=time.monotonic)
    deadline: float = math.inf  # monotonic time by which an upstream must have answered


class Middleware(Protocol):
    async def __call__(self, call: Call, next: Handler) -> Reply: ...


def compose(middleware: Sequence[Middleware], endpoint: Handler) -> Handler:
    """Chain `middleware` (outermost first) in front of `endpoint`."""
    handler = endpoint
    for layer in reversed(middleware):
        handler = partial(layer, next=handler)
    return handler
