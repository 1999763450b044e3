"""Every key a configuration file may hold, declared once, as data.

The loader asks this tree which keys each section accepts (its unknown-key checks), and the
documentation test walks it to prove that `docs/configuration.md` documents exactly these keys,
with these types and defaults. So adding a key means adding it here; forgetting to document it
fails the test suite, and so does documenting a key the loader would refuse.

What the tree holds and what it does not:

- The *names* are authoritative: `Section.names` is the loader's allowed set.
- `type` and `default` are the reference's wording. The readers in `loader`, `limits` and
  `fields` still do the checking; defaults are read off the schema's own dataclasses wherever
  one exists, so a hint cannot disagree with the value the loader fills in.
- A provider's extra options (`organization`, `api_version`, ...) belong to its adapter, which
  registers them with the registry; the provider section here holds only the keys every
  provider takes.

Paths name a key as the reference does: `server.port`, `providers.NAME.type` (a mapping keyed by
your own names), `keys[].name` (each item of a list).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from .schema import (
    AuthConfig,
    GatewayConfig,
    HealthConfig,
    MetricsConfig,
    ModelConfig,
    ParamsConfig,
    ProviderConfig,
    RedisConfig,
    RetryConfig,
    ServerConfig,
    StateConfig,
    UpstreamConfig,
)

__all__ = [
    "BUDGET",
    "HEALTH",
    "KEY",
    "KEY_POLICY",
    "LIMITS",
    "METRICS",
    "MODEL",
    "MODEL_POLICY",
    "POLICY",
    "PRICE",
    "PROVIDER",
    "REDIS",
    "RETRY",
    "ROOT",
    "ROOT_LIMITS",
    "ROUTE",
    "ROUTE_LIMITS",
    "SERVER",
    "STATE",
    "TOKEN_QUOTA",
    "UPSTREAM",
    "USAGE",
    "Items",
    "Key",
    "Named",
    "Node",
    "Section",
    "show",
    "walk",
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()


def show(value: object) -> str:
    """A default as the reference prints it: code for a value, plain words otherwise."""
    if value is REQUIRED:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


@dataclass(frozen=True, slots=True)
class Key:
    """One value. `default` is a Python value (shown by `show`), or `shown` says it in words."""

    type: str
    default: object = None
    shown: str | None = None

    @property
    def default_text(self) -> str:
        return self.shown if self.shown is not None else show(self.default)


@dataclass(frozen=True, slots=True)
class Section:
    """A mapping with fixed key names.

    `same_as` names the section whose reference rows document these keys (the `limits` of a key,
    a model and a route take the top-level `limits` keys, or some of them): the reference then
    has one row for this section and none for its keys, and the docs test checks that each of
    them is the canonical section's own node.
    """

    keys: Mapping[str, Node]
    type: str = "mapping"
    default: str = "none"
    same_as: str | None = None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.keys)

    @property
    def default_text(self) -> str:
        return self.default


@dataclass(frozen=True, slots=True)
class Named:
    """A mapping keyed by names the user chooses (providers, models, prices)."""

    placeholder: str
    item: Node
    type: str = "mapping"
    default: str = "`{}`"

    @property
    def default_text(self) -> str:
        return self.default


@dataclass(frozen=True, slots=True)
class Items:
    """A list whose items all have the same shape."""

    item: Node
    type: str = "list"
    default: str = "`[]`"

    @property
    def default_text(self) -> str:
        return self.default


Node = Key | Section | Named | Items


def _section(keys: dict[str, Node], **kwargs: str) -> Section:
    return Section(MappingProxyType(keys), **kwargs)


_SERVER: Final = ServerConfig()
_UPSTREAM: Final = UpstreamConfig()
_RETRY: Final = RetryConfig()
_STATE: Final = StateConfig()
_GATEWAY: Final = GatewayConfig()
_MODEL: Final = ModelConfig("", ())
_SECONDS_POSITIVE: Final = "number > 0 (seconds)"
_PERIOD: Final = "`day`, `week`, `month` or `total`"
_CAPABILITIES: Final = "mapping: capability to `true`/`false`, limit to integer ≥ 1"

SERVER: Final = _section(
    {
        "host": Key("string", _SERVER.host),
        "port": Key("integer, 0 to 65535", _SERVER.port),
        "max_body_bytes": Key("integer ≥ 1", _SERVER.max_body_bytes),
        "keepalive": Key("number ≥ 0 (seconds)", _SERVER.keepalive),
        "shutdown_timeout": Key("number ≥ 0 (seconds)", _SERVER.shutdown_timeout),
        "engine": Key("`uvicorn` or `granian`", _SERVER.engine),
    }
)

UPSTREAM: Final = _section(
    {
        "max_body_bytes": Key("integer ≥ 1", _UPSTREAM.max_body_bytes),
        "max_event_bytes": Key("integer ≥ 1", _UPSTREAM.max_event_bytes),
        "max_decompression_ratio": Key("number > 0", _UPSTREAM.max_decompression_ratio),
    }
)

PROVIDER: Final = _section(
    {
        "type": Key("string: a registered provider type", REQUIRED),
        "base_url": Key("`http://` or `https://` URL", ProviderConfig("", "").base_url, shown="the adapter's"),
        "api_key": Key("string", None),
        "timeout": Key(_SECONDS_POSITIVE, ProviderConfig("", "").timeout),
        "headers": Key("mapping of strings", shown="`{}`"),
    },
    type="mapping (plus the type's own options)",
    default="none",
)

_POLICY_TYPE: Final = "`reject`, `drop` or `clamp`"
POLICY: Final = _section({"unsupported": Key(_POLICY_TYPE, ParamsConfig().unsupported)})
# A model's and a key's policy: unset, the next one out decides (the key's, the model's, the global).
MODEL_POLICY: Final = _section({"unsupported": Key(_POLICY_TYPE, shown="`params.unsupported`")})
KEY_POLICY: Final = _section({"unsupported": Key(_POLICY_TYPE, shown="the model's, else `params.unsupported`")})

BUDGET: Final = _section(
    {
        "usd": Key("number ≥ 0", REQUIRED),
        "period": Key(_PERIOD, "month"),
    }
)

TOKEN_QUOTA: Final = _section(
    {
        "total": Key("integer ≥ 0", REQUIRED),
        "period": Key(_PERIOD, "month"),
    }
)

LIMITS: Final = _section(
    {
        "rpm": Key("integer ≥ 1", None),
        "tpm": Key("integer ≥ 1", None),
        "concurrency": Key("integer ≥ 1", None),
        "budget": BUDGET,
        "tokens": TOKEN_QUOTA,
    },
    same_as="limits",
)

# The top-level `limits`: the defaults for keys without their own, plus the output estimate.
ROOT_LIMITS: Final = _section(
    {
        **LIMITS.keys,
        "estimate_output_tokens": Key("integer ≥ 1", _GATEWAY.estimate_output_tokens),
    }
)

# A route's limits are the upstream's own quota: rates only (see `LimitFields.route_limits`).
ROUTE_LIMITS: Final = _section({name: LIMITS.keys[name] for name in ("rpm", "tpm")}, same_as="limits")

ROUTE: Final = _section(
    {
        "provider": Key("string: a provider name, or `echo`", REQUIRED),
        "model": Key("string: the upstream's model name", REQUIRED),
        "weight": Key("number > 0", None),
        "params": Key("mapping", shown="`{}`"),
        "capabilities": Key(_CAPABILITIES, shown="`{}`"),
        "limits": ROUTE_LIMITS,
    }
)

MODEL: Final = _section(
    {
        "routes": Items(ROUTE, type="list", default="required"),
        "capabilities": Key(_CAPABILITIES, shown="`{}`"),
        "fallbacks": Key("list of model ids", shown="`[]`"),
        "owned_by": Key("string", _MODEL.owned_by, shown="the first route's provider"),
        "params": MODEL_POLICY,
        "response_model": Key("`public` or `upstream`", _MODEL.response_model),
        "limits": LIMITS,
    }
)

KEY: Final = _section(
    {
        "name": Key("string", REQUIRED),
        "key": Key("string", shown="one of `key`, `sha256`"),
        "sha256": Key("64 hexadecimal characters", shown="one of `key`, `sha256`"),
        "models": Key('list of model ids, or `["*"]`', REQUIRED),
        "metadata": Key("mapping of strings", shown="`{}`"),
        "params": KEY_POLICY,
        "limits": _section(dict(LIMITS.keys), same_as="limits", default="the top-level `limits`"),
        "expires": Key("ISO 8601 time or YAML timestamp", None),
    }
)

AUTH: Final = _section({"mode": Key("`none` or `keys`", AuthConfig().mode)})

RETRY: Final = _section(
    {
        "attempts": Key("integer ≥ 1", _RETRY.attempts),
        "backoff_initial": Key(_SECONDS_POSITIVE, _RETRY.backoff_initial),
        "backoff_max": Key(_SECONDS_POSITIVE, _RETRY.backoff_max),
        "timeout": Key(_SECONDS_POSITIVE, _RETRY.timeout),
        "first_token_timeout": Key(_SECONDS_POSITIVE, _RETRY.first_token_timeout),
        "cooldown_after": Key("integer ≥ 1", _RETRY.cooldown_after),
        "cooldown": Key(_SECONDS_POSITIVE, _RETRY.cooldown),
        "cooldown_max": Key(_SECONDS_POSITIVE, _RETRY.cooldown_max),
    }
)

PRICE: Final = _section(
    {
        "input": Key("number ≥ 0 (USD per 1M tokens)", REQUIRED),
        "output": Key("number ≥ 0 (USD per 1M tokens)", REQUIRED),
        "cached_input": Key("number ≥ 0 (USD per 1M tokens)", shown="the `input` rate"),
        "reasoning": Key("number ≥ 0 (USD per 1M tokens)", shown="the `output` rate"),
    }
)

USAGE: Final = _section({"jsonl": Key("string: a file path", None)})

REDIS: Final = _section(
    {
        "url": Key("`redis://`, `rediss://` or `unix://` URL", REQUIRED),
        "prefix": Key("string without `{` or `}`", RedisConfig("").prefix),
    }
)

STATE: Final = _section(
    {
        "redis": REDIS,
        "on_error": Key("`open` or `closed`", _STATE.on_error),
        "timeout": Key(_SECONDS_POSITIVE, _STATE.timeout),
        "lease": Key(_SECONDS_POSITIVE, _STATE.lease),
    }
)

METRICS: Final = _section(
    {
        "prometheus": Key("`true` or `false`", MetricsConfig().prometheus),
        "path": Key("path starting with `/`, or null", MetricsConfig().path),
    }
)

HEALTH: Final = _section({"observe": Key("`true` or `false`", HealthConfig().observe)})

ROOT: Final = _section(
    {
        "server": SERVER,
        "providers": Named("NAME", PROVIDER),
        "models": Named("ID", MODEL, default="required"),
        "keys": Items(KEY),
        "auth": AUTH,
        "retry": RETRY,
        "params": POLICY,
        "upstream": UPSTREAM,
        "prices": Named("MODEL", PRICE),
        "limits": ROOT_LIMITS,
        "usage": USAGE,
        "state": STATE,
        "metrics": METRICS,
        "health": HEALTH,
    }
)


def walk(node: Node = ROOT, path: str = "") -> Iterator[tuple[str, Node]]:
    """Every documented path under `node`, depth first; a `same_as` section's keys are not."""
    if path:
        yield path, node
    if isinstance(node, Section):
        if node.same_as is not None:
            return
        for name, child in node.keys.items():
            yield from walk(child, f"{path}.{name}" if path else name)
    elif isinstance(node, Named):
        yield from walk(node.item, f"{path}.{node.placeholder}")
    elif isinstance(node, Items):
        yield from walk(node.item, f"{path}[]")
