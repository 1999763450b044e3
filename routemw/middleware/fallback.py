"""Try the candidates in order until one answers.

Each attempt re-enters the rest of the pipeline with `call.target` set, so everything inside
(translation, dispatch) works afresh for that target and nothing leaks from a failed attempt.
An error classified `Action.STOP` is the client's and goes straight back; any other moves on to
the next candidate. The outcome is disclosed in `x-routemw-*` response headers.
"""

from __future__ import annotations

import logging

from ..errors import Action, AllTargetsFailedError, Attempt, UpstreamError
from ..pipeline import Call, Handler
from ..reply import Reply

__all__ = ["FallbackMiddleware"]

logger = logging.getLogger("routemw")


class FallbackMiddleware:
    async def __call__(self, call: Call, next: Handler) -> Reply:
        for target in call.candidates:
            call.target = target
            try:
                reply = await next(call)
            except UpstreamError as exc:
                call.attempts.append(
                    Attempt(target.provider.name, target.model, exc.upstream_status, exc.code, exc.action)
                )
                logger.warning(
                    "routemw: request %s: %s/%s failed (%s, %s): %s",
                    call.request_id,
                    target.provider.name,
                    target.model,
                    exc.upstream_status if exc.upstream_status is not None else "no response",
                    exc.action.value,
                    exc.code,
                )
                if exc.action is Action.STOP:
                    raise
                continue
            call.attempts.append(Attempt(target.provider.name, target.model, 200, None, Action.STOP))
            call.response_headers["x-routemw-provider"] = target.provider.name
            call.response_headers["x-routemw-route-model"] = target.model
            call.response_headers["x-routemw-attempts"] = str(len(call.attempts))
            dropped = sorted({*call.dropped, *target.drop})
            if dropped:
                call.response_headers["x-routemw-dropped-params"] = ", ".join(dropped)
            if target.clamp:
                call.response_headers["x-routemw-clamped-params"] = ", ".join(sorted(target.clamp))
            return reply
        raise AllTargetsFailedError(call.request.model, call.attempts)
