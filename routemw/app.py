"""`Gateway`: the ASGI application, and the one place where the parts are put together.

It is a plain ASGI callable rather than a Starlette app: it has a handful of endpoints, and on
the hot path every layer counts. Each inbound protocol is a door (`routemw.doors`): OpenAI chat
completions, and Anthropic's Messages API at `/v1/messages`. The gateway runs the same body
limit, disconnect watch and pipeline for both (`_serve`); the door reads the request and
writes the reply and the errors. It works mounted anywhere (a mounted app never receives lifespan
events, so the upstream transport is created lazily on first use) and can still be tied to a
host's lifespan with `async with gateway:` or `Starlette(lifespan=gateway.lifespan)`.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Final

import anyio
import httpx
import orjson

from .accounts import Account, Authenticator, ConfigKeyStore, KeyStore, ScopeResolver
from .cancellation import DisconnectWatch
from .config import BUILTIN_PROVIDERS, GatewayConfig, ProviderConfig, default_document, load_config
from .dispatch import Dispatcher
from .doors.base import Door
from .doors.messages import COUNT_TOKENS_PATH, MESSAGES_PATH, MessagesDoor
from .doors.openai import OpenAIDoor
from .errors import MethodNotAllowedError, NotFoundError, RouteMWError
from .http.asgi import Receive, Scope, Send, route_path
from .http.body import ClientDisconnected, read_body
from .http.responses import INTERNAL_ERROR, send_json
from .http.transport import default_transport
from .middleware import (
    AuthMiddleware,
    CapabilityMiddleware,
    FallbackMiddleware,
    NormalizeMiddleware,
    ResolveMiddleware,
    RetryMiddleware,
)
from .middleware.resolve import model_not_found
from .pipeline import Call, Handler, Middleware, compose
from .providers.base import Provider
from .providers.registry import ProviderRegistry
from .routing import Catalog
from .routing.health import HealthStore, MemoryHealth

__all__ = ["Gateway"]

logger = logging.getLogger("routemw")

_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

PipelineSpec = Sequence[Middleware] | Callable[[list[Middleware]], Sequence[Middleware]]


class Gateway:
    """An OpenAI-compatible endpoint in front of the configured providers; an ASGI app."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        registry: ProviderRegistry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        middleware: PipelineSpec | None = None,
        key_store: KeyStore | None = None,
        account_from_scope: ScopeResolver | None = None,
        health: HealthStore | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """Build from a validated config.

        `transport` replaces the default upstream transport (pass `httpx.MockTransport` in
        tests, or one with your proxy and TLS settings); the gateway does not close a transport
        it was given. `middleware` is either a list put in front of the default pipeline, or a
        function that gets the default list and returns the pipeline to use.

        Auth follows `config.auth` with the config's keys, unless you pass `key_store` (your own
        async `lookup(secret) -> Account | None`) or `account_from_scope` (a function of the
        ASGI scope, for a host that has already authenticated the user), which turn it on.

        `health` replaces the in-memory cooldown state (share it between instances), and
        `sleep` the function retries wait with (tests pass one that records instead of waiting).
        """
        self.config = config
        self.registry = registry if registry is not None else ProviderRegistry.default()
        self.providers: Mapping[str, Provider] = self._create_providers()
        self.catalog = Catalog.build(config, self.providers)
        if key_store is None and config.auth.mode == "keys":
            key_store = ConfigKeyStore(config.keys)
        self.authenticator = Authenticator(key_store, scope_resolver=account_from_scope)
        retry = config.retry
        self.health: HealthStore = health or MemoryHealth(
            threshold=retry.cooldown_after, cooldown=retry.cooldown, max_cooldown=retry.cooldown_max
        )
        model_policies = {m.name: m.unsupported_params for m in config.models.values() if m.unsupported_params}
        defaults: list[Middleware] = [
            AuthMiddleware(self.authenticator),
            NormalizeMiddleware(),
            ResolveMiddleware(self.catalog),
            CapabilityMiddleware(config.params.unsupported, model_policies),
            FallbackMiddleware(timeout=retry.timeout, health=self.health),
            RetryMiddleware(
                attempts=retry.attempts,
                backoff_initial=retry.backoff_initial,
                backoff_max=retry.backoff_max,
                health=self.health,
                sleep=sleep or anyio.sleep,
            ),
        ]
        if middleware is None:
            layers: Sequence[Middleware] = defaults
        elif callable(middleware):
            layers = middleware(list(defaults))
        else:
            layers = [*middleware, *defaults]
        self.middleware: tuple[Middleware, ...] = tuple(layers)
        dispatcher = Dispatcher(self._get_transport, first_token_timeout=retry.first_token_timeout)
        self._handler: Handler = compose(self.middleware, dispatcher)
        self._transport = transport
        self._owns_transport = transport is None
        self._secrets = tuple(sorted(config.secrets(), key=len, reverse=True))
        self._created = int(time.time())
        # Request ids: a random prefix per gateway and a counter. Unique and cheap; they are
        # labels for logs and support, not secrets, so nothing is lost by their being sequential.
        prefix = f"req_{uuid.uuid4().hex[:12]}"
        counter = itertools.count(1)
        self._next_request_id: Callable[[], str] = lambda: f"{prefix}{next(counter):012x}"
        keepalive = config.server.keepalive
        self._openai_door = OpenAIDoor(keepalive=keepalive, redact=self.redact)
        self._messages_door = MessagesDoor(
            keepalive=keepalive,
            redact=self.redact,
            authenticator=self.authenticator,
            catalog=self.catalog,
            transport=self._get_transport,
            max_body_bytes=config.server.max_body_bytes,
        )

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        registry: ProviderRegistry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        middleware: PipelineSpec | None = None,
        key_store: KeyStore | None = None,
        account_from_scope: ScopeResolver | None = None,
        health: HealthStore | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> Gateway:
        """Load a YAML/JSON file or a mapping (None: the embedded default) and build a gateway."""
        env = os.environ if environ is None else environ
        registry = registry if registry is not None else ProviderRegistry.default()
        document = default_document(env) if source is None else source
        config = load_config(document, environ=env, provider_types=registry.types)
        return cls(
            config,
            registry=registry,
            transport=transport,
            middleware=middleware,
            key_store=key_store,
            account_from_scope=account_from_scope,
            health=health,
            sleep=sleep,
        )

    def _create_providers(self) -> dict[str, Provider]:
        providers = {name: self.registry.create(cfg) for name, cfg in self.config.providers.items()}
        for name, type_name in BUILTIN_PROVIDERS.items():
            if name not in providers:
                providers[name] = self.registry.create(ProviderConfig(name=name, type=type_name))
        return providers

    # -- upstream transport lifecycle ------------------------------------------------------

    def _get_transport(self) -> httpx.AsyncBaseTransport:
        if self._transport is None:
            self._transport = default_transport()
        return self._transport

    async def aclose(self) -> None:
        """Close the upstream connections the gateway opened (not a transport it was given).

        A transport it was given stays in place, so the gateway goes on using it afterwards; one
        it opened is dropped and opened anew on the next request.
        """
        if not self._owns_transport:
            return
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()

    async def __aenter__(self) -> Gateway:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """For a host app: `Starlette(lifespan=gateway.lifespan)` closes upstream connections at shutdown."""
        try:
            yield
        finally:
            await self.aclose()

    # -- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        inbound_id = headers.get("x-request-id")
        request_id = inbound_id if inbound_id and _REQUEST_ID.fullmatch(inbound_id) else self._next_request_id()
        response_headers = {"x-request-id": request_id}
        path = route_path(scope)
        method = scope["method"]
        door: Door = self._openai_door
        try:
            if path == "/v1/chat/completions":
                _require_method(method, "POST")
                await self._serve(scope, receive, send, headers, request_id, door)
            elif path in (MESSAGES_PATH, COUNT_TOKENS_PATH):
                door = self._messages_door
                _require_method(method, "POST")
                if path == MESSAGES_PATH:
                    await self._serve(scope, receive, send, headers, request_id, door)
                else:
                    await self._messages_door.count_tokens(scope, receive, send, {**headers, **response_headers})
            elif path == "/v1/models":
                _require_method(method, "GET")
                account = await self.authenticator.authenticate(headers, scope)
                cards = [entry.card(self._created) for entry in self.catalog if account.may_use(entry.id)]
                await send_json(send, 200, orjson.dumps({"object": "list", "data": cards}), response_headers)
            elif path.startswith("/v1/models/"):
                _require_method(method, "GET")
                account = await self.authenticator.authenticate(headers, scope)
                await send_json(send, 200, self._model_card(path[len("/v1/models/") :], account), response_headers)
            else:
                raise NotFoundError(f"Invalid URL ({method} {path})", code="unknown_url")
        except (ClientDisconnected, OSError):
            return  # the client left; ASGI 2.4 servers say so by raising OSError from `send`
        except RouteMWError as exc:
            await door.send_error(send, exc, response_headers)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], request_id: str, door: Door
    ) -> None:
        """One call through the pipeline: `door` reads the request and writes the answer."""
        raw = await read_body(scope, receive, self.config.server.max_body_bytes)
        call = Call(request=door.parse(raw, headers), request_id=request_id, headers=headers, scope=scope)
        call.response_headers["x-request-id"] = request_id
        # The disconnect watch covers the whole call, so a client that leaves while we are
        # still waiting for the upstream cancels that wait (and the upstream request) at once.
        async with DisconnectWatch(receive):
            try:
                reply = await self._handler(call)
            except RouteMWError as exc:
                if call.attempts:
                    call.response_headers.setdefault("x-routemw-attempts", str(len(call.attempts)))
                await door.send_error(send, exc, call.response_headers)
            except Exception:
                logger.exception("routemw: request %s failed inside the gateway", request_id)
                await door.send_error(send, INTERNAL_ERROR, call.response_headers)
            else:
                await door.send_reply(send, call, reply, {**call.response_headers, **reply.headers})

    def _model_card(self, model: str, account: Account) -> bytes:
        entry = self.catalog.get(model)
        if entry is None or not account.may_use(model):
            raise model_not_found(model)
        return orjson.dumps(entry.card(self._created))

    def redact(self, text: str) -> str:
        """`text` with every configured secret blanked out."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text


def _require_method(method: str, allowed: str) -> None:
    if method != allowed:
        raise MethodNotAllowedError(f"Method {method} is not allowed here; use {allowed}.", headers={"allow": allowed})
