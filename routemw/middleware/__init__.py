"""The built-in middleware. Each is a plain class usable in a hand-built pipeline."""

from .auth import AuthMiddleware
from .capabilities import CapabilityMiddleware
from .fallback import FallbackMiddleware
from .normalize import NormalizeMiddleware
from .resolve import ResolveMiddleware
from .retry import RetryMiddleware

__all__ = [
    "AuthMiddleware",
    "CapabilityMiddleware",
    "FallbackMiddleware",
    "NormalizeMiddleware",
    "ResolveMiddleware",
    "RetryMiddleware",
]
