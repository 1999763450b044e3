"""Who is calling: puts the caller's `Account` on the call, or answers 401.

The `Gateway` authenticates every chat request itself, from the headers and the ASGI scope,
before it reads the body (OpenAI's order: a caller without a valid key gets its 401 whatever it
sent, and cannot make the gateway read and parse a large body). The call then reaches the
pipeline with `call.account` set, and this middleware leaves it alone rather than asking the key
store a second time. It still authenticates a call that arrives without an account, so a
pipeline driven without the gateway (your own door, a test) is not left open; and a user
middleware placed in front of it may set `call.account` itself.
"""

from __future__ import annotations

from ..accounts import Authenticator
from ..pipeline import Call, Handler
from ..reply import Reply

__all__ = ["AuthMiddleware"]


class AuthMiddleware:
    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def __call__(self, call: Call, next: Handler) -> Reply:
        if call.account is None:
            call.account = await self.authenticator.authenticate(call.headers, call.scope)
        return await next(call)
