"""The pipeline's endpoint: one attempt at `call.target`, through a transport.

For a stream it reads up to the first meaningful chunk (content, a tool call, a finish or usage;
not a bare role chunk or a preamble) before returning, so that everything that can go wrong
before the client sees a byte is still an exception the router can retry or fall back on.
The whole attempt, including that wait, is bounded by the provider's timeout.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Final

import anyio
import httpx

from .cancellation import deadline
from .config import UpstreamConfig
from .errors import Attempt, UpstreamError, UpstreamTimeoutError
from .http.upstream import body_pieces, read_body, read_error_body, upstream_request_id
from .pipeline import Call
from .providers.base import Provider, StreamTranslator, Target
from .providers.sse_translator import SSETranslator
from .reply import Chunk, Reply, Stream

__all__ = ["Dispatcher", "is_meaningful"]

_DRAIN_SECONDS: Final = 0.05
_TIMEOUT_TEXT: Final = {
    "provider": "did not answer within its timeout of",
    "deadline": "did not answer before the request's deadline, in",
    "first_token": "sent no content within the first-token timeout of",
}
# An error body larger than this is cut: it is only read to classify and report the error.
_MAX_ERROR_BODY: Final = 256 * 1024


class Dispatcher:
    """Sends `call.target`'s request; the transport comes from the gateway unless the provider has its own."""

    def __init__(
        self,
        transport: Callable[[], httpx.AsyncBaseTransport],
        *,
        first_token_timeout: float | None = None,
        limits: UpstreamConfig | None = None,
    ) -> None:
        self._transport = transport
        self.first_token_timeout = first_token_timeout
        self.limits = limits if limits is not None else UpstreamConfig()

    async def __call__(self, call: Call) -> Reply:
        """One attempt, recorded in `call.attempts` whatever its outcome."""
        target = call.target
        if target is None:
            raise RuntimeError("Dispatcher called without call.target; put a routing middleware before it")
        started = time.monotonic()
        try:
            reply = await self._attempt(call, target)
        except UpstreamError as exc:
            call.attempts.append(
                Attempt(
                    target.provider.name,
                    target.model,
                    exc.upstream_status,
                    exc.code,
                    exc.action,
                    time.monotonic() - started,
                    exc.retry_after,
                )
            )
            raise
        call.attempts.append(Attempt(target.provider.name, target.model, 200, None, None, time.monotonic() - started))
        return reply

    async def _attempt(self, call: Call, target: Target) -> Reply:
        provider = target.provider
        request = provider.build_request(call.request, target)
        # The gateway's request id goes upstream too, so the provider's logs can be matched to ours.
        request.headers["x-request-id"] = call.request_id
        transport = provider.transport or self._transport()
        response: httpx.Response | None = None
        batches: AsyncGenerator[list[Chunk], None] | None = None
        done = False  # the upstream response is closed, or handed over to a Stream that owns it
        # One deadline bounds the attempt by the provider's timeout and the request's deadline
        # alike, whichever comes first.
        # For a stream the attempt ends at its first meaningful event, so a first-token timeout
        # bounds all of it: connecting, the status line and the wait for content alike.
        limits = {"provider": provider.timeout, "deadline": call.deadline - time.monotonic()}
        if call.request.stream and self.first_token_timeout is not None:
            limits["first_token"] = self.first_token_timeout
        binding = min(limits, key=limits.__getitem__)
        budget = limits[binding]
        try:
            async with deadline(budget):
                try:
                    response = await transport.handle_async_request(request)
                    if not 200 <= response.status_code < 300:
                        error_body = await read_error_body(response, _MAX_ERROR_BODY)
                        raise provider.error_from_response(response, error_body)
                    if call.request.stream:
                        translator = provider.stream_translator(call.request, target)
                        if isinstance(translator, SSETranslator):
                            translator.max_event_bytes = self.limits.max_event_bytes
                        batches = _batches(response, translator, provider, self.limits)
                        head = await _read_head(batches)
                        done = True
                        return Stream(head, batches, aclose=response.aclose, headers=_upstream_headers(response))
                    body = await read_body(response, self.limits)
                    await response.aclose()
                    done = True
                    completion = provider.parse_response(response, body, call.request, target)
                    completion.headers.update(_upstream_headers(response))
                    return completion
                except (httpx.TransportError, httpx.DecodingError) as exc:
                    # DecodingError: a body that does not inflate, or past `upstream:` limits.
                    raise provider.error_from_exception(exc) from exc
        except TimeoutError as exc:
            raise UpstreamTimeoutError(
                f"Provider '{provider.name}' {_TIMEOUT_TEXT[binding]} {budget:.3g}s.",
                provider=provider.name,
                deadline_bound=binding == "deadline",
            ) from exc
        finally:
            # Whatever ended the attempt early (an error, a timeout, the client going away), the
            # upstream connection is released now, not at garbage collection.
            if not done:
                with anyio.CancelScope(shield=True):
                    if batches is not None:
                        await batches.aclose()
                    if response is not None:
                        await response.aclose()


async def _batches(
    response: httpx.Response, translator: StreamTranslator, provider: Provider, limits: UpstreamConfig
) -> AsyncGenerator[list[Chunk], None]:
    """One list of chunks per upstream read; a connection lost mid-stream is classified too."""
    try:
        pieces = body_pieces(response, limits)
        async for piece in pieces:
            batch = translator.feed(piece)
            if batch:
                yield batch
            if translator.done:
                break
        tail = translator.close()
        if tail:
            yield tail
    except (httpx.TransportError, httpx.DecodingError) as exc:
        raise provider.error_from_exception(exc) from exc
    if translator.done:
        # The upstream said it is finished, but the end of its HTTP body (the chunked
        # terminator) may still be on the way. Waiting a moment for it lets the connection go
        # back to the pool instead of being closed, which for TLS saves a handshake per stream.
        with contextlib.suppress(Exception):
            async with deadline(_DRAIN_SECONDS):
                async for _ in pieces:
                    pass


async def _read_head(batches: AsyncIterator[list[Chunk]]) -> list[Chunk]:
    head: list[Chunk] = []
    async for batch in batches:
        head += batch
        if any(is_meaningful(chunk.data) for chunk in batch):
            break
    return head


def _upstream_headers(response: httpx.Response) -> dict[str, str]:
    request_id = upstream_request_id(response)
    return {"x-upstream-request-id": request_id} if request_id else {}


def is_meaningful(data: Mapping[str, Any]) -> bool:
    """Whether a chunk commits the response: it says something beyond "a reply is coming"."""
    if data.get("usage"):
        return True
    choices = data.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason") is not None:
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and (
            delta.get("content") or delta.get("tool_calls") or delta.get("refusal") or delta.get("function_call")
        ):
            return True
    return False
