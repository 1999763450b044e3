"""The validated configuration: frozen records, built only by `routemw.config.load_config`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

UnsupportedPolicy = Literal["reject", "drop", "clamp"]
ResponseModel = Literal["public", "upstream"]
Period = Literal["day", "week", "month", "total"]

__all__ = [
    "AuthConfig",
    "BudgetConfig",
    "GatewayConfig",
    "HealthConfig",
    "KeyConfig",
    "LimitsConfig",
    "MetricsConfig",
    "ModelConfig",
    "ParamsConfig",
    "Period",
    "PriceConfig",
    "ProviderConfig",
    "RedisConfig",
    "ResponseModel",
    "RetryConfig",
    "RouteConfig",
    "ServerConfig",
    "StateConfig",
    "TokenQuotaConfig",
    "UnsupportedPolicy",
    "UpstreamConfig",
    "UsageConfig",
]


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 8 * 1024 * 1024
    # Seconds of upstream silence after which a stream gets an SSE comment, so that proxies
    # and clients with idle timeouts keep the connection open during long pauses; 0 turns it off.
    keepalive: float = 15.0
    # Seconds a shutting-down `routemw serve` gives requests in flight before ending them with a
    # `server_shutting_down` error; under Kubernetes' default 30 s grace period before SIGKILL.
    shutdown_timeout: float = 25.0
    # The HTTP server `routemw serve` runs the gateway on: "uvicorn" (installed with routemw) or
    # "granian" (the `routemw[granian]` extra); `--server` overrides it.
    engine: str = "uvicorn"


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Bounds on what an upstream may send; anything past them is an invalid upstream response."""

    max_body_bytes: int = 32 * 1024 * 1024  # a whole (non-stream) body, after decompression
    max_event_bytes: int = 8 * 1024 * 1024  # one SSE line, and one event's data
    # A compressed body may inflate to this many times the compressed bytes received (checked
    # once more than 1 MiB has come out, so a small repetitive answer is never taken for a bomb).
    max_decompression_ratio: float = 100.0


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One named upstream endpoint; `type` picks the adapter, `options` are the adapter's own."""

    name: str
    type: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    headers: Mapping[str, str] = field(default_factory=_empty, repr=False)
    options: Mapping[str, Any] = field(default_factory=_empty)


# -- limits, prices and usage (see routemw.limits) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """A spending cap per UTC calendar period, in integer micro-USD (no float drift)."""

    micro_usd: int
    period: Period = "month"


@dataclass(frozen=True, slots=True)
class TokenQuotaConfig:
    """A cap on tokens (input + output) per UTC calendar period."""

    total: int
    period: Period = "month"


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """`limits` on a key, a model, a route, or the defaults; None means "no such limit"."""

    rpm: int | None = None  # requests in any 60 s, a burst of all of them allowed
    tpm: int | None = None  # tokens (input + output) in any 60 s
    concurrency: int | None = None  # requests in flight at once
    budget: BudgetConfig | None = None
    tokens: TokenQuotaConfig | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.concurrency, self.budget, self.tokens))


@dataclass(frozen=True, slots=True)
class PriceConfig:
    """USD per 1M tokens; cached input and reasoning default to the input and output rates."""

    input: float
    output: float
    cached_input: float | None = None
    reasoning: float | None = None


@dataclass(frozen=True, slots=True)
class UsageConfig:
    jsonl: str | None = None  # a file that gets one JSON usage record per line


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """One candidate for a public model: a provider and the model name it knows.

    `weight` is None when the route does not set one. Whether any route of a model sets it is
    what decides between a weighted choice and an ordered preference (see `routing.catalog`),
    so its absence is kept rather than filled in with 1.
    """

    provider: str
    model: str
    weight: float | None = None
    params: Mapping[str, Any] = field(default_factory=_empty)  # defaults for keys the client did not send
    capabilities: Mapping[str, bool | int] = field(default_factory=_empty)
    limits: LimitsConfig = LimitsConfig()  # rpm/tpm: the upstream's own quota for this route


@dataclass(frozen=True, slots=True)
class ModelConfig:
    name: str
    routes: tuple[RouteConfig, ...]
    capabilities: Mapping[str, bool | int] = field(default_factory=_empty)
    fallbacks: tuple[str, ...] = ()
    owned_by: str | None = None
    unsupported_params: UnsupportedPolicy | None = None  # `params.unsupported` for this model
    # What answers report in `model`: the public id the client asked for, or the upstream's name.
    response_model: ResponseModel = "public"
    limits: LimitsConfig = LimitsConfig()  # shared by every account using this public model


@dataclass(frozen=True, slots=True)
class KeyConfig:
    """An inbound API key (an account). Exactly one of `key` and `sha256` is set."""

    name: str
    models: tuple[str, ...]
    key: str | None = field(default=None, repr=False)
    sha256: str | None = field(default=None, repr=False)
    metadata: Mapping[str, str] = field(default_factory=_empty)
    unsupported_params: UnsupportedPolicy | None = None  # `params.unsupported` for this key
    limits: LimitsConfig | None = None  # None: the config's default `limits`
    expires: datetime | None = None  # timezone-aware; refused from then on


@dataclass(frozen=True, slots=True)
class AuthConfig:
    mode: Literal["none", "keys"] = "none"


@dataclass(frozen=True, slots=True)
class RetryConfig:
    attempts: int = 3  # calls to one target, the first included
    backoff_initial: float = 0.25
    backoff_max: float = 8.0
    timeout: float = 120.0  # one deadline for every attempt, sleep and fallback of a request
    first_token_timeout: float | None = None  # a stream's wait for its first meaningful event
    cooldown_after: int = 3  # consecutive retryable failures that cool a target down
    cooldown: float = 5.0  # the first cooldown, doubled for each one in a row
    cooldown_max: float = 300.0


@dataclass(frozen=True, slots=True)
class ParamsConfig:
    unsupported: UnsupportedPolicy = "reject"


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    prometheus: bool = False  # serve Prometheus metrics (needs the `routemw[metrics]` extra)
    path: str | None = "/metrics"  # where the gateway serves them; None: only `gateway.metrics_app`


@dataclass(frozen=True, slots=True)
class HealthConfig:
    # Whether /healthz and /readyz requests appear in the access log, request metrics and spans.
    observe: bool = False


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = field(repr=False)  # may carry a password
    prefix: str = "routemw:"  # every key starts with it


@dataclass(frozen=True, slots=True)
class StateConfig:
    """Where state that outlives a request lives: this process (no `redis`) or a shared Redis."""

    redis: RedisConfig | None = None
    on_error: Literal["open", "closed"] = "open"  # Redis away: count locally, or refuse with 503
    timeout: float = 0.25  # seconds one store operation may take before it counts as Redis away
    lease: float = 60.0  # seconds a concurrency slot or reservation outlives an instance that stopped renewing it


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    server: ServerConfig = ServerConfig()
    providers: Mapping[str, ProviderConfig] = field(default_factory=_empty)
    models: Mapping[str, ModelConfig] = field(default_factory=_empty)
    keys: tuple[KeyConfig, ...] = ()
    auth: AuthConfig = AuthConfig()
    retry: RetryConfig = RetryConfig()
    params: ParamsConfig = ParamsConfig()
    upstream: UpstreamConfig = UpstreamConfig()
    prices: Mapping[str, PriceConfig] = field(default_factory=_empty)
    limits: LimitsConfig = LimitsConfig()  # defaults for keys without their own
    # `limits.estimate_output_tokens`: output reserved for a request without max_tokens or route default
    estimate_output_tokens: int = 1024
    usage: UsageConfig = UsageConfig()
    metrics: MetricsConfig = MetricsConfig()
    health: HealthConfig = HealthConfig()
    state: StateConfig = StateConfig()
    source: str = "<mapping>"  # where it came from, for messages

    def secrets(self) -> tuple[str, ...]:
        """Every secret this configuration holds, so output can be scrubbed of them."""
        found = [p.api_key for p in self.providers.values() if p.api_key]
        found += [k.key for k in self.keys if k.key]
        if self.state.redis is not None:
            password = urlsplit(self.state.redis.url).password
            if password:
                found.append(password)
        for provider in self.providers.values():
            for value in provider.headers.values():
                # A header value may be "Bearer <token>": the token alone is the secret, and an
                # upstream echoing just the token must be caught too.
                found += [value, value.rsplit(" ", 1)[-1]]
        # Short strings are too likely to be ordinary words to blank out wherever they appear.
        return tuple(dict.fromkeys(s for s in found if len(s) >= 8))
