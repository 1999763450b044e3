"""Provider-neutral clean-up, once per request, before any target is considered."""

from __future__ import annotations

from ..pipeline import Call, Handler
from ..reply import Reply

__all__ = ["NormalizeMiddleware"]


class NormalizeMiddleware:
    """Removes fields that mean nothing in their request, and says so.

    `parallel_tool_calls` without `tools` constrains nothing, yet OpenAI answers it with a 400
    (wire-formats.md T12); it is removed and listed in `x-routemw-dropped-params`.
    """

    async def __call__(self, call: Call, next: Handler) -> Reply:
        request = call.request
        if "parallel_tool_calls" in request.body and not request.body.get("tools"):
            call.request = request.without("parallel_tool_calls")
            call.dropped.append("parallel_tool_calls")
        return await next(call)
