"""routemw: one OpenAI-compatible endpoint in front of every LLM provider, as an ASGI app."""

from ._version import __version__
from .accounts import ANONYMOUS, Account, Authenticator, ConfigKeyStore, KeyStore
from .app import Gateway
from .chat import ChatRequest
from .config import GatewayConfig, ProviderConfig, load_config
from .dispatch import Dispatcher
from .errors import (
    Action,
    AllTargetsFailedError,
    Attempt,
    AuthenticationError,
    ClientError,
    ConfigError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RouteMWError,
    UpstreamError,
    UpstreamTimeoutError,
)
from .http.transport import AiohttpTransport
from .middleware import (
    AuthMiddleware,
    CapabilityMiddleware,
    FallbackMiddleware,
    NormalizeMiddleware,
    ResolveMiddleware,
    RetryMiddleware,
)
from .pipeline import Call, Handler, Middleware, compose
from .providers.base import Provider, StreamTranslator, Target
from .providers.echo import EchoStep, EchoUpstream
from .providers.openai import OpenAIProvider
from .providers.registry import ProviderRegistry
from .providers.sse_translator import SSETranslator
from .reply import Chunk, Completion, Reply, Stream
from .routing.health import HealthStore, MemoryHealth

__all__ = [
    "ANONYMOUS",
    "Account",
    "Action",
    "AiohttpTransport",
    "AllTargetsFailedError",
    "Attempt",
    "AuthMiddleware",
    "AuthenticationError",
    "Authenticator",
    "Call",
    "CapabilityMiddleware",
    "ChatRequest",
    "Chunk",
    "ClientError",
    "Completion",
    "ConfigError",
    "ConfigKeyStore",
    "Dispatcher",
    "EchoStep",
    "EchoUpstream",
    "FallbackMiddleware",
    "Gateway",
    "GatewayConfig",
    "Handler",
    "HealthStore",
    "InvalidRequestError",
    "KeyStore",
    "MemoryHealth",
    "Middleware",
    "NormalizeMiddleware",
    "NotFoundError",
    "OpenAIProvider",
    "PermissionDeniedError",
    "Provider",
    "ProviderConfig",
    "ProviderRegistry",
    "Reply",
    "ResolveMiddleware",
    "RetryMiddleware",
    "RouteMWError",
    "SSETranslator",
    "Stream",
    "StreamTranslator",
    "Target",
    "UpstreamError",
    "UpstreamTimeoutError",
    "__version__",
    "compose",
    "load_config",
]
