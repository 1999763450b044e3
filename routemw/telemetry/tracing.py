"""OpenTelemetry spans through the tracer provider the host configured (`routemw[otel]`).

Only `opentelemetry-api` is used; the host brings the SDK and exporters. When no provider is
configured (the API's proxy or no-op provider), or the API is not installed, `Tracing.create`
returns None and the gateway never calls into this module: no span is made, not even a
non-recording one.

One SERVER span per inbound request, a child of the W3C `traceparent` the client sent (read by
the host's global propagator), and one CLIENT span per upstream attempt, a direct child of the
SERVER span: retries and fallbacks are siblings, each with its outcome. The CLIENT span is the
current span while the upstream request is built, so the propagator writes its `traceparent`
into that request. For a stream the CLIENT span that answered ends with the stream.

Attributes follow the GenAI conventions (`gen_ai.provider.name`, never the deprecated
`gen_ai.system`), written as literal strings rather than imported from the incubating semconv
package, which renames things between releases. Message content is recorded only with the
conventions' own opt-in, `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`, read when the
gateway is built.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from .._version import __version__
from ..errors import RouteMWError, UpstreamError
from ..http.asgi import Scope, client_path
from ..reply import Chunk, Completion, Reply, Stream
from ..usage import UsageRecord

if TYPE_CHECKING:
    import httpx

    from ..pipeline import Call
    from ..providers.base import Target

__all__ = ["CAPTURE_CONTENT_VARIABLE", "Tracing"]

CAPTURE_CONTENT_VARIABLE: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
Attempt = Callable[["Call", "Target"], Awaitable[Reply]]


class Tracing:
    """Makes the gateway's spans; one per gateway, or None when tracing is off."""

    def __init__(self, tracer: Any, genai_providers: Mapping[str, str], *, capture_content: bool = False) -> None:
        from opentelemetry import context, propagate, trace

        self._tracer = tracer
        self._context = context
        self._propagate = propagate
        self._trace = trace
        self._server = trace.SpanKind.SERVER
        self._client = trace.SpanKind.CLIENT
        self._error = trace.StatusCode.ERROR
        self._genai = dict(genai_providers)
        self.capture_content = capture_content
        # The headers the propagator reads, as the ASGI scope spells them.
        self._fields = frozenset(name.encode("latin-1") for name in propagate.get_global_textmap().fields)

    @classmethod
    def create(cls, genai_providers: Mapping[str, str]) -> Tracing | None:
        """Tracing through the global tracer provider, or None when there is none to trace to."""
        try:
            from opentelemetry import trace
        except ImportError:
            return None
        provider = trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return None
        capture = os.environ.get(CAPTURE_CONTENT_VARIABLE, "").strip().lower() == "true"
        return cls(provider.get_tracer("routemw", __version__), genai_providers, capture_content=capture)

    # -- the inbound request ---------------------------------------------------------------

    def start_server(self, scope: Scope, route: str) -> tuple[Any, Any]:
        """The SERVER span for `scope`, made current; pass both to `end_server`.

        `route` is the route's template (`/v1/models/{model}`, `unknown`), never the raw path,
        so span names stay few. Attributes go in at the start and once at the end: the SDK
        validates and locks per call, and that showed in the profile.
        """
        headers = scope["headers"]
        fields = self._fields
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers if name in fields}
        parent = self._propagate.extract(carrier) if carrier else None
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": client_path(scope), "http.route": route}
        span = self._tracer.start_span(f"{method} {route}", context=parent, kind=self._server, attributes=attributes)
        token = self._context.attach(self._trace.set_span_in_context(span, parent))
        return span, token

    def end_server(self, span: Any, token: Any, status: int | None, record: UsageRecord | None) -> None:
        self._context.detach(token)
        if not span.is_recording():  # sampled out: its attributes would be dropped one by one
            span.end()
            return
        attributes: dict[str, Any] = {}
        if status is not None:
            attributes["http.response.status_code"] = status
            if status >= 500:
                span.set_status(self._error)
                attributes["error.type"] = str(status)
        if record is not None:
            attributes["gen_ai.operation.name"] = "chat"
            attributes["routemw.request_id"] = record.request_id
            optional = (
                ("gen_ai.request.model", record.model),
                ("gen_ai.usage.input_tokens", record.prompt_tokens),
                ("gen_ai.usage.output_tokens", record.completion_tokens),
                ("routemw.account", record.account),
                ("routemw.fallbacks", record.fallbacks),
                ("routemw.error_code", record.error_code),
                ("routemw.cost_usd", record.cost_usd),
            )
            attributes.update((k, v) for k, v in optional if v is not None)
        span.set_attributes(attributes)
        span.end()

    # -- upstream attempts -----------------------------------------------------------------

    async def attempt(self, call: Call, target: Target, run: Attempt) -> Reply:
        """`run(call, target)` inside a CLIENT span that ends with its outcome (a stream: when it ends)."""
        # The conventions' operation names: Responses API calls are chat too.
        operation = "embeddings" if call.request.kind == "embeddings" else "chat"
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": self._genai.get(target.provider.name, target.provider.name),
            "gen_ai.request.model": target.model,
            "routemw.provider": target.provider.name,
        }
        span = self._tracer.start_span(f"{operation} {target.model}", kind=self._client, attributes=attributes)
        token = self._context.attach(self._trace.set_span_in_context(span))
        if not span.is_recording():
            # Sampled out: the span is only a context to send upstream (with its not-sampled
            # flag), so no attributes are gathered and a stream is not watched chunk by chunk.
            try:
                return await run(call, target)
            finally:
                self._context.detach(token)
                span.end()
        if self.capture_content:
            span.set_attribute("gen_ai.input.messages", orjson.dumps(call.request.body.get("messages")).decode())
        try:
            reply = await run(call, target)
        except BaseException as exc:
            failed: dict[str, Any] = {"error.type": type(exc).__qualname__}
            if isinstance(exc, UpstreamError):
                failed["error.type"] = exc.code or failed["error.type"]
                failed["routemw.outcome"] = exc.action.value
                if exc.upstream_status is not None:
                    failed["http.response.status_code"] = exc.upstream_status
            span.set_attributes(failed)
            span.set_status(self._error)
            span.end()
            raise
        finally:
            self._context.detach(token)
        if isinstance(reply, Completion):
            self._answered(span, reply.data)
            if self.capture_content:
                messages = [c.get("message") for c in reply.data.get("choices") or () if isinstance(c, dict)]
                span.set_attribute("gen_ai.output.messages", orjson.dumps(messages).decode())
            span.end()
            return reply
        return self._watch(span, reply)

    def inject(self, request: httpx.Request) -> None:
        """Write the current (CLIENT) span's context into `request` and note where it goes."""
        self._propagate.inject(request.headers)
        span = self._trace.get_current_span()
        if not span.is_recording():
            return
        url = request.url
        where: dict[str, Any] = {"server.address": url.host}
        if url.port is not None:
            where["server.port"] = url.port
        span.set_attributes(where)

    def _answered(self, span: Any, data: Mapping[str, Any]) -> None:
        attributes: dict[str, Any] = {"routemw.outcome": "answered"}
        model = data.get("model")
        if isinstance(model, str):
            attributes["gen_ai.response.model"] = model
        choices = data.get("choices") or ()
        reasons = [str(c["finish_reason"]) for c in choices if isinstance(c, dict) and c.get("finish_reason")]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
        usage = data.get("usage")
        if isinstance(usage, dict):
            for name, key in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")):
                if isinstance(usage.get(name), int):
                    attributes[f"gen_ai.usage.{key}"] = usage[name]
        span.set_attributes(attributes)

    def _watch(self, span: Any, stream: Stream) -> Stream:
        """`stream`, reading the model, finish reasons and usage off its chunks for `span`."""
        source = stream.batches()
        seen: dict[str, Any] = {"choices": []}
        reasons: list[str] = []

        async def batches() -> AsyncIterator[list[Chunk]]:
            try:
                async for batch in source:
                    for chunk in batch:
                        data = chunk.data
                        if "model" not in seen and isinstance(data.get("model"), str):
                            seen["model"] = data["model"]
                        usage = data.get("usage")
                        if usage:
                            seen["usage"] = usage
                        for choice in data.get("choices") or ():
                            if isinstance(choice, dict) and choice.get("finish_reason"):
                                reasons.append(choice["finish_reason"])
                    yield batch
            except RouteMWError as exc:
                span.set_attribute("error.type", exc.code or type(exc).__name__)
                span.set_status(self._error)
                raise

        closed = False

        async def aclose() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            try:
                close = getattr(source, "aclose", None)
                if close is not None:
                    await close()
                await stream.aclose()
            finally:
                seen["choices"] = [{"finish_reason": r} for r in reasons]
                self._answered(span, seen)
                span.end()

        return Stream((), batches(), aclose=aclose, headers=stream.headers)
