"""The configuration document's sections, read into a `GatewayConfig`.

Apart from the loader (`loader`), which turns a file or mapping into a plain document (YAML or
JSON, with `${VAR}` references replaced): everything here works on that document alone, so a
mapping built in code and a file on disk are validated by the same reader. Validation collects
every problem with its dotted path (`models.gpt-4o.routs: unknown key`) instead of stopping at
the first, so `routemw check` can list them all. A configuration that serves no model is
refused: it would start and answer every request with a 404. The typed field readers are in
`fields`; the `limits`, `prices`, `usage` and telemetry sections in `limits` and `telemetry`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from . import keys as accepted
from .fields import join, kind
from .limits import LimitFields
from .schema import (
    AuthConfig,
    GatewayConfig,
    KeyConfig,
    ModelConfig,
    ParamsConfig,
    ProviderConfig,
    RedisConfig,
    RetryConfig,
    RouteConfig,
    ServerConfig,
    StateConfig,
    UpstreamConfig,
)
from .telemetry import TelemetryFields

__all__ = ["BUILTIN_PROVIDERS", "ProviderTypes", "Validator"]

# What the loader needs to know about adapters: each known `type` and the extra option names it
# takes beyond the common provider keys. The registry supplies it; `None` skips those checks.
ProviderTypes = Mapping[str, frozenset[str]]

# Providers every gateway has without declaring them (they need no network or credentials).
BUILTIN_PROVIDERS: Final = {"echo": "echo"}

_SHA256: Final = re.compile(r"[0-9a-fA-F]{64}")
_REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")


class Validator(LimitFields, TelemetryFields):
    """Walks the document once; every check appends to `problems` and carries on."""

    def __init__(self, problems: list[str], provider_types: ProviderTypes | None) -> None:
        super().__init__(problems)
        self.provider_types = provider_types
        # Every provider name in the document, valid or not: a route naming a provider whose own
        # entry is broken has that one problem, reported at the provider, not again per route.
        self.declared: frozenset[str] = frozenset()

    def gateway(self, document: Any, origin: str) -> GatewayConfig | None:
        data = self.mapping(document, "", accepted.ROOT.names)
        if data is None:
            return None
        providers = self.providers(data.get("providers"), "providers")
        models = self.models(data.get("models"), "models", providers)
        if data.get("models") is None or data.get("models") == {}:
            # Loading would succeed and serve nothing: every request a 404. Say what is missing.
            self.problem(
                "models",
                "required: at least one model, routed to a provider declared under `providers` "
                "(or to the built-in `echo`); this configuration serves nothing",
            )
        keys = self.keys(data.get("keys"), "keys", models)
        auth = self.auth(data.get("auth"), "auth")
        if auth.mode == "keys" and not keys and not any(p.startswith("keys") for p in self.problems):
            self.problem("auth.mode", "is 'keys' but no keys are configured; add `keys` or set `auth: {mode: none}`")
        return GatewayConfig(
            server=self.server(data.get("server"), "server"),
            providers=MappingProxyType(providers),
            models=MappingProxyType(models),
            keys=keys,
            auth=auth,
            retry=self.retry(data.get("retry"), "retry"),
            params=self.params(data.get("params"), "params"),
            upstream=self.upstream(data.get("upstream"), "upstream"),
            prices=self.prices(data.get("prices"), "prices"),
            limits=self.limits(data.get("limits"), "limits", accepted.ROOT_LIMITS.names),
            usage=self.usage(data.get("usage"), "usage"),
            metrics=self.metrics(data.get("metrics"), "metrics"),
            health=self.health(data.get("health"), "health"),
            estimate_output_tokens=self.estimate_output_tokens(data.get("limits")),
            state=self.state(data.get("state"), "state"),
            source=origin,
        )

    def estimate_output_tokens(self, limits: Any) -> int:
        default = GatewayConfig().estimate_output_tokens
        if not isinstance(limits, Mapping):
            return default
        return self.field(limits, "estimate_output_tokens", "limits", self.integer(1), default)

    def server(self, value: Any, path: str) -> ServerConfig:
        data = self.mapping(value, path, accepted.SERVER.names) or {}
        default = ServerConfig()
        port = self.field(data, "port", path, self.integer(0), default.port)
        if port > 65535:
            self.problem(join(path, "port"), f"must be at most 65535, got {port}")
        return ServerConfig(
            host=self.field(data, "host", path, self.string, default.host),
            port=port,
            max_body_bytes=self.field(data, "max_body_bytes", path, self.integer(1), default.max_body_bytes),
            keepalive=self.field(data, "keepalive", path, self.non_negative, default.keepalive),
            shutdown_timeout=self.field(data, "shutdown_timeout", path, self.non_negative, default.shutdown_timeout),
            engine=self.field(data, "engine", path, self.choice("uvicorn", "granian"), default.engine),
        )

    def upstream(self, value: Any, path: str) -> UpstreamConfig:
        data = self.mapping(value, path, accepted.UPSTREAM.names) or {}
        default = UpstreamConfig()
        return UpstreamConfig(
            max_body_bytes=self.field(data, "max_body_bytes", path, self.integer(1), default.max_body_bytes),
            max_event_bytes=self.field(data, "max_event_bytes", path, self.integer(1), default.max_event_bytes),
            max_decompression_ratio=self.field(
                data, "max_decompression_ratio", path, self.positive, default.max_decompression_ratio
            ),
        )

    def providers(self, value: Any, path: str) -> dict[str, ProviderConfig]:
        data = self.mapping(value, path) or {}
        self.declared = frozenset(data)
        out: dict[str, ProviderConfig] = {}
        for name, item in data.items():
            provider = self.provider(name, item, join(path, name))
            if provider is not None:
                out[name] = provider
        return out

    def provider(self, name: str, value: Any, path: str) -> ProviderConfig | None:
        data = self.mapping(value, path)
        if data is None:
            return None
        if "type" not in data:
            self.problem(join(path, "type"), "required (the adapter to use, for example `openai`)")
            return None
        type_name = self.string(data["type"], join(path, "type"))
        if type_name is None:
            return None
        option_names: frozenset[str] = frozenset()
        if self.provider_types is not None:
            if type_name not in self.provider_types:
                known = ", ".join(sorted(self.provider_types))
                self.problem(join(path, "type"), f"unknown provider type {type_name!r}; known types: {known}")
                return None
            option_names = self.provider_types[type_name]
        options = {}
        for key, item in data.items():
            if key in accepted.PROVIDER.names:
                continue
            if self.provider_types is not None and key not in option_names:
                self.problem(join(path, key), "unknown key")
                continue
            options[key] = item
        base_url = self.field(data, "base_url", path, self.url, None)
        api_key = data.get("api_key")
        if api_key is not None and not isinstance(api_key, str):
            self.problem(join(path, "api_key"), f"expected a string, got {kind(api_key)}")
            api_key = None
        return ProviderConfig(
            name=name,
            type=type_name,
            base_url=base_url,
            # An empty key (`${OPENAI_API_KEY:-}`) means "none": do not send an empty header.
            api_key=api_key or None,
            timeout=self.field(data, "timeout", path, self.positive, 60.0),
            headers=self.field(data, "headers", path, self.string_map, MappingProxyType({})),
            options=MappingProxyType(options),
        )

    def url(self, value: Any, path: str) -> str | None:
        url = self.string(value, path)
        if url is not None and not url.startswith(("http://", "https://")):
            self.problem(path, f"expected an http:// or https:// URL, got {url!r}")
            return None
        return None if url is None else url.rstrip("/")

    def models(self, value: Any, path: str, providers: Mapping[str, ProviderConfig]) -> dict[str, ModelConfig]:
        data = self.mapping(value, path) or {}
        out: dict[str, ModelConfig] = {}
        for name, item in data.items():
            model = self.model(name, item, join(path, name), providers)
            if model is not None:
                out[name] = model
        for name, model in out.items():
            for i, fallback in enumerate(model.fallbacks):
                if fallback not in data:
                    self.problem(f"{path}.{name}.fallbacks[{i}]", f"unknown model {fallback!r}")
                elif fallback == name:
                    self.problem(f"{path}.{name}.fallbacks[{i}]", "a model cannot fall back to itself")
        return out

    def model(self, name: str, value: Any, path: str, providers: Mapping[str, ProviderConfig]) -> ModelConfig | None:
        data = self.mapping(value, path, accepted.MODEL.names)
        if data is None:
            return None
        routes_value = data.get("routes")
        routes: list[RouteConfig] = []
        if not isinstance(routes_value, list) or not routes_value:
            self.problem(join(path, "routes"), "required: a non-empty list of {provider, model}")
        else:
            for i, item in enumerate(routes_value):
                route = self.route(item, f"{path}.routes[{i}]", providers)
                if route is not None:
                    routes.append(route)
        return ModelConfig(
            name=name,
            routes=tuple(routes),
            capabilities=self.field(data, "capabilities", path, self.capabilities, MappingProxyType({})),
            fallbacks=self.field(data, "fallbacks", path, self.string_list, ()),
            owned_by=self.field(data, "owned_by", path, self.string, None),
            unsupported_params=self.field(data, "params", path, self.policy, None),
            response_model=(
                "upstream"
                if self.field(data, "response_model", path, self.choice("public", "upstream"), "public") == "upstream"
                else "public"
            ),
            limits=self.limits(data.get("limits"), join(path, "limits")),
        )

    def route(self, value: Any, path: str, providers: Mapping[str, ProviderConfig]) -> RouteConfig | None:
        data = self.mapping(value, path, accepted.ROUTE.names)
        if data is None:
            return None
        provider = self.string(data.get("provider"), join(path, "provider"))
        model = self.string(data.get("model"), join(path, "model"))
        if provider is not None and provider not in self.declared and provider not in BUILTIN_PROVIDERS:
            known = ", ".join(sorted({*self.declared, *BUILTIN_PROVIDERS}))
            self.problem(join(path, "provider"), f"unknown provider {provider!r}; declared providers: {known}")
        weight = self.field(data, "weight", path, self.positive, None)  # None: not given (see RouteConfig)
        params: Mapping[str, Any] = self.field(data, "params", path, self.free_map, MappingProxyType({}))
        capabilities: Mapping[str, bool | int] = self.field(
            data, "capabilities", path, self.capabilities, MappingProxyType({})
        )
        limits = self.route_limits(data.get("limits"), join(path, "limits"))
        if provider is None or model is None or provider not in {*providers, *BUILTIN_PROVIDERS}:
            return None
        return RouteConfig(provider, model, weight=weight, params=params, capabilities=capabilities, limits=limits)

    def keys(self, value: Any, path: str, models: Mapping[str, ModelConfig]) -> tuple[KeyConfig, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem(path, f"expected a list, got {kind(value)}")
            return ()
        out: list[KeyConfig] = []
        names: dict[str, int] = {}
        digests: dict[bytes, int] = {}
        for i, item in enumerate(value):
            key = self.key(item, f"{path}[{i}]", models)
            if key is None:
                continue
            digest = bytes.fromhex(key.sha256) if key.sha256 else hashlib.sha256((key.key or "").encode()).digest()
            if key.name in names:
                self.problem(
                    f"{path}[{i}].name", f"account {key.name!r} is already defined at {path}[{names[key.name]}]"
                )
            if digest in digests:
                # Name the colliding entries, never the secret.
                self.problem(f"{path}[{i}]", f"uses the same secret as {path}[{digests[digest]}]")
            names.setdefault(key.name, i)
            digests.setdefault(digest, i)
            out.append(key)
        return tuple(out)

    def key(self, value: Any, path: str, models: Mapping[str, ModelConfig]) -> KeyConfig | None:
        data = self.mapping(value, path, accepted.KEY.names)
        if data is None:
            return None
        name = self.string(data.get("name"), join(path, "name"))
        secret = data.get("key")
        digest = data.get("sha256")
        valid_secret = False
        if (secret is None) == (digest is None):
            self.problem(path, "needs exactly one of `key` and `sha256`")
        elif secret is not None and not (isinstance(secret, str) and secret):
            # Never echo the value: it is a secret even when malformed.
            self.problem(join(path, "key"), "expected a non-empty string")
        elif digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
            self.problem(join(path, "sha256"), "expected 64 hexadecimal characters")
        else:
            valid_secret = True
        allowed_models = self.string_list(data.get("models"), join(path, "models")) if "models" in data else None
        if allowed_models is None:
            if "models" not in data:
                self.problem(join(path, "models"), 'required: a list of model ids, or ["*"]')
            return None
        for i, model in enumerate(allowed_models):
            if model != "*" and model not in models:
                self.problem(f"{path}.models[{i}]", f"unknown model {model!r}")
        if name is None or not valid_secret:
            return None
        return KeyConfig(
            name=name,
            models=allowed_models,
            key=secret if isinstance(secret, str) else None,
            sha256=digest.lower() if isinstance(digest, str) else None,
            metadata=self.field(data, "metadata", path, self.string_map, MappingProxyType({})),
            unsupported_params=self.field(data, "params", path, self.policy, None),
            limits=self.limits(data["limits"], join(path, "limits")) if "limits" in data else None,
            expires=self.field(data, "expires", path, self.expires, None),
        )

    def auth(self, value: Any, path: str) -> AuthConfig:
        data = self.mapping(value, path, accepted.AUTH.names) or {}
        mode = self.field(data, "mode", path, self.choice("none", "keys"), "none")
        return AuthConfig(mode="keys" if mode == "keys" else "none")

    def retry(self, value: Any, path: str) -> RetryConfig:
        data = self.mapping(value, path, accepted.RETRY.names) or {}
        default = RetryConfig()
        config = RetryConfig(
            attempts=self.field(data, "attempts", path, self.integer(1), default.attempts),
            backoff_initial=self.field(data, "backoff_initial", path, self.positive, default.backoff_initial),
            backoff_max=self.field(data, "backoff_max", path, self.positive, default.backoff_max),
            timeout=self.field(data, "timeout", path, self.positive, default.timeout),
            first_token_timeout=self.field(data, "first_token_timeout", path, self.positive, None),
            cooldown_after=self.field(data, "cooldown_after", path, self.integer(1), default.cooldown_after),
            cooldown=self.field(data, "cooldown", path, self.positive, default.cooldown),
            cooldown_max=self.field(data, "cooldown_max", path, self.positive, default.cooldown_max),
        )
        if config.backoff_max < config.backoff_initial:
            self.problem(join(path, "backoff_max"), "must not be smaller than backoff_initial")
        return config

    def params(self, value: Any, path: str) -> ParamsConfig:
        return ParamsConfig(unsupported=self.policy(value, path) or "reject")

    def state(self, value: Any, path: str) -> StateConfig:
        data = self.mapping(value, path, accepted.STATE.names) or {}
        default = StateConfig()
        on_error = self.field(data, "on_error", path, self.choice("open", "closed"), "open")
        return StateConfig(
            redis=self.redis(data["redis"], join(path, "redis")) if data.get("redis") is not None else None,
            on_error="closed" if on_error == "closed" else "open",
            timeout=self.field(data, "timeout", path, self.positive, default.timeout),
            lease=self.field(data, "lease", path, self.positive, default.lease),
        )

    def redis(self, value: Any, path: str) -> RedisConfig | None:
        data = self.mapping(value, path, accepted.REDIS.names)
        if data is None:
            return None
        if "url" not in data:
            self.problem(join(path, "url"), "required, for example redis://127.0.0.1:6379/0")
            return None
        url = self.string(data["url"], join(path, "url"))
        if url is not None and not url.startswith(_REDIS_SCHEMES):
            # Never echo the URL: it may hold a password.
            self.problem(join(path, "url"), "expected a redis://, rediss:// or unix:// URL")
            url = None
        prefix = self.field(data, "prefix", path, self.string, "routemw:")
        if "{" in prefix or "}" in prefix:
            # Keys carry a hash tag in braces for Redis Cluster; a brace in the prefix would
            # become the tag instead and put every key on one slot.
            self.problem(join(path, "prefix"), "must not contain { or }")
        return None if url is None else RedisConfig(url=url, prefix=prefix)
