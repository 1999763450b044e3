"""`Telemetry`: what a gateway shows outside the process, and the ASGI front that serves it.

The parts are subscribers, never decision makers: the access log and the metrics read the usage
record the gateway builds when a request ends, the spans read it too, and the health endpoints
only answer. Each part is decided once, when the gateway is built, and a part that is off costs
nothing per request:

- the access log with `Gateway(access_log=True)` (`routemw serve` passes it), and then writes
  only while the `routemw.access` logger is enabled for INFO. It is a constructor argument
  rather than a reading of logger levels, because turning it on also meters every request
  (streams ask their upstream for usage), and that should not change with a host's logging;
- Prometheus when `metrics.prometheus` is true;
- spans when the host configured an OpenTelemetry tracer provider.

`front(app)` wraps the gateway's own HTTP handling. It answers `/healthz`, `/readyz` and the
metrics path itself, without auth. With any part on it also keeps, per request, an `_Exchange`
in a context variable: the SERVER span, the status sent, and the usage record once the gateway
delivers it. A request the gateway makes no usage record for (`/v1/models`, an unknown URL)
gets a minimal one here, so the access log and the request metrics still see it. With every
part off the front only looks at the path.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final

from ..http.asgi import ASGIApp, Message, Receive, Scope, Send, client_path, route_path
from ..usage import UsageRecord, iso_time
from .access_log import AccessLog
from .health import Readiness
from .metrics import PrometheusMetrics
from .tracing import Tracing

if TYPE_CHECKING:
    from ..config import GatewayConfig
    from ..pipeline import Call
    from ..routing import Catalog
    from ..state import RedisGuard

__all__ = ["GENAI_PROVIDER_NAMES", "Telemetry"]

# `gen_ai.provider.name` for each built-in adapter type; a plugin's type is used as it is.
GENAI_PROVIDER_NAMES: Final = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "echo": "routemw.echo",
}
_CLIENT_CLOSED: Final = 499  # the status a record gets when the client left before its answer


class _Exchange:
    """What the front knows about the request in flight."""

    __slots__ = ("record", "request_id", "status")

    def __init__(self) -> None:
        self.record: UsageRecord | None = None
        self.status: int | None = None
        self.request_id: str | None = None


_EXCHANGE: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar("routemw.exchange", default=None)


class Telemetry:
    """The access log, Prometheus metrics, spans and health endpoints of one gateway."""

    def __init__(
        self,
        config: GatewayConfig,
        catalog: Catalog,
        *,
        provider_types: Mapping[str, str],
        accounts: Iterable[str],
        closing: Callable[[], bool],
        cooling_for: Callable[[str], float | None] | None = None,
        access_log: bool = False,
        state_guard: RedisGuard | None = None,
    ) -> None:
        """`provider_types` maps each provider's config name to its adapter type; `state_guard`
        (with `state.redis`) counts the shared-state failures `routemw_state_errors_total` shows."""
        genai = {name: GENAI_PROVIDER_NAMES.get(kind, kind) for name, kind in provider_types.items()}
        self.access: AccessLog | None = AccessLog() if access_log else None
        self.metrics: PrometheusMetrics | None = None
        if config.metrics.prometheus:
            self.metrics = PrometheusMetrics(
                models=[entry.id for entry in catalog],
                targets={(t.provider.name, t.model) for entry in catalog for t in entry.targets},
                accounts=accounts,
                genai_providers=genai,
                cooling_for=cooling_for,
                state_guard=state_guard,
            )
        self.tracing = Tracing.create(genai)
        self.readiness = Readiness(closing)
        self.observe_health = config.health.observe
        # Whether the gateway should build usage records for telemetry's sake.
        self.records = self.access is not None or self.metrics is not None or self.tracing is not None
        self._own: dict[str, ASGIApp] = {"/healthz": self.readiness.healthz, "/readyz": self.readiness.readyz}
        if self.metrics is not None and config.metrics.path is not None:
            self._own[config.metrics.path] = self.metrics.app

    @property
    def metrics_app(self) -> ASGIApp | None:
        """The Prometheus endpoint as an ASGI app to mount anywhere; None with metrics off."""
        return self.metrics.app if self.metrics is not None else None

    def finish(self, record: UsageRecord, call: Call | None) -> None:
        """Take the usage record of a request that ended; called by the gateway before any user subscriber.

        Synchronous and first, so that the metrics include the request before anything can
        suspend: a scrape sent right after the response sees it.
        """
        exchange = _EXCHANGE.get()
        if exchange is not None:
            exchange.record = record
        self._observe(record, call)

    def _observe(self, record: UsageRecord, call: Call | None, *, chat: bool = True) -> None:
        if self.metrics is not None:
            if call is not None:
                self.metrics.observe(record, call.attempts, call.skipped)
            else:
                self.metrics.observe(record, (), chat=chat)
        if self.access is not None:
            self.access.emit(record)

    def front(self, app: ASGIApp) -> ASGIApp:
        """`app` (the gateway's HTTP handler) behind the health and metrics endpoints and telemetry."""
        own = self._own
        if not self.records:

            async def plain(scope: Scope, receive: Receive, send: Send) -> None:
                endpoint = own.get(route_path(scope))
                if endpoint is not None:
                    await endpoint(scope, receive, send)
                else:
                    await app(scope, receive, send)

            return plain

        async def observed(scope: Scope, receive: Receive, send: Send) -> None:
            path = route_path(scope)
            endpoint = own.get(path)
            if endpoint is not None:
                if not self.observe_health or path not in ("/healthz", "/readyz"):
                    await endpoint(scope, receive, send)
                    return
                await self._exchange(endpoint, path, scope, receive, send)
                return
            await self._exchange(app, path, scope, receive, send)

        return observed

    async def _exchange(self, app: ASGIApp, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        exchange = _Exchange()
        arrived = time.time()
        started = time.monotonic()
        token = _EXCHANGE.set(exchange)
        tracing = self.tracing
        span = span_token = None
        if tracing is not None:
            span, span_token = tracing.start_server(scope, _route(path))
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()

        async def watched(message: Message) -> None:
            if exchange.status is None and message["type"] == "http.response.start":
                exchange.status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-request-id":
                        exchange.request_id = value.decode("latin-1")
                        break
            await send(message)

        try:
            await app(scope, receive, watched)
        finally:
            _EXCHANGE.reset(token)
            if metrics is not None:
                metrics.in_flight.dec()
            record = exchange.record
            if record is None:
                # No usage record for this request (not a chat request): one with what is known.
                status = exchange.status if exchange.status is not None else _CLIENT_CLOSED
                record = UsageRecord(
                    request_id=exchange.request_id or "",
                    time=iso_time(arrived),
                    account=None,
                    model=None,
                    provider=None,
                    upstream_model=None,
                    prompt_tokens=None,
                    cached_tokens=None,
                    completion_tokens=None,
                    reasoning_tokens=None,
                    cost_usd=None,
                    status=status,
                    error_code=None if exchange.status is not None else "client_disconnected",
                    attempts=0,
                    latency_ms=round((time.monotonic() - started) * 1000, 3),
                    ttft_ms=None,
                    stream=None,
                    method=scope["method"],
                    path=client_path(scope),
                )
                self._observe(record, None, chat=False)
            if tracing is not None:
                tracing.end_server(span, span_token, exchange.status, exchange.record)


# The gateway's routes, for span names: nothing a client chose (a model id, a bad URL) gets in.
# A door added to the gateway adds its path here.
_ROUTES: Final = frozenset(
    {
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/models",
        "/v1/key",
        "/healthz",
        "/readyz",
    }
)


def _route(path: str) -> str:
    if path in _ROUTES:
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{model}"
    return "unknown"
