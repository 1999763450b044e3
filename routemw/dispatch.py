"""The pipeline's endpoint: one attempt at `call.target`, through a transport.

For a stream it reads up to the first meaningful chunk (content, a tool call, a finish or usage;
not a bare role chunk or a preamble) before returning, so that everything that can go wrong
before the client sees a byte is still an exception the router can retry or fall back on.
The whole attempt, including that wait, is bounded by the provider's timeout.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Final

import anyio
import httpx

from .errors import Attempt, UpstreamError, UpstreamTimeoutError
from .http.upstream import read_body, upstream_request_id
from .pipeline import Call
from .providers.base import Provider, Target
from .reply import Chunk, Reply, Stream

__all__ = ["Dispatcher", "is_meaningful"]

# An error body larger than this is cut: it is only read to classify and report the error.
_MAX_ERROR_BODY: Final = 256 * 1024


class Dispatcher:
    """Sends `call.target`'s request; the transport comes from the gateway unless the provider has its own."""

    def __init__(
        self, transport: Callable[[], httpx.AsyncBaseTransport], *, first_token_timeout: float | None = None
    ) -> None:
        self._transport = transport
        self.first_token_timeout = first_token_timeout

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
        transport = provider.transport or self._transport()
        response: httpx.Response | None = None
        chunks: AsyncGenerator[Chunk, None] | None = None
        done = False  # the upstream response is closed, or handed over to a Stream that owns it
        # One scope bounds the attempt by the provider's timeout and the request's deadline alike
        # (a bare CancelScope costs half of `fail_after`, and this runs for every attempt).
        budget = min(provider.timeout, call.deadline - time.monotonic())
        scope = anyio.CancelScope(deadline=anyio.current_time() + budget)
        try:
            with scope:
                try:
                    response = await transport.handle_async_request(request)
                    if not 200 <= response.status_code < 300:
                        raise provider.error_from_response(response, await _read_bounded(response))
                    if call.request.stream:
                        chunks = _guarded(provider.parse_stream(response, call.request, target), provider)
                        head = await self._read_head(chunks, provider.name)
                        done = True
                        return Stream(head, chunks, aclose=response.aclose, headers=_upstream_headers(response))
                    body = await read_body(response)
                    await response.aclose()
                    done = True
                    completion = provider.parse_response(response, body, call.request, target)
                    completion.headers.update(_upstream_headers(response))
                    return completion
                except httpx.TransportError as exc:
                    raise provider.error_from_exception(exc) from exc
            raise UpstreamTimeoutError(
                f"Provider '{provider.name}' did not answer within {budget:.3g}s"
                + (" (the request's deadline)" if budget < provider.timeout else "."),
                provider=provider.name,
            )
        finally:
            # Whatever ended the attempt early (an error, a timeout, the client going away), the
            # upstream connection is released now, not at garbage collection.
            if not done:
                with anyio.CancelScope(shield=True):
                    if chunks is not None:
                        await chunks.aclose()
                    if response is not None:
                        await response.aclose()

    async def _read_head(self, chunks: AsyncIterator[Chunk], provider: str) -> list[Chunk]:
        """Chunks up to and including the first meaningful one, within the first-token timeout."""
        if self.first_token_timeout is None:
            return await _read_head(chunks)
        with anyio.move_on_after(self.first_token_timeout):
            return await _read_head(chunks)
        raise UpstreamTimeoutError(
            f"Provider '{provider}' sent no content within {self.first_token_timeout:g}s.", provider=provider
        )


async def _guarded(chunks: AsyncIterator[Chunk], provider: Provider) -> AsyncGenerator[Chunk, None]:
    """The adapter's chunks, with a connection lost mid-stream classified like any other."""
    try:
        async for chunk in chunks:
            yield chunk
    except httpx.TransportError as exc:
        raise provider.error_from_exception(exc) from exc
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def _read_head(chunks: AsyncIterator[Chunk]) -> list[Chunk]:
    head: list[Chunk] = []
    async for chunk in chunks:
        head.append(chunk)
        if is_meaningful(chunk.data):
            break
    return head


async def _read_bounded(response: httpx.Response) -> bytes:
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) >= _MAX_ERROR_BODY:
            break
    return bytes(body[:_MAX_ERROR_BODY])


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
