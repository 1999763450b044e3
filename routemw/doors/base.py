"""The `Door` protocol: what the gateway asks of an inbound protocol, and nothing else.

The gateway owns everything between reading a body and writing a reply (the drain, auth before
the body, body limits, the disconnect watch, the pipeline, usage); a door owns the two ends:
reading its protocol into a `ChatRequest`, and writing a reply or an error in its own envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from ..chat import ChatRequest
from ..errors import RouteMWError
from ..http.asgi import Send
from ..pipeline import Call
from ..reply import Reply

__all__ = ["Door"]


class Door(Protocol):
    def parse(self, raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
        """The canonical request for a body; `InvalidRequestError` naming the field when it is bad."""

    async def send_error(self, send: Send, exc: RouteMWError, headers: Mapping[str, str]) -> None:
        """`exc` as this protocol's error response; `headers` include `x-request-id`."""

    async def send_reply(
        self,
        send: Send,
        call: Call,
        reply: Reply,
        headers: Mapping[str, str],
        interrupt: AbstractAsyncContextManager[None] | None = None,
    ) -> None:
        """The pipeline's reply in this protocol; for a stream, its first write is the commit point.

        `interrupt` (the drain's, see `routemw.shutdown`) is entered around a stream's body.
        """
