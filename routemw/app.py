"""`Gateway`: the ASGI application, and the one place where the parts are put together.

It is a plain ASGI callable rather than a Starlette app: it has a handful of endpoints, and on
the hot path every layer counts. Each inbound protocol is a door (`routemw.doors`): OpenAI chat
completions, Anthropic's Messages API at `/v1/messages`, embeddings at `/v1/embeddings` and
OpenAI's Responses API at `/v1/responses`. The gateway does the same for each
(`_serve`): the drain's interrupt, authentication before the body, the body limit, the
disconnect watch, the pipeline, the usage meter and record; the door reads the request and
writes the reply and every error, those of the gateway's own steps included. It works mounted
anywhere (a mounted app never receives lifespan events, so the upstream transport is created
lazily on first use) and can still be tied to a host's lifespan with `async with gateway:` or
`Starlette(lifespan=gateway.lifespan)`.
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

from .accounts import Authenticator, ConfigKeyStore, KeyStore, ScopeResolver
from .affinity import AffinityMiddleware, AffinityStore, MemoryAffinity
from .cancellation import DisconnectWatch
from .config import BUILTIN_PROVIDERS, GatewayConfig, ProviderConfig, default_document, load_config
from .dispatch import Dispatcher
from .doors.base import Door
from .doors.embeddings import EMBEDDINGS_PATH, EmbeddingsDoor
from .doors.messages import COUNT_TOKENS_PATH, MESSAGES_PATH, MessagesDoor
from .doors.openai import OpenAIDoor
from .doors.responses import RESPONSES_PATH, ResponsesDoor
from .errors import ConfigError, MethodNotAllowedError, NotFoundError, RouteMWError, ServerShuttingDownError, echo
from .http.asgi import Receive, Scope, Send, client_path, route_path
from .http.body import ClientDisconnected, read_body
from .http.responses import INTERNAL_ERROR, send_json
from .http.transport import default_transport
from .limits import LimitMiddleware, Limits, LimitStore, RouteGate
from .middleware import (
    AuthMiddleware,
    CapabilityMiddleware,
    FallbackMiddleware,
    NormalizeMiddleware,
    ResolveMiddleware,
    RetryMiddleware,
)
from .middleware.stream_usage import StreamUsageMiddleware
from .pipeline import Call, Handler, Middleware, compose
from .prices import PriceTable
from .providers.base import Provider
from .providers.registry import ProviderRegistry
from .record import usage_record
from .reply import Completion
from .routing import Catalog
from .routing.cards import ModelCards
from .routing.health import HealthStore, MemoryHealth
from .shutdown import InFlight, Interrupt
from .state import RedisAffinity, RedisGuard, RedisHealth, RedisLimits, ping, redis_client
from .telemetry import Readiness, Telemetry
from .usage import JsonlSink, Meter, UsageCallback, UsageSink, deliver

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
        limits: LimitStore | None = None,
        on_usage: UsageCallback | None = None,
        usage_sinks: Sequence[UsageSink] = (),
        access_log: bool = False,
        affinity: AffinityStore | None = None,
    ) -> None:
        """Build from a validated config.

        `transport` replaces the default upstream transport (pass `httpx.MockTransport` in
        tests, or one with your proxy and TLS settings); the gateway does not close a transport
        it was given. `middleware` is either a list put in front of the default pipeline, or a
        function that gets the default list and returns the pipeline to use.

        Auth follows `config.auth` with the config's keys, unless you pass `key_store` (your own
        async `lookup(secret) -> Account | None`) or `account_from_scope` (a function of the
        ASGI scope, for a host that has already authenticated the user), which turn it on.

        `health` replaces the cooldown state (in memory, or in Redis with `state.redis`; pass
        your own `routemw.state.RedisHealth` to share a Redis client of yours), and `sleep` the
        function retries wait with (tests pass one that records instead of waiting).

        `limits` replaces the store that rate limits, quotas and budgets are counted in (in
        memory, or in Redis with `state.redis`; pass your own `routemw.state.RedisLimits` to
        share a Redis client of yours). `on_usage` (a function, sync or async) and `usage_sinks`
        get one `UsageRecord` per finished request; the config's `usage.jsonl` adds a file sink
        the gateway owns. Each record carries `trace`, the request's `call.trace()`, for these
        subscribers.

        `access_log=True` writes a line per finished request to the `routemw.access` logger
        (docs/production.md, Logs); `routemw serve` turns it on unless told not to.

        `affinity` replaces the store of which provider made each Responses API answer
        (`routemw.affinity`; in memory, or in Redis with `state.redis`).
        """
        self.config = config
        self.registry = registry if registry is not None else ProviderRegistry.default()
        self.providers: Mapping[str, Provider] = self._create_providers()
        self.catalog = Catalog.build(config, self.providers)
        if key_store is None and config.auth.mode == "keys":
            key_store = ConfigKeyStore(config.keys)
        self.authenticator = Authenticator(key_store, scope_resolver=account_from_scope)
        retry = config.retry
        # With `state.redis`, one client and one guard serve every store, so Redis going away is
        # noticed and logged once. The client connects on first use, inside the serving loop.
        self.redis: Any = None
        self.state_guard: RedisGuard | None = None
        state = config.state
        if state.redis is not None:
            self.redis = redis_client(state.redis.url, timeout=state.timeout)
            self.state_guard = RedisGuard(on_error=state.on_error, timeout=state.timeout)
        if health is None and state.redis is not None:
            health = RedisHealth(
                client=self.redis,
                prefix=state.redis.prefix,
                guard=self.state_guard,
                threshold=retry.cooldown_after,
                cooldown=retry.cooldown,
                max_cooldown=retry.cooldown_max,
            )
        if affinity is None and state.redis is not None:
            affinity = RedisAffinity(client=self.redis, prefix=state.redis.prefix, guard=self.state_guard)
        self.affinity: AffinityStore = affinity if affinity is not None else MemoryAffinity()
        self.health: HealthStore = health or MemoryHealth(
            threshold=retry.cooldown_after, cooldown=retry.cooldown, max_cooldown=retry.cooldown_max
        )
        model_policies = {m.name: m.unsupported_params for m in config.models.values() if m.unsupported_params}
        # -- limits, prices and usage (routemw.limits, routemw.usage) --
        free = frozenset(n for n, p in self.providers.items() if p.__class__.__name__ == "EchoProvider")
        self.prices = PriceTable(config.prices, free_providers=free)
        limited = Limits.configured(config)
        self._owned_limit_store: RedisLimits | None = None
        if limits is None and limited and state.redis is not None:
            limits = self._owned_limit_store = RedisLimits(
                client=self.redis, prefix=state.redis.prefix, guard=self.state_guard, lease_time=state.lease
            )
        self.limits = Limits.from_config(config, self.prices, limits)
        if limited:
            unpriced = self.limits.unpriced(config, self.catalog)
            if unpriced:
                raise ConfigError(unpriced)
        self._owned_sinks: tuple[UsageSink, ...] = (JsonlSink(config.usage.jsonl),) if config.usage.jsonl else ()
        self._usage_sinks = (*usage_sinks, *self._owned_sinks)
        self._usage_callbacks: tuple[UsageCallback, ...] = (on_usage,) if on_usage is not None else ()
        self._subscribed = bool(self._usage_sinks or self._usage_callbacks)
        # -- telemetry (routemw.telemetry): access log, metrics, spans, health endpoints --
        self.telemetry = Telemetry(
            config,
            self.catalog,
            provider_types={
                **{name: type_name for name, type_name in BUILTIN_PROVIDERS.items()},
                **{name: cfg.type for name, cfg in config.providers.items()},
            },
            accounts=["anonymous", *(key.name for key in config.keys)],
            closing=lambda: self._in_flight.closing,
            cooling_for=getattr(self.health, "cooling_for", None),
            access_log=access_log,
            state_guard=self.state_guard,
        )
        self.readiness: Readiness = self.telemetry.readiness
        if self.redis is not None:
            self.readiness.add("redis", self._redis_ready)
        self.metrics_app = self.telemetry.metrics_app
        self._recording = self._subscribed or self.telemetry.records
        defaults: list[Middleware] = [
            AuthMiddleware(self.authenticator),
            NormalizeMiddleware(),
            ResolveMiddleware(self.catalog),
            CapabilityMiddleware(config.params.unsupported, model_policies),
            AffinityMiddleware(self.affinity),
            *([LimitMiddleware(self.limits)] if limited else []),
            FallbackMiddleware(
                timeout=retry.timeout,
                health=self.health,
                route_limits=RouteGate(self.limits) if self.limits.routes else None,
            ),
            RetryMiddleware(
                attempts=retry.attempts,
                backoff_initial=retry.backoff_initial,
                backoff_max=retry.backoff_max,
                health=self.health,
                sleep=sleep or anyio.sleep,
            ),
            *([StreamUsageMiddleware()] if limited or self._recording else []),
        ]
        if middleware is None:
            layers: Sequence[Middleware] = defaults
        elif callable(middleware):
            layers = middleware(list(defaults))
        else:
            layers = [*middleware, *defaults]
        self.middleware: tuple[Middleware, ...] = tuple(layers)
        dispatcher = Dispatcher(
            self._get_transport,
            first_token_timeout=retry.first_token_timeout,
            secrets={name: _credentials(cfg) for name, cfg in config.providers.items()},
            limits=config.upstream,
            tracing=self.telemetry.tracing,
        )
        self._handler: Handler = compose(self.middleware, dispatcher)
        self._transport = transport
        self._owns_transport = transport is None
        self._in_flight = InFlight()
        self._cards = ModelCards(self.catalog, self.prices, created=int(time.time()))
        self._next_request_id: Callable[[], str] = _request_ids()
        keepalive = config.server.keepalive
        self._openai_door = OpenAIDoor(keepalive=keepalive)
        self._messages_door = MessagesDoor(
            keepalive=keepalive,
            authenticator=self.authenticator,
            catalog=self.catalog,
            transport=self._get_transport,
            max_body_bytes=config.server.max_body_bytes,
            upstream_limits=config.upstream,
        )
        # Each pipeline path and the door that speaks its protocol (every error of a path, the
        # gateway's own included, is in its door's envelope).
        self._doors: dict[str, Door] = {
            "/v1/chat/completions": self._openai_door,
            MESSAGES_PATH: self._messages_door,
            EMBEDDINGS_PATH: EmbeddingsDoor(),
            RESPONSES_PATH: ResponsesDoor(keepalive=keepalive),
        }
        self._front = self.telemetry.front(self._http)

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
        limits: LimitStore | None = None,
        on_usage: UsageCallback | None = None,
        usage_sinks: Sequence[UsageSink] = (),
        access_log: bool = False,
        affinity: AffinityStore | None = None,
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
            limits=limits,
            on_usage=on_usage,
            usage_sinks=usage_sinks,
            access_log=access_log,
            affinity=affinity,
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
        it opened is dropped and opened anew on the next request. Usage sinks it opened write
        what they hold and stop (they start again if more records come). The Redis client it
        opened for `state.redis` is closed too (it reconnects if used again).
        """
        for sink in self._owned_sinks:
            await anyio.to_thread.run_sync(sink.close)
        if self._owned_limit_store is not None:
            await self._owned_limit_store.aclose()
        if self.redis is not None:
            await self.redis.aclose()
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

    async def drain(self, grace: float | None = None) -> None:
        """Stop taking requests and end those in flight; for a server that is shutting down.

        New requests get a 503 `server_shutting_down` from now on. Requests in flight have
        `grace` seconds (default `server.shutdown_timeout`) to finish; then a stream still open
        ends with the in-band error event `server_shutting_down`, and a request still waiting for
        its upstream gets that error as a 503. Returns when none is left, or shortly after the
        deadline if a client has stopped reading. `routemw serve` calls it when uvicorn begins
        to shut down; call it from any other server's shutdown the same way.
        """
        await self._in_flight.drain(self.config.server.shutdown_timeout if grace is None else grace)

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
            await self._front(scope, receive, send)  # health and metrics endpoints, telemetry; then _http
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
        # The door is known from the path alone, before anything can fail, so that every error
        # (the refusal while draining, a 401 before the body, a 405) is in the client's protocol.
        door: Door | None = self._doors.get(path)
        served = door is not None
        if door is None:
            door = self._messages_door if path == COUNT_TOKENS_PATH else self._openai_door
        try:
            if self._in_flight.closing:
                raise ServerShuttingDownError()
            if served:
                _require_method(method, "POST")
                await self._serve(scope, receive, send, headers, request_id, door)
            elif path == COUNT_TOKENS_PATH:
                _require_method(method, "POST")
                await self._count_tokens(scope, receive, send, {**headers, **response_headers})
            elif path == "/v1/models":
                _require_method(method, "GET")
                account = await self.authenticator.authenticate(headers, scope)
                await send_json(send, 200, self._cards.listing(account), response_headers)
            elif path == "/v1/key":
                _require_method(method, "GET")
                account = await self.authenticator.authenticate(headers, scope)
                state = await self.limits.key_state(account)
                await send_json(send, 200, orjson.dumps({"data": state}), response_headers)
            elif path.startswith("/v1/models/"):
                _require_method(method, "GET")
                account = await self.authenticator.authenticate(headers, scope)
                await send_json(send, 200, self._cards.one(path[len("/v1/models/") :], account), response_headers)
            else:
                # The path as the client sent it, mount prefix included, not the route below it.
                raise NotFoundError(f"Invalid URL ({echo(method)} {echo(client_path(scope))})", code="unknown_url")
        except (ClientDisconnected, OSError):
            return  # the client left; ASGI 2.4 servers say so by raising OSError from `send`
        except RouteMWError as exc:
            await door.send_error(send, exc, response_headers)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], request_id: str, door: Door
    ) -> None:
        """One call through the pipeline, for any door: the door reads the request and writes the answer."""
        # Every wait the request makes is in a region a drain can interrupt (`routemw.shutdown`),
        # so a server shutting down never has to cut the request itself.
        interrupt = self._in_flight.enter()
        call: Call | None = None
        status: int | None = None  # what the client got; None: it left before an answer
        error: str | None = None
        arrived = time.time()
        try:
            async with interrupt:
                # Authenticate from the headers before the body is read, as OpenAI does: a caller
                # without a valid key gets its 401 whatever its body, learns nothing about how the
                # body would be judged, and cannot make the gateway read and parse megabytes.
                # `AuthMiddleware` sees the account already on the call and does not ask again.
                account = await self.authenticator.authenticate(headers, scope)
                raw = await read_body(scope, receive, self.config.server.max_body_bytes)
            call = Call(
                request=door.parse(raw, headers), request_id=request_id, headers=headers, scope=scope, account=account
            )
            if self._recording:
                call.meter = Meter()
            call.response_headers["x-request-id"] = request_id
            status, error = await self._answer(call, receive, send, interrupt, door)
        except RouteMWError as exc:
            status, error = exc.status_code, exc.code
            raise
        finally:
            self._in_flight.leave(interrupt)
            if self._recording:
                await self._record(call, request_id, arrived, status, error, scope)

    async def _count_tokens(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        """`/v1/messages/count_tokens`, outside the pipeline but inside the drain like every request."""
        interrupt = self._in_flight.enter()
        try:
            async with interrupt:
                await self._messages_door.count_tokens(scope, receive, send, headers)
        finally:
            self._in_flight.leave(interrupt)

    async def _answer(
        self, call: Call, receive: Receive, send: Send, interrupt: Interrupt, door: Door
    ) -> tuple[int | None, str | None]:
        """Run the pipeline and send what it gives; the status and error code the client got.

        The status is None when the client left before its answer was sent (the disconnect watch
        ends the block quietly then, or the server raises from `send`).
        """
        request_id = call.request_id
        status: int | None = None
        error: str | None = None
        # The disconnect watch covers the whole call, so a client that leaves while we are
        # still waiting for the upstream cancels that wait (and the upstream request) at once.
        async with DisconnectWatch(receive):
            try:
                async with interrupt:
                    reply = await self._handler(call)
            except RouteMWError as exc:
                call.error = exc
                if call.attempts:
                    call.response_headers.setdefault("x-routemw-attempts", str(len(call.attempts)))
                await door.send_error(send, exc, call.response_headers)
                status, error = exc.status_code, exc.code
            except Exception:
                logger.exception("routemw: request %s failed inside the gateway", request_id)
                await door.send_error(send, INTERNAL_ERROR, call.response_headers)
                status, error = INTERNAL_ERROR.status_code, INTERNAL_ERROR.code
            else:
                meter = call.meter
                # Usage is read from the OpenAI-shaped `data` every reply carries, whichever door
                # renders it, so limits and usage records never depend on the client's protocol.
                if isinstance(reply, Completion):
                    if meter is not None and meter.counts is None:
                        meter.read(reply.data.get("usage"))
                elif meter is not None and not meter.watched:
                    reply = meter.watch(reply)
                await door.send_reply(send, call, reply, {**call.response_headers, **reply.headers}, interrupt)
                status = 200
        return status, error

    async def _record(
        self, call: Call | None, request_id: str, arrived: float, status: int | None, error: str | None, scope: Scope
    ) -> None:
        """Build the request's usage record and hand it to every subscriber."""
        target = call.target if call is not None else None
        record = usage_record(
            call,
            request_id=request_id,
            arrived=arrived,
            status=status,
            error=error,
            method=scope["method"],
            path=client_path(scope),
            price=self.limits.price(target) if target is not None else None,
            with_trace=self._subscribed,
        )
        if self.telemetry.records:
            self.telemetry.finish(record, call)  # first: metrics count it before anything can suspend
        if self._subscribed:
            with anyio.CancelScope(shield=True):
                await deliver(record, self._usage_callbacks, self._usage_sinks)

    async def _redis_ready(self) -> str | None:
        """The `/readyz` check with `state.redis`: Redis answers a PING within `state.timeout`."""
        try:
            with anyio.fail_after(self.config.state.timeout):
                await ping(self.redis)
        except Exception:  # a timeout, a refused connection: the reason is fixed text, never the error's
            return "Redis is not answering"
        return None

    def renew_request_ids(self) -> None:
        """Start a fresh request id sequence; for a process forked from the one that built the gateway.

        granian's workers are forks sharing one gateway built before them (`routemw.serve`):
        without this each would number its requests from the same prefix and counter.
        """
        self._next_request_id = _request_ids()


def _credentials(provider: ProviderConfig) -> tuple[str, ...]:
    """What of a provider's config its upstream may echo back in an error: its key and headers.

    Only the provider's own: scrubbing an upstream's text of secrets it was never given (client
    keys, other providers' keys) could only ever match text the client sent it to echo, which
    would make the error an oracle for guesses. The longest come first, so a secret that
    contains another is blanked whole.
    """
    found = [provider.api_key] if provider.api_key else []
    for value in provider.headers.values():
        found += [value, value.rsplit(" ", 1)[-1]]  # "Bearer <token>": the token alone, too
    # Short strings are too likely to be ordinary words to blank out wherever they appear.
    return tuple(sorted({s for s in found if len(s) >= 8}, key=len, reverse=True))


def _request_ids() -> Callable[[], str]:
    """Request ids: a random prefix per gateway (or process) and a counter.

    Unique and cheap; they are labels for logs and support, not secrets, so nothing is lost by
    their being sequential.
    """
    prefix = f"req_{uuid.uuid4().hex[:12]}"
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):012x}"


def _require_method(method: str, allowed: str) -> None:
    if method != allowed:
        raise MethodNotAllowedError(f"Method {method} is not allowed here; use {allowed}.", headers={"allow": allowed})
