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
from typing import Any, Final

import httpx
import orjson

from ...accounts import Authenticator
from ...cancellation import deadline
from ...chat import ChatRequest
from ...errors import InvalidRequestError, RouteMWError
from ...http.asgi import Receive, Scope, Send
from ...http.body import read_body
from ...http.responses import send_json, send_stream
from ...http.upstream import read_body as read_upstream_body
from ...middleware.resolve import model_not_found
from ...native import NativeRequest, passes_through
from ...pipeline import Call
from ...providers.base import Target
from ...reply import Completion, Reply
from ...routing import Catalog
from .errors import error_body, error_status
from .estimate import estimate_input_tokens
from .events import MessageEvents
from .parse import FORWARDED_HEADERS, PROTOCOL, check_count, parse_messages_request
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
        redact: Callable[[str], str],
        authenticator: Authenticator,
        catalog: Catalog,
        transport: Callable[[], httpx.AsyncBaseTransport],
        max_body_bytes: int,
    ) -> None:
        self.keepalive = keepalive
        self.redact = redact
        self.authenticator = authenticator
        self.catalog = catalog
        self.transport = transport
        self.max_body_bytes = max_body_bytes

    # -- Door

    def parse(self, raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
        return parse_messages_request(raw, headers)

    async def send_error(self, send: Send, exc: RouteMWError, headers: Mapping[str, str]) -> None:
        request_id = headers.get("x-request-id")
        out = {**headers, **exc.headers}
        if request_id is not None:
            out["request-id"] = request_id
        await send_json(send, error_status(exc), error_body(exc, request_id, self.redact), out)

    async def send_reply(self, send: Send, call: Call, reply: Reply, headers: Mapping[str, str]) -> None:
        native = call.request.native
        if native is None:  # a user pipeline built its own request; nothing says how to speak it
            raise RuntimeError("a /v1/messages call lost its native request")
        out = {**headers, "request-id": call.request_id}
        target = call.target
        model = target.public_model if target is not None else call.request.model
        translated = target is None or not passes_through(target.provider, native)
        if translated and native.lossy:
            disclosed = {part.strip() for part in out.get(_DROPPED, "").split(",") if part.strip()}
            out[_DROPPED] = ", ".join(sorted(disclosed | set(native.lossy)))
        if isinstance(reply, Completion):
            if reply.native is not None:
                body = reply.native
            else:
                body = orjson.dumps(render_message(reply.data, model=model, thinking=wants_thinking(native.body)))
            await send_json(send, 200, body, out)
            return
        encoder = MessageEvents(
            model=model,
            input_estimate=estimate_input_tokens(native.body) if translated else 0,
            thinking=wants_thinking(native.body),
        )
        await send_stream(send, reply, out, keepalive=self.keepalive, redact=self.redact, encoder=encoder)

    # -- count_tokens

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send, headers: Mapping[str, str]) -> None:
        account = await self.authenticator.authenticate(headers, scope)
        raw = await read_body(scope, receive, self.max_body_bytes)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(f"There was an error parsing the body of your request: {exc}.") from exc
        if not isinstance(body, dict):
            raise InvalidRequestError("The request body must be a JSON object.")
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
            counted = await self._upstream_count(native, target)
            if counted is not None:
                out |= {"x-routemw-token-count": "upstream", "x-routemw-provider": target.provider.name}
                await send_json(send, 200, counted, out)
                return
        out["x-routemw-token-count"] = "estimate"
        await send_json(send, 200, orjson.dumps({"input_tokens": estimate_input_tokens(body)}), out)

    async def _upstream_count(self, native: NativeRequest, target: Target) -> bytes | None:
        """The upstream's own answer (`{"input_tokens": N}`), or None when it could not give one."""
        provider: Any = target.provider
        response: httpx.Response | None = None
        try:
            async with deadline(provider.timeout):
                request = provider.count_tokens_request(native, target)
                transport = provider.transport or self.transport()
                response = await transport.handle_async_request(request)
                body = await read_upstream_body(response)
        except (httpx.TransportError, TimeoutError) as exc:
            logger.warning("routemw: count_tokens at %s failed: %s", target.key, type(exc).__name__)
            return None
        finally:
            if response is not None:
                await response.aclose()
        data = _json(body) if response.status_code == 200 else None
        if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
            logger.warning("routemw: count_tokens at %s answered %s", target.key, response.status_code)
            return None
        return body


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
