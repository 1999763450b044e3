"""The OpenAI chat completions door: the request as the client sent it, replies as they came."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager

from ..chat import ChatRequest, parse_chat_request
from ..errors import RouteMWError
from ..http.asgi import Send
from ..http.responses import send_error, send_json, send_stream
from ..pipeline import Call
from ..reply import Completion, Reply

__all__ = ["OpenAIDoor"]


class OpenAIDoor:
    """`POST /v1/chat/completions`; the OpenAI error envelope."""

    def __init__(self, *, keepalive: float) -> None:
        self.keepalive = keepalive

    def parse(self, raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
        return parse_chat_request(raw)

    async def send_error(self, send: Send, exc: RouteMWError, headers: Mapping[str, str]) -> None:
        await send_error(send, exc, headers)

    async def send_reply(
        self,
        send: Send,
        call: Call,
        reply: Reply,
        headers: Mapping[str, str],
        interrupt: AbstractAsyncContextManager[None] | None = None,
    ) -> None:
        if isinstance(reply, Completion):
            await send_json(send, 200, reply.encode(), headers)
        else:
            await send_stream(send, reply, headers, keepalive=self.keepalive, interrupt=interrupt)
