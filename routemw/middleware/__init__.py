"""The built-in middleware. Each is a plain class usable in a hand-built pipeline."""

from .auth import AuthMiddleware
from .fallback import FallbackMiddleware
from .resolve import ResolveMiddleware

__all__ = ["AuthMiddleware", "FallbackMiddleware", "ResolveMiddleware"]
