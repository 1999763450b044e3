"""Prometheus metrics through `prometheus-client` (the `routemw[metrics]` extra).

Every label value comes from the configuration: a model, provider, route or account the config
does not name is counted as `unknown`, so what a client sends can never add a time series (the
label cardinality that made LiteLLM's exporter leak memory). No request id, key or per-user
label exists.

The GenAI histograms follow the OpenTelemetry GenAI conventions, names turned into Prometheus
spelling and bucket boundaries as the conventions give them. Client metrics are per upstream
attempt (routemw is the provider's client), server metrics per inbound request.

Each gateway has its own `CollectorRegistry`, so two gateways in one process (tests, a host
with two) do not collide. Under `routemw serve --workers N` prometheus-client's multiprocess
mode is on (`PROMETHEUS_MULTIPROC_DIR`, set up by `routemw serve`): every worker writes its
values to files there and a scrape, answered by any worker, sums them.

Counting is a handful of dictionary lookups and lock-guarded additions per request; the label
children are cached, since `labels()` itself validates and locks on every call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import anyio

from ..errors import ConfigError
from ..http.asgi import Receive, Scope, Send
from ..usage import UsageRecord

if TYPE_CHECKING:
    from ..errors import Attempt
    from ..state import RedisGuard

__all__ = ["DURATION_BUCKETS", "LIMIT_KINDS", "TOKEN_BUCKETS", "TTFT_BUCKETS", "PrometheusMetrics"]

MULTIPROCESS_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
TOKEN_BUCKETS: Final = tuple(float(4**n) for n in range(14))  # 1, 4, 16, ... 67108864
DURATION_BUCKETS: Final = tuple(0.01 * 2**n for n in range(14))  # 0.01, 0.02, ... 81.92
TTFT_BUCKETS: Final = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
LIMIT_KINDS: Final = ("requests", "tokens", "concurrency", "budget", "tokens_quota")
UNKNOWN: Final = "unknown"
OPERATION: Final = "chat"


class PrometheusMetrics:
    """The gateway's metrics; `observe` is called once per finished request."""

    def __init__(
        self,
        *,
        models: Iterable[str],
        targets: Iterable[tuple[str, str]],
        accounts: Iterable[str],
        genai_providers: Mapping[str, str],
        cooling_for: Callable[[str], float | None] | None = None,
        state_guard: RedisGuard | None = None,
    ) -> None:
        """`targets` are (provider, upstream model) pairs, `genai_providers` maps a provider's
        config name to its `gen_ai.provider.name`; `cooling_for(target key)` peeks at health;
        `state_guard` counts the Redis operations that failed (`routemw_state_errors_total`)."""
        try:
            import prometheus_client as prom
        except ImportError as exc:  # pragma: no cover - the test extra installs it
            raise ConfigError(
                ["metrics.prometheus: needs prometheus-client; install it with pip install 'routemw[metrics]'"]
            ) from exc
        self._prom = prom
        self.registry = prom.CollectorRegistry(auto_describe=True)
        self._models = frozenset(models)
        self._targets = frozenset(targets)
        self._accounts = frozenset(accounts)
        self._genai = dict(genai_providers)
        self._cooling_for = cooling_for
        self._guard = state_guard
        self._state_errors_seen = 0  # the guard's failure count already added to the counter
        self._cooling: set[tuple[str, str]] = set()  # targets whose gauge is at 1
        self._children: dict[tuple[Any, ...], Any] = {}
        reg = self.registry
        self.token_usage = prom.Histogram(
            "gen_ai_client_token_usage",
            "Tokens per upstream answer (input: the prompt, cached tokens included; output: the completion).",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=reg,
        )
        self.operation_duration = prom.Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Seconds per upstream attempt, to its answer (a stream: to its first meaningful event).",
            ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "error_type"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.time_to_first_token = prom.Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Seconds from a streamed request's arrival to its first chunk.",
            ["gen_ai_operation_name", "gen_ai_request_model"],
            buckets=TTFT_BUCKETS,
            registry=reg,
        )
        self.request_duration = prom.Histogram(
            "gen_ai_server_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer.",
            ["gen_ai_operation_name", "gen_ai_request_model", "error_type"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.requests = prom.Counter(
            "routemw_requests", "Requests answered.", ["account", "model", "status_class"], registry=reg
        )
        self.attempts = prom.Counter(
            "routemw_upstream_attempts",
            "Upstream calls, by what came of them.",
            ["provider", "upstream_model", "outcome"],
            registry=reg,
        )
        self.fallbacks = prom.Counter(
            "routemw_fallbacks", "Candidates passed over before the one that answered.", ["model"], registry=reg
        )
        self.cooling = prom.Gauge(
            "routemw_targets_cooling",
            "1 while a route is cooling down (skipped by requests), else 0.",
            ["provider", "upstream_model"],
            multiprocess_mode="livemax",
            registry=reg,
        )
        self.limit_rejections = prom.Counter(
            "routemw_limit_rejections", "Requests refused by a limit of the gateway's.", ["kind"], registry=reg
        )
        self.cost = prom.Counter(
            "routemw_cost_usd", "What answered requests cost, in US dollars.", ["account", "model"], registry=reg
        )
        self.in_flight = prom.Gauge(
            "routemw_requests_in_flight", "Requests being answered.", multiprocess_mode="livesum", registry=reg
        )
        self.state_errors = prom.Counter(
            "routemw_state_errors", "Shared-state (Redis) operations that failed.", registry=reg
        )
        for provider, model in sorted(self._targets):
            self.cooling.labels(provider, model).set(0)
        for kind in LIMIT_KINDS:
            self.limit_rejections.labels(kind)

    # -- per request -----------------------------------------------------------------------

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe(
        self, record: UsageRecord, attempts: Sequence[Attempt], skipped: Sequence[Any] = (), *, chat: bool = True
    ) -> None:
        """Count one finished request: its record, and the upstream attempts it made.

        `chat=False` for a request that was not a completion (`/v1/models`, an unknown URL):
        it counts in `routemw_requests_total` only.
        """
        model = record.model if record.model in self._models else UNKNOWN
        account = record.account if record.account in self._accounts else UNKNOWN
        status = record.status
        child = self._child
        child(self.requests, account, model, f"{status // 100}xx").inc()
        if not chat:
            return
        # A stream that failed after it started was a 200 to the client, and an error all the same.
        error_type = str(status) if status >= 400 else "in_band_error" if record.error_code is not None else ""
        child(self.request_duration, OPERATION, model, error_type).observe(record.latency_ms / 1000)
        if record.ttft_ms is not None:
            child(self.time_to_first_token, OPERATION, model).observe(record.ttft_ms / 1000)
        if record.limit is not None and record.limit in LIMIT_KINDS:
            child(self.limit_rejections, record.limit).inc()
        if record.fallbacks:
            child(self.fallbacks, model).inc(record.fallbacks)
        if record.cost_usd:
            child(self.cost, account, model).inc(record.cost_usd)
        if record.prompt_tokens is not None and record.provider is not None:
            genai = self._genai.get(record.provider, UNKNOWN)
            pair = (record.provider, record.upstream_model or "")
            upstream = pair[1] if pair in self._targets else UNKNOWN
            child(self.token_usage, OPERATION, genai, upstream, "input").observe(record.prompt_tokens)
            if record.completion_tokens is not None:
                child(self.token_usage, OPERATION, genai, upstream, "output").observe(record.completion_tokens)
        failed = False
        for attempt in attempts:
            pair = (attempt.provider, attempt.model)
            provider, upstream = pair if pair in self._targets else (UNKNOWN, UNKNOWN)
            action = attempt.action
            outcome = "answered" if action is None else action.value
            child(self.attempts, provider, upstream, outcome).inc()
            genai = self._genai.get(attempt.provider, UNKNOWN)
            child(self.operation_duration, OPERATION, genai, upstream, _attempt_error(attempt)).observe(attempt.latency)
            if action is not None:
                failed = True
            elif pair in self._cooling:
                self._set_cooling(pair, False)  # it answered: its probe closed the circuit
        if failed or skipped:
            self._refresh_cooling(attempts, skipped)
        if self._guard is not None:
            self._count_state_errors(self._guard)

    def _count_state_errors(self, guard: RedisGuard) -> None:
        """Bring `routemw_state_errors_total` up to the guard's count of failed Redis operations.

        The guard counts on its own (it knows nothing of metrics); this catches up with it when
        a request ends and before a scrape. A failure happens during some request, so a scrape
        after that request's answer includes it.
        """
        failures = guard.failures
        if failures != self._state_errors_seen:
            self.state_errors.inc(failures - self._state_errors_seen)
            self._state_errors_seen = failures

    def _set_cooling(self, pair: tuple[str, str], cooling: bool) -> None:
        self._child(self.cooling, *pair).set(1 if cooling else 0)
        if cooling:
            self._cooling.add(pair)
        else:
            self._cooling.discard(pair)

    def _refresh_cooling(self, attempts: Sequence[Attempt], skipped: Sequence[Any]) -> None:
        pairs = {(a.provider, a.model) for a in attempts if a.action is not None}
        pairs.update((target.provider.name, target.model) for target, _ in skipped)
        for pair in pairs & self._targets:
            if self._cooling_for is not None:
                self._set_cooling(pair, self._cooling_for(f"{pair[0]}/{pair[1]}") is not None)
            elif any((t.provider.name, t.model) == pair and why.startswith("cooling") for t, why in skipped):
                self._set_cooling(pair, True)  # a store that cannot be peeked at: what requests saw

    def refresh(self) -> None:
        """Bring every route's cooling gauge and the state error count up to date (before a scrape)."""
        if self._guard is not None:
            self._count_state_errors(self._guard)
        if self._cooling_for is None:
            return
        for pair in self._targets:
            self._set_cooling(pair, self._cooling_for(f"{pair[0]}/{pair[1]}") is not None)

    # -- exposition ------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text exposition format: this gateway's registry, or every worker's files."""
        prom = self._prom
        directory = os.environ.get(MULTIPROCESS_VARIABLE)
        if directory:
            from prometheus_client import multiprocess

            registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
            return bytes(prom.generate_latest(registry))
        return bytes(prom.generate_latest(self.registry))

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An ASGI app answering GET (and HEAD) with the metrics; mount it anywhere."""
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 405, "headers": [(b"allow", b"GET, HEAD")]})
            await send({"type": "http.response.body", "body": b""})
            return
        self.refresh()
        if os.environ.get(MULTIPROCESS_VARIABLE):
            body = await anyio.to_thread.run_sync(self.exposition)  # reads every worker's files
        else:
            body = self.exposition()
        headers = [
            (b"content-type", self._prom.CONTENT_TYPE_LATEST.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def _attempt_error(attempt: Attempt) -> str:
    """A bounded `error_type`: empty for an answer, else the upstream status or `no_response`."""
    if attempt.action is None:
        return ""
    if attempt.status is not None:
        return str(attempt.status)
    return "upstream_timeout" if attempt.code == "upstream_timeout" else "no_response"
