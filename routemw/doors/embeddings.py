"""The embeddings door: `POST /v1/embeddings`, OpenAI's request and answer, the OpenAI error envelope.

The request is checked and kept as the client sent it (`routemw.embeddings`); it travels the
gateway's one pipeline as a request of kind `embeddings`, so accounts, allow-lists, the
capability check (only routes marked `embeddings: true`), limits, retries, fallback, the explain
headers and the usage record treat it as they treat chat. The answer is OpenAI's embeddings
list: the upstream's own bytes from an OpenAI-type route (`Completion.native`, only `model`
and `usage` read from them), a translation from a Gemini one.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Final

from ..chat import ChatRequest
from ..embeddings import parse_embeddings_request
from ..errors import RouteMWError
from ..http.asgi import Send
from ..http.responses import INTERNAL_ERROR, send_error, send_json
from ..pipeline import Call
from ..reply import Completion, Reply

__all__ = ["EMBEDDINGS_PATH", "EmbeddingsDoor"]

EMBEDDINGS_PATH: Final = "/v1/embeddings"


class EmbeddingsDoor:
    def parse(self, raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
        return parse_embeddings_request(raw)

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
        if not isinstance(reply, Completion):  # no adapter streams embeddings; a user pipeline might
            await send_error(send, INTERNAL_ERROR, headers)
            await reply.aclose()
            return
        await send_json(send, 200, reply.native if reply.native is not None else reply.encode(), headers)
