"""The pipeline's endpoint: one attempt at `call.target`, through a transport.

For a stream it reads up to the first meaningful chunk (content, a tool call, a finish or usage;
not a bare role chunk or a preamble) before returning, so that everything that can go wrong
before the client sees a byte is still an exception the router can retry or fall back on.
The whole attempt, including that wait, is bounded by the provider's timeout.

Every `UpstreamError` an adapter hands over (from an error status, a transport failure, or its
stream translator) is scrubbed of that provider's credentials here, before it leaves the
dispatcher: retry, fallback, user middleware, log handlers and error reporters only ever see the
scrubbed text. Adapters, third-party ones included, need not know the secrets, and the success
path pays nothing for it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Final

import anyio
import httpx

from .cancellation import deadline
from .chat import ChatRequest
from .config import UpstreamConfig
from .embeddings import batches, join
from .errors import Attempt, UpstreamError, UpstreamTimeoutError
from .http.headers import id_value
from .http.upstream import body_pieces, read_body, read_error_body, upstream_request_id
from .pipeline import Call
from .providers.base import Provider, StreamTranslator, Target
from .providers.sse_translator import SSETranslator
from .reply import Chunk, Completion, Reply, Stream
from .telemetry.tracing import Tracing

__all__ = ["Dispatcher", "is_meaningful"]

_DRAIN_SECONDS: Final = 0.05
_EMBED_CONCURRENCY: Final = 4  # embeddings batches of one request in flight at once
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
        secrets: Mapping[str, Sequence[str]] | None = None,
        limits: UpstreamConfig | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """`secrets` maps a provider's name to its credentials, blanked out of its errors;
        `limits` bounds what an upstream may send (`upstream:` in config); `tracing` makes a
        CLIENT span of each attempt (None: no tracing, and no cost)."""
        self._tracing = tracing
        self._transport = transport
        self.first_token_timeout = first_token_timeout
        self._secrets: Mapping[str, Sequence[str]] = secrets or {}
        self.limits = limits if limits is not None else UpstreamConfig()

    async def __call__(self, call: Call) -> Reply:
        """One attempt, recorded in `call.attempts` whatever its outcome."""
        target = call.target
        if target is None:
            raise RuntimeError("Dispatcher called without call.target; put a routing middleware before it")
        started = time.monotonic()
        try:
            if self._tracing is None:
                reply = await self._call(call, target)
            else:
                reply = await self._tracing.attempt(call, target, self._call)
        except UpstreamError as exc:
            exc.scrub(self._secrets.get(target.provider.name, ()))
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

    async def _call(self, call: Call, target: Target) -> Reply:
        """The upstream call(s) of one attempt: embeddings may take several batches."""
        if call.request.kind == "embeddings":
            return await self._embed(call, target)
        return await self._attempt(call, target, call.request)

    async def _embed(self, call: Call, target: Target) -> Reply:
        """An embeddings request, in batches of the provider's limit when it is larger.

        The batches run side by side (at most `_EMBED_CONCURRENCY` at once), each bounded like
        any attempt by the provider's timeout and the request's one deadline; their answers are
        joined in input order. The first failure cancels the rest and is the attempt's failure:
        a client never gets some of its vectors.
        """
        limit = getattr(target.provider, "embedding_batch_limit", None)
        parts = batches(call.request, limit) if isinstance(limit, int) and limit > 0 else [call.request]
        if len(parts) == 1:
            return await self._attempt(call, target, parts[0])
        answers: list[Completion | None] = [None] * len(parts)
        failure: list[BaseException] = []
        slots = anyio.Semaphore(_EMBED_CONCURRENCY)

        async def run(index: int, part: ChatRequest, scope: anyio.CancelScope) -> None:
            async with slots:
                try:
                    reply = await self._attempt(call, target, part)
                except UpstreamError as exc:
                    if not failure:
                        failure.append(exc)
                    scope.cancel()
                    return
            if not isinstance(reply, Completion):
                raise RuntimeError("an embeddings batch answered with a stream")
            answers[index] = reply

        async with anyio.create_task_group() as group:
            for index, part in enumerate(parts):
                group.start_soon(run, index, part, group.cancel_scope)
        if failure:
            raise failure[0]
        return join([answer for answer in answers if answer is not None])

    async def _attempt(self, call: Call, target: Target, chat: ChatRequest) -> Reply:
        provider = target.provider
        request = provider.build_request(chat, target)
        # The gateway's request id goes upstream too, so the provider's logs can be matched to ours.
        request.headers["x-request-id"] = call.request_id
        if self._tracing is not None:
            self._tracing.inject(request)  # traceparent of this attempt's span
        transport = provider.transport or self._transport()
        response: httpx.Response | None = None
        batches: AsyncGenerator[list[Chunk], None] | None = None
        done = False  # the upstream response is closed, or handed over to a Stream that owns it
        # One deadline bounds the attempt by the provider's timeout and the request's deadline
        # alike, whichever comes first.
        # For a stream the attempt ends at its first meaningful event, so a first-token timeout
        # bounds all of it: connecting, the status line and the wait for content alike.
        limits = {"provider": provider.timeout, "deadline": call.deadline - time.monotonic()}
        if chat.stream and self.first_token_timeout is not None:
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
                    if chat.stream:
                        translator = provider.stream_translator(chat, target)
                        report_model = getattr(translator, "report_model", None)
                        if call.response_model is not None and report_model is not None:
                            report_model(call.response_model)
                        if isinstance(translator, SSETranslator):
                            translator.max_event_bytes = self.limits.max_event_bytes
                        secrets = self._secrets.get(provider.name, ())
                        batches = _batches(response, translator, provider, self.limits, call.response_model, secrets)
                        head = await _read_head(batches)
                        done = True
                        return Stream(head, batches, aclose=response.aclose, headers=_upstream_headers(response))
                    body = await read_body(response, self.limits)
                    await response.aclose()
                    done = True
                    completion = provider.parse_response(response, body, chat, target)
                    name = call.response_model
                    if name is not None and completion.data.get("model", name) != name:
                        completion = _completion_renamed(provider, completion, name)
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
    response: httpx.Response,
    translator: StreamTranslator,
    provider: Provider,
    limits: UpstreamConfig,
    model: str | None,
    secrets: Sequence[str],
) -> AsyncGenerator[list[Chunk], None]:
    """One list of chunks per upstream read; a connection lost mid-stream is classified too.

    With `model`, each chunk reports that name (see `_renamed`).
    """
    try:
        pieces = body_pieces(response, limits)
        async for piece in pieces:
            batch = translator.feed(piece)
            if batch:
                yield batch if model is None else _renamed(batch, model)
            if translator.done:
                break
        tail = translator.close()
        if tail:
            yield tail if model is None else _renamed(tail, model)
    except (httpx.TransportError, httpx.DecodingError) as exc:
        # DecodingError: a body that does not inflate, or past `upstream:` limits.
        error = provider.error_from_exception(exc)
        error.scrub(secrets)
        raise error from exc
    except UpstreamError as exc:
        # An in-band error after the commit point goes straight to the client and to whatever
        # wraps the stream; one before it is scrubbed again by `__call__`, which costs nothing.
        exc.scrub(secrets)
        raise
    if translator.done:
        # The upstream said it is finished, but the end of its HTTP body (the chunked
        # terminator) may still be on the way. Waiting a moment for it lets the connection go
        # back to the pool instead of being closed, which for TLS saves a handshake per stream.
        with contextlib.suppress(Exception):
            async with deadline(_DRAIN_SECONDS):
                async for _ in pieces:
                    pass


def _renamed(batch: list[Chunk], model: str) -> list[Chunk]:
    """`batch` with `model` in every chunk that names one.

    Here, so that every adapter's stream (a plugin's too) follows the model's `response_model`.
    A translator may offer `report_model(name)` and write the name itself as it builds each
    chunk; the passthrough one does, since it parses each chunk anyway and can set the name
    before the chunk exists. Then every chunk here already says `model` and costs one lookup.
    Any other chunk is rebuilt; a passthrough chunk is then re-encoded instead of sent as the
    upstream's bytes: measured, an `orjson.dumps` costs less than finding and splicing the name
    in those bytes, and it cannot hit a `"model"` nested elsewhere in the chunk.
    """
    for index, chunk in enumerate(batch):
        current = chunk.data.get("model", model)
        if current != model:
            batch[index] = chunk.replace({**chunk.data, "model": model})
    return batch


def _completion_renamed(provider: Provider, completion: Completion, model: str) -> Completion:
    """`completion` reporting `model`.

    A completion that also carries the answer in a door's own protocol (`native`, see
    `routemw.reply`) is renamed by the adapter that made it, which knows where the name sits in
    those bytes (`completion_with_model`); `replace` would drop them, and the client would get a
    re-rendering of the OpenAI reading instead of the upstream's answer.
    """
    rename = getattr(provider, "completion_with_model", None) if completion.native is not None else None
    if rename is not None:
        renamed: Completion = rename(completion, model)
        return renamed
    return completion.replace({**completion.data, "model": model})


async def _read_head(batches: AsyncIterator[list[Chunk]]) -> list[Chunk]:
    head: list[Chunk] = []
    async for batch in batches:
        head += batch
        if any(is_meaningful(chunk.data) for chunk in batch):
            break
    return head


def _upstream_headers(response: httpx.Response) -> dict[str, str]:
    request_id = upstream_request_id(response)
    value = id_value(request_id) if request_id else None
    return {"x-upstream-request-id": value} if value else {}


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
