"""OpenTelemetry spans, caught with the SDK's in-memory exporter (test extra only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import opentelemetry.propagate
import opentelemetry.trace
import orjson
import pytest
from fake_doors import FakeGeminiEmbed
from fakes import AsgiDriver, FakeOpenAI, answer_error, drive
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from telemetry_fixtures import AUTH, CHAT, MESSAGES, MESSAGES_AUTH, QUESTION, STREAM_CHAT, build, document

from routemw import Gateway
from routemw.telemetry.tracing import CAPTURE_CONTENT_VARIABLE

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = [("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01")]


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A host's SDK tracer provider as the global one, for this test only."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", lambda: provider)
    yield exporter
    provider.shutdown()


async def no_sleep(seconds: float) -> None:
    return None


def by_kind(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    finished = exporter.get_finished_spans()
    (server,) = [s for s in finished if s.kind is SpanKind.SERVER]
    clients = sorted((s for s in finished if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert len(finished) == 1 + len(clients)
    return server, clients


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in (span.attributes or {}).items()}


async def test_one_server_span_under_the_callers_trace_and_a_client_span_whose_context_goes_upstream(
    spans: InMemorySpanExporter,
) -> None:
    up = FakeOpenAI()
    gateway = build(up)
    answer = await drive(gateway, json=CHAT, headers=[*AUTH, *TRACEPARENT])

    server, (client,) = by_kind(spans)
    assert server.context is not None and client.context is not None and server.parent is not None
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert f"{server.parent.span_id:016x}" == PARENT_ID and server.parent.is_remote
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert client.context.trace_id == server.context.trace_id
    (sent,) = up.requests
    assert sent.headers["traceparent"] == f"00-{TRACE_ID}-{client.context.span_id:016x}-01"

    assert server.name == "POST /v1/chat/completions"
    assert attributes(server) == {
        "http.request.method": "POST",
        "url.path": "/v1/chat/completions",
        "http.response.status_code": 200,
        "http.route": "/v1/chat/completions",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 14,
        "gen_ai.usage.output_tokens": 37,
        "routemw.request_id": answer.header("x-request-id"),
        "routemw.account": "team-a",
        "routemw.fallbacks": 0,
        "routemw.cost_usd": pytest.approx((14 * 2.5 + 37 * 10) / 1e6),
    }
    assert client.name == "chat gpt-4o"
    assert attributes(client) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o",  # the public name: `response_model: public`
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 14,
        "gen_ai.usage.output_tokens": 37,
        "server.address": "upstream.test",
        "routemw.provider": "up",
        "routemw.outcome": "answered",
    }
    assert client.status.status_code is StatusCode.UNSET


async def test_a_request_through_the_messages_door_has_its_server_span_named_for_its_route(
    spans: InMemorySpanExporter,
) -> None:
    up = FakeOpenAI()
    answer = await drive(build(up), path="/v1/messages", json=MESSAGES, headers=[*MESSAGES_AUTH, *TRACEPARENT])

    assert answer.status == 200
    server, (client,) = by_kind(spans)
    assert server.name == "POST /v1/messages"
    assert server.parent is not None and f"{server.parent.span_id:016x}" == PARENT_ID
    assert client.parent is not None and server.context is not None and client.context is not None
    assert client.parent.span_id == server.context.span_id
    server_attributes = attributes(server)
    assert {k: server_attributes[k] for k in ("http.route", "url.path", "gen_ai.operation.name")} == {
        "http.route": "/v1/messages",
        "url.path": "/v1/messages",
        "gen_ai.operation.name": "chat",  # the conventions' name for Anthropic's Messages API too
    }
    assert server_attributes["routemw.request_id"] == answer.header("x-request-id")
    assert server_attributes["gen_ai.usage.input_tokens"] == 14
    assert client.name == "chat gpt-4o" and attributes(client)["routemw.outcome"] == "answered"
    (sent,) = up.requests
    assert sent.headers["traceparent"].split("-")[2] == f"{client.context.span_id:016x}"


async def test_retries_and_fallbacks_are_sibling_client_spans(spans: InMemorySpanExporter) -> None:
    up = FakeOpenAI().queue(answer_error(500), answer_error(500))
    backup = FakeOpenAI()
    doc = document(extra={"retry": {"attempts": 2, "cooldown_after": 10}})
    answer = await drive(build(up, backup, doc=doc, sleep=no_sleep), json=CHAT, headers=AUTH)

    assert answer.status == 200
    server, clients = by_kind(spans)
    assert server.parent is None  # no traceparent came in: a new trace
    assert server.context is not None
    assert [c.name for c in clients] == ["chat gpt-4o", "chat gpt-4o", "chat gpt-4o-mini"]
    assert all(c.parent is not None and c.parent.span_id == server.context.span_id for c in clients)
    assert [attributes(c).get("error.type") for c in clients] == ["upstream_error", "upstream_error", None]
    assert [attributes(c)["routemw.outcome"] for c in clients] == ["retry", "retry", "answered"]
    assert [attributes(c).get("http.response.status_code") for c in clients] == [500, 500, None]
    assert [c.status.status_code for c in clients] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert attributes(clients[2])["server.address"] == "backup.test"
    assert attributes(server)["routemw.fallbacks"] == 1
    # each attempt sent its own span's context
    sent = [r.headers["traceparent"] for r in (*up.requests, *backup.requests)]
    assert [t.split("-")[2] for t in sent] == [f"{c.context.span_id:016x}" for c in clients if c.context]


async def test_a_streamed_answer_ends_its_client_span_with_the_stream(spans: InMemorySpanExporter) -> None:
    gateway = build(FakeOpenAI())
    await drive(gateway, json=STREAM_CHAT, headers=AUTH)

    server, (client,) = by_kind(spans)
    assert client.end_time is not None and server.end_time is not None
    assert client.end_time <= server.end_time
    found = attributes(client)
    assert found["gen_ai.response.finish_reasons"] == ["stop"]
    assert (found["gen_ai.usage.input_tokens"], found["gen_ai.usage.output_tokens"]) == (14, 30)
    assert found["gen_ai.response.model"] == "gpt-4o"
    outer = attributes(server)
    assert (outer["gen_ai.usage.input_tokens"], outer["gen_ai.usage.output_tokens"]) == (14, 30)


async def test_a_refusal_is_a_server_span_without_client_spans(spans: InMemorySpanExporter) -> None:
    await drive(build(FakeOpenAI()), json=CHAT, headers=[("authorization", "Bearer sk-wrong-000000000000")])

    server, clients = by_kind(spans)
    assert clients == []
    assert attributes(server)["http.response.status_code"] == 401
    assert attributes(server)["routemw.error_code"] == "invalid_api_key"
    assert server.status.status_code is StatusCode.UNSET  # a client error is not the server's


async def test_health_checks_make_no_spans_and_unknown_urls_no_new_span_names(spans: InMemorySpanExporter) -> None:
    gateway = build(FakeOpenAI())
    await drive(gateway, method="GET", path="/healthz")
    await drive(gateway, method="GET", path="/v1/models/gpt-4o", headers=AUTH)
    await drive(gateway, method="GET", path="/some/probe/path")

    assert [s.name for s in spans.get_finished_spans()] == ["GET /v1/models/{model}", "GET unknown"]


async def test_message_content_is_recorded_only_when_the_conventions_opt_in_asks(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    await drive(build(FakeOpenAI()), json=CHAT, headers=AUTH)
    _, (plain,) = by_kind(spans)
    assert QUESTION not in str(plain.attributes)
    spans.clear()

    monkeypatch.setenv(CAPTURE_CONTENT_VARIABLE, "true")
    await drive(build(FakeOpenAI()), json=CHAT, headers=AUTH)
    _, (captured,) = by_kind(spans)
    assert orjson.loads(attributes(captured)["gen_ai.input.messages"]) == CHAT["messages"]
    output = orjson.loads(attributes(captured)["gen_ai.output.messages"])
    assert output[0]["role"] == "assistant"


async def test_without_a_tracer_provider_nothing_is_traced_or_propagated() -> None:
    assert isinstance(opentelemetry.trace.get_tracer_provider(), opentelemetry.trace.ProxyTracerProvider)
    up = FakeOpenAI()
    gateway = build(up)
    await drive(gateway, json=CHAT, headers=[*AUTH, *TRACEPARENT])

    assert gateway.telemetry.tracing is None
    assert "traceparent" not in up.requests[0].headers


async def test_a_client_that_leaves_mid_stream_still_ends_both_spans(spans: InMemorySpanExporter) -> None:
    import anyio
    from fakes import answer_sse, recording, wait_for

    up = FakeOpenAI().queue(answer_sse(recording("openai/stream-text.sse"), pause_after={4: 30.0}))
    driver = AsgiDriver(
        build(up), body=orjson.dumps(STREAM_CHAT), headers=[("content-type", "application/json"), *AUTH]
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(driver.run)
        await wait_for(lambda: len(driver.payloads()) >= 4)
        driver.disconnect()

    server, (client,) = by_kind(spans)
    assert "http.response.status_code" in attributes(server)
    assert attributes(server)["routemw.error_code"] == "client_disconnected"
    assert client.end_time is not None


async def test_a_sampled_out_attempt_sends_its_context_upstream_and_leaves_the_stream_unwatched() -> None:
    from types import SimpleNamespace

    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from routemw.reply import Stream
    from routemw.telemetry.tracing import Tracing

    async def no_batches() -> Any:
        yield []

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = Tracing(provider.get_tracer("test"), {"up": "openai"})
    stream = Stream((), no_batches())
    seen: list[str] = []

    async def run(call: Any, target: Any) -> Stream:
        carrier: dict[str, str] = {}
        opentelemetry.propagate.inject(carrier)
        seen.append(carrier["traceparent"])
        return stream

    target = SimpleNamespace(provider=SimpleNamespace(name="up"), model="gpt-4o")
    reply = await tracing.attempt(SimpleNamespace(request=SimpleNamespace(kind="chat")), target, run)  # type: ignore[arg-type]

    assert reply is stream  # not wrapped: no per-chunk work for a span nobody records
    assert int(seen[0].rsplit("-", 1)[1], 16) & 1 == 0  # the context goes upstream, its sampled flag clear
    assert exporter.get_finished_spans() == ()


async def test_an_embeddings_request_in_batches_is_one_client_span_named_for_its_operation(
    spans: InMemorySpanExporter,
) -> None:
    gemini = FakeGeminiEmbed()
    config = {
        "providers": {"gm": gemini.provider_config},
        "models": {"embed": {"routes": [{"provider": "gm", "model": "gemini-embedding-001"}]}},
    }
    gateway = Gateway.from_config(config, environ={}, transport=httpx.MockTransport(gemini))
    body = {"model": "embed", "input": [f"doc {i}" for i in range(150)]}  # two calls: Gemini takes 100 a call
    answer = await drive(gateway, path="/v1/embeddings", json=body)

    assert answer.status == 200, answer.body
    assert len(gemini.requests) == 2
    _, (client,) = by_kind(spans)
    assert client.name == "embeddings gemini-embedding-001"
    assert attributes(client)["gen_ai.operation.name"] == "embeddings"
