"""Configuration: the schema, the loader, and the embedded default."""

from .default import default_document
from .loader import load_config
from .schema import (
    AuthConfig,
    GatewayConfig,
    KeyConfig,
    ModelConfig,
    ParamsConfig,
    ProviderConfig,
    RetryConfig,
    RouteConfig,
    ServerConfig,
    UpstreamConfig,
)
from .sections import BUILTIN_PROVIDERS, ProviderTypes

__all__ = [
    "BUILTIN_PROVIDERS",
    "AuthConfig",
    "GatewayConfig",
    "KeyConfig",
    "ModelConfig",
    "ParamsConfig",
    "ProviderConfig",
    "ProviderTypes",
    "RetryConfig",
    "RouteConfig",
    "ServerConfig",
    "UpstreamConfig",
    "default_document",
    "load_config",
]
