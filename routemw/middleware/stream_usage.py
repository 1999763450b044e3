"""Ask a stream's upstream for usage the client did not ask for, and keep it from the client.

Limits and usage records need a stream's real usage, which an OpenAI-format upstream sends only
when asked (`stream_options.include_usage`). When the call is metered (`call.meter`) and the
client streams without asking, each attempt at a target known to report stream usage
(`stream_usage: true` in its profile: OpenAI's own models, Anthropic, Gemini, or config
`capabilities`) is sent with the option; the usage chunk is read into the meter and removed,
as is the `usage: null` the upstream then adds to every chunk, so the client's stream is exactly
what it asked for. A target whose support is unknown gets nothing added: the one exception to
"no absent field is invented" is made only where it is known to be safe.

It runs once per attempt, so it belongs innermost, after retries.
"""

from __future__ import annotations

from collections.abc import Callable

from ..chat import ChatRequest
from ..pipeline import Call, Handler
from ..reply import Chunk, Completion, Reply
from ..usage import Meter

__all__ = ["StreamUsageMiddleware"]


class StreamUsageMiddleware:
    async def __call__(self, call: Call, next: Handler) -> Reply:
        meter = call.meter
        request = call.request
        target = call.target
        if (
            meter is None
            or target is None
            or not request.stream
            or request.include_usage
            or target.profile.supports("stream_usage") is not True
            or not target.profile.stream_options
        ):
            return await next(call)
        options = request.body.get("stream_options")
        extra = dict(options) if isinstance(options, dict) else {}
        # `native` stays: a door's passthrough target must still get the client's own request.
        body = {**request.body, "stream_options": {**extra, "include_usage": True}}
        call.request = ChatRequest(body=body, native=request.native, kind=request.kind, affinity=request.affinity)
        try:
            reply = await next(call)
        finally:
            call.request = request  # the next attempt, at another target, starts from the client's request
        if isinstance(reply, Completion):
            return reply
        return reply.map(_hide_usage(meter))


def _hide_usage(meter: Meter) -> Callable[[Chunk], Chunk | None]:
    def transform(chunk: Chunk) -> Chunk | None:
        data = chunk.data
        if "usage" not in data:
            return chunk
        meter.read(data["usage"])
        if not data.get("choices"):
            return None  # the usage-only chunk
        return chunk.replace({key: value for key, value in data.items() if key != "usage"})

    return transform
