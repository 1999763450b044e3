"""Public model id to candidate targets; an unknown model is a 404 `model_not_found`."""

from __future__ import annotations

from ..errors import NotFoundError
from ..pipeline import Call, Handler
from ..reply import Reply
from ..routing import Catalog

__all__ = ["ResolveMiddleware", "model_not_found"]


def model_not_found(model: str) -> NotFoundError:
    # The wording OpenAI uses. It deliberately does not say which of the two it is, so the same
    # answer can serve "no such model" and "not yours".
    return NotFoundError(
        f"The model `{model}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


class ResolveMiddleware:
    """Fills `call.candidates` from the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    async def __call__(self, call: Call, next: Handler) -> Reply:
        candidates = self.catalog.candidates(call.request.model)
        if not candidates:
            raise model_not_found(call.request.model)
        call.candidates = candidates
        return await next(call)
