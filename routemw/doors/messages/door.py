"""`MessagesDoor`: Anthropic's Messages API in front of the gateway's one pipeline.

`POST /v1/messages` goes through the gateway exactly like a chat completion (body limit,
disconnect watch, auth, model resolution, capability check, fallback, retries, dispatch); this
door only reads the request (`parse`) and writes the answer (`render`, `events`) and the errors
(`errors`). Which of its two shapes an answer has follows from the target that gave it: an
Anthropic route passed the upstream's own answer through (`native`), any other route gave an
OpenAI one to render. A translated answer discloses what the translation left out
(`x-routemw-dropped-params`). Every answer carries Anthropic's `request-id` header, the same
id as `x-request-id`.

`POST /v1/messages/count_tokens` answers `{"input_tokens": N}` outside the pipeline (no
upstream generation, nothing to retry or account): after the same authentication and model
resolution, the first Anthropic route of the model is asked for its own count with the
client's body; when the model has none, or each that has fails, the count is the documented
estimate of `estimate`. `x-routemw-token-count` says which (`upstream` or `estimate`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import httpx
import orjson

from ...accounts import Authenticator
from ...cancellation import deadline
from ...chat import ChatRequest
from ...config import UpstreamConfig
from ...errors import RouteMWError
from ...http.asgi import Receive, Scope, Send
from ...http.body import read_body
from ...http.headers import config_header_value, header_list
from ...http.responses import send_json, send_stream
from ...http.upstream import read_body as read_upstream_body
from ...middleware.resolve import model_not_found
from ...native import NativeRequest, passes_through
from ...pipeline import Call
from ...providers.base import Target
from ...reply import Completion, Reply
from ...routing import Catalog
from .check import check_count
from .errors import error_body, error_status
from .estimate import estimate_input_tokens
from .events import MessageEvents
from .parse import FORWARDED_HEADERS, PROTOCOL, decode, parse_messages_request
from .render import render_message

__all__ = ["COUNT_TOKENS_PATH", "MESSAGES_PATH", "MessagesDoor"]

logger = logging.getLogger("routemw")

MESSAGES_PATH: Final = "/v1/messages"
COUNT_TOKENS_PATH: Final = "/v1/messages/count_tokens"
_DROPPED: Final = "x-routemw-dropped-params"


def wants_thinking(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


class MessagesDoor:
    """The Messages door; `Gateway` routes `/v1/messages` and `/v1/messages/count_tokens` here."""

    def __init__(
        self,
        *,
        keepalive: float,
        authenticator: Authenticator,
        catalog: Catalog,
        transport: Callable[[], httpx.AsyncBaseTransport],
        max_body_bytes: int,
        upstream_limits: UpstreamConfig,
    ) -> None:
        self.keepalive = keepalive
        self.authenticator = authenticator
        self.catalog = catalog
        self.transport = transport
        self.max_body_bytes = max_body_bytes
        self.upstream_limits = upstream_limits

    # -- Door

    def parse(self, raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
        return parse_messages_request(raw, headers)

    async def send_error(self, send: Send, exc: RouteMWError, headers: Mapping[str, str]) -> None:
        request_id = headers.get("x-request-id")
        out = {**headers, **exc.headers}
        if request_id is not None:
            out["request-id"] = request_id
        await send_json(send, error_status(exc), error_body(exc, request_id), out)

    async def send_reply(
        self,
        send: Send,
        call: Call,
        reply: Reply,
        headers: Mapping[str, str],
        interrupt: AbstractAsyncContextManager[None] | None = None,
    ) -> None:
        native = call.request.native
        if native is None:  # a user pipeline built its own request; nothing says how to speak it
            raise RuntimeError("a /v1/messages call lost its native request")
        out = {**headers, "request-id": call.request_id}
        target = call.target
        # The name the answer reports: the public one (`response_model`), else the upstream's.
        model = call.response_model or (target.model if target is not None else call.request.model)
        translated = target is None or not passes_through(target.provider, native)
        if translated and native.lossy:
            # Built again from its parts (the fallback's, plus what this door's translation left
            # out), through the same header-safe list: lossy names are the client's own keys.
            dropped = {*call.dropped, *(target.drop if target is not None else ()), *native.lossy}
            out[_DROPPED] = header_list(sorted(dropped))
        if isinstance(reply, Completion):
            if reply.native is not None:
                body = reply.native
            else:
                data = reply.data
                named = data.get("model") if call.response_model is None else None
                rendered = render_message(
                    data, model=named if isinstance(named, str) else model, thinking=wants_thinking(native.body)
                )
                body = orjson.dumps(rendered)
            await send_json(send, 200, body, out)
            return
        encoder = MessageEvents(
            model=model,
            follow_upstream=call.response_model is None,
            input_estimate=estimate_input_tokens(native.body) if translated else 0,
            thinking=wants_thinking(native.body),
        )
        await send_stream(send, reply, out, keepalive=self.keepalive, interrupt=interrupt, encoder=encoder)

    # -- count_tokens

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        account = await self.authenticator.authenticate(headers, scope)
        raw = await read_body(scope, receive, self.max_body_bytes)
        body = decode(raw)
        check_count(body)
        model = body["model"]
        targets = self.catalog.candidates(model, account.may_use) if account.may_use(model) else []
        if not targets:
            raise model_not_found(model)
        forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
        native = NativeRequest(PROTOCOL, body, raw, forwarded)
        out = {"x-request-id": headers.get("x-request-id", ""), "request-id": headers.get("x-request-id", "")}
        for target in targets:
            if not passes_through(target.provider, native):
                continue
            counted = await self._upstream_count(native, target, out["x-request-id"])
            if counted is not None:
                out |= {
                    "x-routemw-token-count": "upstream",
                    "x-routemw-provider": config_header_value(target.provider.name),
                }
                await send_json(send, 200, counted, out)
                return
        out["x-routemw-token-count"] = "estimate"
        await send_json(send, 200, orjson.dumps({"input_tokens": estimate_input_tokens(body)}), out)

    async def _upstream_count(self, native: NativeRequest, target: Target, request_id: str) -> bytes | None:
        """The upstream's own answer (`{"input_tokens": N}`), or None when it could not give one."""
        provider: Any = target.provider
        response: httpx.Response | None = None
        body = b""
        try:
            async with deadline(provider.timeout):
                request = provider.count_tokens_request(native, target)
                request.headers["x-request-id"] = request_id
                transport = provider.transport or self.transport()
                response = await transport.handle_async_request(request)
                if response.status_code == 200:  # anything else is only logged, so never read
                    body = await read_upstream_body(response, self.upstream_limits)
        # DecodingError: a body past the `upstream:` bounds, or one that does not inflate.
        except (httpx.TransportError, httpx.DecodingError, TimeoutError) as exc:
            logger.warning("routemw: count_tokens at %s failed: %s", target.key, type(exc).__name__)
            return None
        finally:
            if response is not None:
                await response.aclose()
        data = _json(body) if body else None
        if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
            logger.warning("routemw: count_tokens at %s answered %s", target.key, response.status_code)
            return None
        return body


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
