"""Who is calling: puts the caller's `Account` on the call, or answers 401."""

from __future__ import annotations

from ..accounts import Authenticator
from ..pipeline import Call, Handler
from ..reply import Reply

__all__ = ["AuthMiddleware"]


class AuthMiddleware:
    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def __call__(self, call: Call, next: Handler) -> Reply:
        call.account = await self.authenticator.authenticate(call.headers, call.scope)
        return await next(call)
