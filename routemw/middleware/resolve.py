"""Public model id to candidate targets, as far as the caller's account reaches.

A model the account may not use gets exactly the answer a model that does not exist gets, so
one account cannot learn what another has. A fallback model the account may not use is left
out of the candidates, as if it were not configured.
"""

from __future__ import annotations

from ..accounts import ANONYMOUS, Account
from ..errors import NotFoundError, echo
from ..pipeline import Call, Handler
from ..reply import Reply
from ..routing import Catalog

__all__ = ["ResolveMiddleware", "model_not_found"]


def model_not_found(model: str) -> NotFoundError:
    # OpenAI's own wording, which deliberately does not say which of the two it is.
    return NotFoundError(
        f"The model `{echo(model)}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


class ResolveMiddleware:
    """Fills `call.candidates` from the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def __call__(self, call: Call, next: Handler) -> Reply:
        account: Account = call.account if call.account is not None else ANONYMOUS
        model = call.request.model
        candidates = self.catalog.candidates(model, account.may_use) if account.may_use(model) else []
        if not candidates:
            raise model_not_found(model)
        call.candidates = candidates
        entry = self.catalog.get(model)
        call.response_model = entry.response_model if entry is not None else None
        return await next(call)
