"""The Gateway at the ASGI message level, against fake OpenAI upstreams behind `httpx.MockTransport`.

Streams are checked message by message (`fakes.AsgiDriver`), because in-process HTTP clients
buffer bodies and would hide the commit point, keep-alives and disconnects.
"""

from __future__ import annotations

import itertools
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import orjson
import pytest
from aiohttp import web
from fakes import (
    API_KEY,
    BACKUP_KEY,
    AsgiDriver,
    FakeOpenAI,
    RecordingTransport,
    answer_error,
    answer_json,
    answer_sse,
    data_payloads,
    drive,
    recording,
    route_hosts,
    sse_from_jsonl,
    stall,
    wait_for,
)

from routemw import Call, Chunk, Gateway, Handler, Reply, Stream
from routemw.errors import RouteMWError, UpstreamError

UP_URL = "https://upstream.test/v1"
BACKUP_URL = "https://backup.test/v1"
SECRETS = (API_KEY, BACKUP_KEY)
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "What's the weather like in SF?"}]}
STREAM_CHAT: dict[str, Any] = {**CHAT, "stream": True}
GENERATED_ID = re.compile(r"req_[0-9a-f]{24}")  # a per-gateway random prefix and a counter
ENVELOPE_KEYS = ["message", "type", "param", "code"]


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a test does, no log record (message or traceback) may carry a provider key."""
    caplog.set_level(logging.DEBUG)
    yield
    for secret in SECRETS:
        assert secret not in caplog.text


def build(
    upstream: FakeOpenAI,
    backup: FakeOpenAI | None = None,
    *,
    models: Mapping[str, Any] | None = None,
    server: Mapping[str, Any] | None = None,
    middleware: Any = None,
    transport: httpx.AsyncBaseTransport | None = None,
    up_options: Mapping[str, Any] | None = None,
) -> Gateway:
    """A gateway with provider `up` (and `backup`), both OpenAI-type, over a MockTransport."""
    up = {"type": "openai", "base_url": UP_URL, "api_key": API_KEY, **(up_options or {})}
    providers: dict[str, Any] = {"up": up}
    hosts = {"upstream.test": upstream}
    if backup is not None:
        providers["backup"] = {"type": "openai", "base_url": BACKUP_URL, "api_key": BACKUP_KEY}
        hosts["backup.test"] = backup
    if models is None:
        models = {"gpt-4o": {"routes": [{"provider": "up", "model": "gpt-4o"}]}}
    # These tests compare what the client gets with the upstream's own bytes, so answers keep the
    # upstream's model name (tests/test_response_model.py covers the default, the public id).
    models = {name: {"response_model": "upstream", **spec} for name, spec in models.items()}
    # One call per target: these tests are about fallback and streaming, not the retry policy.
    document: dict[str, Any] = {"providers": providers, "models": models, "retry": {"attempts": 1}}
    if server is not None:
        document["server"] = dict(server)
    if transport is None:
        transport = httpx.MockTransport(route_hosts(hosts))
    return Gateway.from_config(document, environ={}, transport=transport, middleware=middleware)


def two_routes(first_model: str = "gpt-4o", second_model: str = "gpt-4o-mini") -> dict[str, Any]:
    routes = [{"provider": "up", "model": first_model}, {"provider": "backup", "model": second_model}]
    return {"gpt-4o": {"routes": routes}}


async def ask(app: Any, **kwargs: Any) -> AsgiDriver:
    """`drive` plus the check every response must pass: no provider key anywhere in it."""
    driver = await drive(app, **kwargs)
    check_clean(driver)
    return driver


def check_clean(driver: AsgiDriver) -> None:
    output = driver.raw_output()
    for secret in SECRETS:
        assert secret.encode() not in output


def error_of(driver: AsgiDriver) -> dict[str, Any]:
    assert driver.header("content-type") == "application/json"
    body = driver.json()
    assert list(body) == ["error"]
    assert sorted(body["error"]) == sorted(ENVELOPE_KEYS)
    error: dict[str, Any] = body["error"]
    return error


def canonical(value: Any) -> bytes:
    """JSON bytes that tell 0 from 0.0 from false, and keep key order."""
    return orjson.dumps(value)


def upstream_payloads(sse: bytes) -> list[bytes]:
    return [p for p in data_payloads(sse) if p != b"[DONE]"]


async def start(driver: AsgiDriver, tg: anyio.abc.TaskGroup) -> None:
    tg.start_soon(driver.run)
    await anyio.lowlevel.checkpoint()


# -- plain completions ------------------------------------------------------------------------


async def test_client_bytes_are_forwarded_unchanged_when_the_route_model_is_the_public_model(
    upstream: FakeOpenAI,
) -> None:
    raw = (
        b'{ "messages" : [{"role":"user","content":"h\\u00e9llo \\ud83d\\ude00"}],\n'
        b'  "model":"gpt-4o", "temperature":0, "top_p":1.0, "zeta":{"b":[1,2.50,1e2]} }'
    )
    driver = await ask(build(upstream), body=raw, headers=[("content-type", "application/json")])

    assert driver.status == 200
    assert [r.raw for r in upstream.requests] == [raw]
    # The upstream's own bytes come back as they were sent.
    assert driver.body == recording("openai/completion-text.json")
    assert driver.header("content-type") == "application/json"
    assert driver.header("content-length") == str(len(driver.body))
    assert driver.header("x-routemw-provider") == "up"
    assert driver.header("x-routemw-route-model") == "gpt-4o"
    assert driver.header("x-routemw-attempts") == "1"
    assert (driver.header("x-upstream-request-id") or "").startswith("req_")
    assert driver.complete


async def test_only_model_changes_when_the_route_model_differs(upstream: FakeOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    body = {
        "foo_new_param": {"x": 1},
        "model": "fast",
        "messages": [{"role": "system", "content": ""}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "temperature": 0,
        "top_p": 0.0,
        "presence_penalty": -0.0,
        "tools": tools,
        "parallel_tool_calls": False,
        "user": "",
        "stop": ["a", "b", "c", "d"],
        "logit_bias": {},
        "max_tokens": None,
        "metadata": {"k": "v"},
    }
    models = {"fast": {"routes": [{"provider": "up", "model": "gpt-4o-mini"}]}}
    driver = await ask(build(upstream, models=models), json=body)

    assert driver.status == 200, driver.body
    (sent,) = upstream.requests
    assert canonical(sent.body) == canonical({**body, "model": "gpt-4o-mini"})
    assert list(sent.body) == list(body)  # key order kept too
    assert driver.header("x-routemw-route-model") == "gpt-4o-mini"


async def test_route_params_fill_only_the_keys_the_client_did_not_send(upstream: FakeOpenAI) -> None:
    params = {"temperature": 0.7, "user": "gateway", "max_completion_tokens": 256, "seed": 7}
    models = {"gpt-4o": {"routes": [{"provider": "up", "model": "gpt-4o", "params": params}]}}
    body = {**CHAT, "temperature": 0, "user": "", "seed": None}
    driver = await ask(build(upstream, models=models), json=body)

    assert driver.status == 200
    sent = upstream.requests[0].body
    assert canonical(sent) == canonical({**body, "max_completion_tokens": 256})


# -- upstream header hygiene ------------------------------------------------------------------


async def test_inbound_credentials_cookies_and_hop_by_hop_headers_never_reach_the_upstream(
    upstream: FakeOpenAI,
) -> None:
    inbound = [
        ("authorization", "Bearer sk-client-own-key-999"),
        ("cookie", "session=client-session"),
        ("connection", "keep-alive, x-private"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("upgrade", "h2c"),
        ("proxy-authorization", "Basic Y2xpZW50OnNlY3JldA=="),
        ("proxy-connection", "keep-alive"),
        ("trailer", "x-checksum"),
        ("x-private", "hop"),
    ]
    for stream in (False, True):
        body = STREAM_CHAT if stream else CHAT
        driver = await ask(build(upstream), json=body, headers=inbound)
        assert driver.status == 200

    assert len(upstream.requests) == 2
    for sent in upstream.requests:
        assert sent.headers["authorization"] == f"Bearer {API_KEY}"
        assert sent.headers.get_list("authorization") == [f"Bearer {API_KEY}"]
        for name, value in inbound:
            if name != "authorization":
                assert name not in sent.headers
            assert all(value not in v for v in sent.headers.values())


async def test_upstream_set_cookie_is_not_returned_to_the_client_nor_replayed_upstream(
    upstream: FakeOpenAI,
) -> None:
    completion = recording("openai/completion-text.json")
    upstream.queue(
        answer_json(completion, headers={"set-cookie": "session=tenant-a; Path=/; HttpOnly"}),
        answer_sse(recording("openai/stream-text.sse"), headers={"set-cookie": "other=tenant-a; Path=/"}),
        answer_json(completion),
    )
    gateway = build(upstream)
    drivers = [await ask(gateway, json=CHAT), await ask(gateway, json=STREAM_CHAT), await ask(gateway, json=CHAT)]

    assert [d.status for d in drivers] == [200, 200, 200]
    assert all(d.header("set-cookie") is None for d in drivers)
    assert all("cookie" not in r.headers for r in upstream.requests)


async def test_the_default_transport_keeps_no_cookie_between_requests() -> None:
    # A host name, not an IP address: aiohttp's ordinary cookie jar ignores cookies from IPs.
    seen: list[Mapping[str, str | None]] = []

    async def chat_completions(request: web.Request) -> web.Response:
        seen.append({"cookie": request.headers.get("Cookie"), "authorization": request.headers.get("Authorization")})
        response = web.Response(body=recording("openai/completion-text.json"), content_type="application/json")
        if len(seen) == 1:
            response.set_cookie("session", "tenant-a-session", path="/")
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat_completions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    site = web.SockSite(runner, sock)
    await site.start()
    try:
        document = {
            "providers": {"local": {"type": "openai", "base_url": f"http://localhost:{port}/v1", "api_key": API_KEY}},
            "models": {"gpt-4o": {"routes": [{"provider": "local", "model": "gpt-4o"}]}},
        }
        async with Gateway.from_config(document, environ={}) as gateway:
            first = await ask(gateway, json=CHAT, headers=[("cookie", "client=own")])
            second = await ask(gateway, json=CHAT)
    finally:
        await runner.cleanup()

    assert (first.status, second.status) == (200, 200)
    assert first.header("set-cookie") is None
    assert seen == [
        {"cookie": None, "authorization": f"Bearer {API_KEY}"},
        {"cookie": None, "authorization": f"Bearer {API_KEY}"},
    ]


# -- streaming --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "openai/stream-text.sse",
        "openai/stream-tool-call-parallel.sse",
        "openai/stream-n3-multiple-choices.sse",
        "openai/stream-finish-length.sse",
    ],
)
async def test_recorded_streams_reach_the_client_event_by_event(upstream: FakeOpenAI, name: str) -> None:
    sse = recording(name)
    upstream.queue(answer_sse(sse))
    driver = await ask(build(upstream), json=STREAM_CHAT)

    assert driver.status == 200
    assert (driver.header("content-type") or "").startswith("text/event-stream")
    assert driver.header("cache-control") == "no-store"
    assert GENERATED_ID.fullmatch(driver.header("x-request-id") or "")
    assert driver.header("content-length") is None
    assert driver.payloads() == [*upstream_payloads(sse), b"[DONE]"]
    assert driver.body.endswith(b"data: [DONE]\n\n")
    assert driver.complete
    assert all(m.message.get("more_body") for m in driver.body_messages[:-1])
    assert upstream.requests[0].headers["accept"] == "text/event-stream"
    (stream,) = upstream.streams
    assert b"".join(stream.sent) == sse
    assert stream.closed


async def test_an_azure_preamble_without_choices_is_not_forwarded(upstream: FakeOpenAI) -> None:
    sse = sse_from_jsonl("azure/stream-prompt-filter-preamble.chunks.jsonl")
    upstream.queue(answer_sse(sse))
    driver = await ask(build(upstream), json=STREAM_CHAT)

    assert driver.status == 200
    sent = upstream_payloads(sse)
    assert orjson.loads(sent[0])["choices"] == []
    assert "prompt_filter_results" in orjson.loads(sent[0])
    assert driver.payloads() == [*sent[1:], b"[DONE]"]
    # The final usage chunk also has `choices: []`, but it carries usage and must arrive.
    assert orjson.loads(driver.payloads()[-2])["usage"]["completion_tokens_details"]["reasoning_tokens"] == 64


async def test_an_upstream_stream_delivered_one_byte_per_read_still_works(upstream: FakeOpenAI) -> None:
    sse = recording("openai/stream-tool-call-parallel.sse")
    upstream.queue(answer_sse(sse, sizes=[1]))
    driver = await ask(build(upstream), json=STREAM_CHAT)

    assert driver.status == 200
    assert len(upstream.streams[0].sent) == len(sse)
    assert driver.payloads() == [*upstream_payloads(sse), b"[DONE]"]


# -- the commit point -------------------------------------------------------------------------


async def test_nothing_is_sent_before_the_first_meaningful_upstream_chunk(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    # The role chunk arrives, then the upstream goes quiet: the gateway must not commit yet.
    upstream.queue(answer_sse(recording("openai/stream-text.sse"), stall_after=1))
    driver = AsgiDriver(build(upstream, backup, models=two_routes()), body=orjson.dumps(STREAM_CHAT))
    async with anyio.create_task_group() as tg:
        await start(driver, tg)
        await wait_for(lambda: bool(upstream.streams) and upstream.streams[0].stalled)
        await anyio.sleep(0.1)
        assert driver.messages == []
        driver.disconnect()

    assert driver.messages == []
    (stream,) = upstream.streams
    assert stream.cancelled and stream.closed
    assert backup.requests == []


async def test_the_response_starts_at_the_first_meaningful_chunk_not_at_the_end(upstream: FakeOpenAI) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(answer_sse(sse, stall_after=2))  # the role chunk and "I'm", then silence
    driver = AsgiDriver(build(upstream), body=orjson.dumps(STREAM_CHAT))
    async with anyio.create_task_group() as tg:
        await start(driver, tg)
        # The head (the role chunk and the first content) may leave in one body message.
        await wait_for(lambda: len(data_payloads(driver.body)) >= 2)
        await wait_for(lambda: upstream.streams[0].stalled)
        assert driver.status == 200
        assert data_payloads(driver.body) == upstream_payloads(sse)[:2]
        driver.disconnect()
    check_clean(driver)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_client_error_before_the_first_byte_is_a_real_http_error(
    upstream: FakeOpenAI, stream: bool
) -> None:
    body = {**CHAT, "stream": stream, "stop": ["1", "2", "3", "4", "5"]}
    driver = await ask(build(upstream), json=body)

    assert driver.status == 400
    error = error_of(driver)
    assert error["message"].startswith("Invalid 'stop': array too long.")
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "stop"
    assert error["code"] == "array_above_max_length"
    assert GENERATED_ID.fullmatch(driver.header("x-request-id") or "")
    assert upstream.requests[0].response_status == 400


@pytest.mark.parametrize(
    ("step_status", "status", "error_type", "code"),
    [
        (500, 502, "upstream_error", "upstream_error"),
        (503, 502, "upstream_error", "upstream_error"),
        (429, 429, "rate_limit_error", "rate_limit_exceeded"),
    ],
)
async def test_an_upstream_server_error_on_the_only_route_is_a_gateway_error_never_a_200(
    upstream: FakeOpenAI, step_status: int, status: int, error_type: str, code: str
) -> None:
    upstream.queue(answer_error(step_status, code="rate_limit_exceeded" if step_status == 429 else None))
    driver = await ask(build(upstream), json=STREAM_CHAT)

    assert driver.status == status
    error = error_of(driver)
    assert (error["type"], error["code"]) == (error_type, code)
    assert "up/gpt-4o" in error["message"]
    assert driver.header("x-routemw-attempts") == "1"
    assert driver.complete


async def test_a_stream_cut_mid_answer_ends_with_an_in_band_error_and_no_done(upstream: FakeOpenAI) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(answer_sse(sse, cut_after=3))  # role, "I'm", " unable": no finish, no [DONE]
    driver = await ask(build(upstream), json=STREAM_CHAT)

    assert driver.status == 200
    payloads = driver.payloads()
    assert payloads[:-1] == upstream_payloads(sse)[:3]
    error = orjson.loads(payloads[-1])["error"]
    assert sorted(error) == sorted(ENVELOPE_KEYS)
    assert error["code"] == "upstream_stream_truncated"
    assert b"[DONE]" not in driver.body
    assert driver.complete
    assert driver.bodies[-1].startswith(b'data: {"error"')


@pytest.mark.parametrize(("cut_after", "status"), [(1, 502), (3, 200)])  # before / after the first content
async def test_a_stream_failure_is_logged_alike_before_and_after_the_commit(
    upstream: FakeOpenAI, caplog: pytest.LogCaptureFixture, cut_after: int, status: int
) -> None:
    upstream.queue(answer_sse(recording("openai/stream-text.sse"), cut_after=cut_after))
    driver = await ask(build(upstream), json=STREAM_CHAT, headers=[("x-request-id", "req-client-7")])

    assert driver.status == status
    (record,) = [r for r in caplog.records if r.name == "routemw" and r.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("routemw: request req-client-7: up/gpt-4o failed (no response, ")
    assert record.getMessage().endswith("): upstream_stream_truncated")
    assert (record.request_id, record.error_code) == ("req-client-7", "upstream_stream_truncated")


async def test_an_in_band_upstream_error_after_content_is_forwarded_in_band(upstream: FakeOpenAI) -> None:
    sse = recording("openai/stream-text.sse")
    upstream_error = {"message": "The server had an error while processing your request.", "type": "server_error"}
    upstream.queue(answer_sse(sse, error_after=4, error=upstream_error))
    driver = await ask(build(upstream), json=STREAM_CHAT)

    assert driver.status == 200
    payloads = driver.payloads()
    assert payloads[:-1] == upstream_payloads(sse)[:4]
    error = orjson.loads(payloads[-1])["error"]
    assert error["message"] == upstream_error["message"]
    assert sorted(error) == sorted(ENVELOPE_KEYS)
    assert b"[DONE]" not in driver.body
    assert driver.complete


async def test_an_in_band_upstream_error_before_content_falls_back(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(answer_sse(sse, error_after=1, error={"message": "overloaded", "code": 503}))
    backup.queue(answer_sse(recording("openai/stream-finish-length.sse")))
    driver = await ask(build(upstream, backup, models=two_routes()), json=STREAM_CHAT)

    assert driver.status == 200
    assert driver.payloads() == [*upstream_payloads(recording("openai/stream-finish-length.sse")), b"[DONE]"]
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-attempts") == "2"
    assert upstream.streams[0].closed


async def test_a_connection_lost_mid_stream_ends_with_an_in_band_error(upstream: FakeOpenAI) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(answer_sse(sse, fail_after=5))
    driver = await ask(build(upstream), json=STREAM_CHAT)

    assert driver.status == 200
    payloads = driver.payloads()
    assert payloads[:-1] == upstream_payloads(sse)[:5]
    error = orjson.loads(payloads[-1])["error"]
    assert error["code"] == "upstream_unreachable"
    assert b"[DONE]" not in driver.body
    assert upstream.streams[0].closed


async def test_a_connection_lost_before_content_falls_back(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_sse(recording("openai/stream-text.sse"), fail_after=1))
    driver = await ask(build(upstream, backup, models=two_routes()), json=STREAM_CHAT)

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.payloads()[-1] == b"[DONE]"
    assert upstream.streams[0].closed


async def test_a_stream_quiet_past_the_provider_timeout_before_content_falls_back(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(answer_sse(recording("openai/stream-text.sse"), stall_after=1))
    gateway = build(upstream, backup, models=two_routes(), up_options={"timeout": 0.2})
    driver = await ask(gateway, json=STREAM_CHAT)

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-attempts") == "2"
    assert driver.finished_at is not None and 0.19 <= driver.finished_at < 3.0
    assert upstream.streams[0].cancelled


async def test_a_stream_that_timed_out_before_content_is_closed(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_sse(recording("openai/stream-text.sse"), stall_after=1))
    gateway = build(upstream, backup, models=two_routes(), up_options={"timeout": 0.2})
    driver = await ask(gateway, json=STREAM_CHAT)

    assert driver.header("x-routemw-provider") == "backup"
    assert upstream.streams[0].closed


# -- fallback over routes ---------------------------------------------------------------------


def _fail_with_500(up: FakeOpenAI) -> None:
    up.queue(answer_error(500, message="The server had an error while processing your request."))


def _fail_with_quota(up: FakeOpenAI) -> None:
    up.queue(
        answer_error(
            429,
            message="You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        )
    )


@pytest.mark.parametrize(
    ("failure", "first_status"),
    [("500", 500), ("401", 401), ("404", 404), ("429-insufficient_quota", 429), ("unreachable", None)],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_failing_first_route_falls_back_to_the_second(
    backup: FakeOpenAI, failure: str, first_status: int | None, stream: bool
) -> None:
    upstream = FakeOpenAI(api_key="sk-a-key-the-gateway-lacks" if failure == "401" else API_KEY)
    first_model = "gpt-4o-nonexistent" if failure == "404" else "gpt-4o"
    if failure == "500":
        _fail_with_500(upstream)
    elif failure == "429-insufficient_quota":
        _fail_with_quota(upstream)
    hosts = {"backup.test": backup} if failure == "unreachable" else {"upstream.test": upstream, "backup.test": backup}
    gateway = build(upstream, backup, models=two_routes(first_model), transport=httpx.MockTransport(route_hosts(hosts)))
    driver = await ask(gateway, json={**CHAT, "stream": stream})

    assert driver.status == 200, driver.body
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-route-model") == "gpt-4o-mini"
    assert driver.header("x-routemw-attempts") == "2"
    assert [r.response_status for r in upstream.requests] == ([] if first_status is None else [first_status])
    (sent,) = backup.requests
    assert sent.headers["authorization"] == f"Bearer {BACKUP_KEY}"
    assert sent.body["model"] == "gpt-4o-mini"
    if stream:
        assert driver.payloads()[-1] == b"[DONE]"
    else:
        assert driver.body == recording("openai/completion-text.json")


async def test_a_client_error_from_the_first_route_is_returned_and_the_second_is_never_called(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    body = {**CHAT, "stop": ["a", "b", "c", "d", "e"]}  # OpenAI takes at most four
    driver = await ask(build(upstream, backup, models=two_routes()), json=body)

    assert driver.status == 400
    error = error_of(driver)
    assert (error["param"], error["code"]) == ("stop", "array_above_max_length")
    assert "array too long" in error["message"]
    assert [r.response_status for r in upstream.requests] == [400]
    assert backup.requests == []
    assert driver.header("x-routemw-attempts") == "1"


async def test_all_routes_failing_gives_a_502_listing_each_attempt_without_keys_or_urls(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    leaky = f"internal error for key {API_KEY} calling {UP_URL}/chat/completions"
    upstream.queue(answer_error(500, message=leaky))
    backup.queue(answer_error(503, message=f"overloaded ({BACKUP_KEY})", code="server_is_overloaded"))
    driver = await ask(build(upstream, backup, models=two_routes()), json=CHAT)

    assert driver.status == 502
    error = error_of(driver)
    assert error["type"] == "upstream_error"
    assert "up/gpt-4o: 500" in error["message"]
    assert "backup/gpt-4o-mini: 503" in error["message"]
    for forbidden in ("upstream.test", "backup.test", "https://", API_KEY, BACKUP_KEY):
        assert forbidden not in error["message"]
    assert driver.header("x-routemw-attempts") == "2"


async def test_all_routes_rate_limited_gives_a_429(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    limited = {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}
    upstream.queue(answer_error(429, {"error": {**limited, "param": None}}, headers={"retry-after": "2"}))
    backup.queue(answer_error(429, {"error": {**limited, "param": None}}))
    driver = await ask(build(upstream, backup, models=two_routes()), json=STREAM_CHAT)

    assert driver.status == 429
    error = error_of(driver)
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert len(upstream.requests) == len(backup.requests) == 1


async def test_an_upstream_message_that_echoes_the_key_is_redacted(upstream: FakeOpenAI) -> None:
    upstream.queue(answer_error(400, message=f"Invalid header: Bearer {API_KEY} is malformed", param="messages"))
    driver = await ask(build(upstream), json=CHAT)

    assert driver.status == 400
    assert error_of(driver)["message"] == "Invalid header: Bearer [redacted] is malformed"


class ErrorReporter:
    """A user middleware in the role of Sentry: it sees, and logs, every error on its way out."""

    def __init__(self) -> None:
        self.seen: list[RouteMWError] = []

    async def __call__(self, call: Call, next: Handler) -> Reply:
        try:
            reply = await next(call)
        except RouteMWError as exc:
            self.report(exc)
            raise
        if isinstance(reply, Stream):
            return Stream((), self._watch(reply), aclose=reply.aclose, headers=reply.headers)
        return reply

    async def _watch(self, reply: Stream) -> AsyncIterator[list[Chunk]]:
        try:
            async for batch in reply.batches():
                yield batch
        except RouteMWError as exc:
            self.report(exc)
            raise

    def report(self, exc: RouteMWError) -> None:
        self.seen.append(exc)
        logging.getLogger("app.reporter").exception("upstream failed: %r", exc)


async def test_upstream_errors_are_scrubbed_before_any_middleware_or_logger_sees_them(upstream: FakeOpenAI) -> None:
    # `no_secret_in_logs` checks the reporter's log lines (message and traceback) for the key.
    upstream.queue(answer_error(400, message=f"Key {API_KEY} is not allowed", param=f"auth {API_KEY}", code=API_KEY))
    reporter = ErrorReporter()
    driver = await ask(build(upstream, middleware=[reporter]), json=CHAT)

    assert driver.status == 400
    (error,) = reporter.seen
    assert isinstance(error, UpstreamError)
    assert error.message == "Key [redacted] is not allowed"
    assert (error.param, error.code) == ("auth [redacted]", "[redacted]")
    assert str(error) == error.message
    assert error_of(driver)["message"] == "Key [redacted] is not allowed"


async def test_an_upstream_error_mid_stream_is_scrubbed_before_middleware_sees_it(upstream: FakeOpenAI) -> None:
    sse = recording("openai/stream-text.sse")
    expired = {"message": f"Bearer {API_KEY} expired", "type": "server_error"}
    upstream.queue(answer_sse(sse, error_after=4, error=expired))
    reporter = ErrorReporter()
    driver = await ask(build(upstream, middleware=[reporter]), json=STREAM_CHAT)

    assert driver.status == 200
    (error,) = reporter.seen
    assert error.message == "Bearer [redacted] expired"
    assert orjson.loads(driver.payloads()[-1])["error"]["message"] == "Bearer [redacted] expired"


async def test_an_upstream_is_not_scrubbed_of_secrets_it_was_never_given(upstream: FakeOpenAI) -> None:
    # Only the provider's own credentials: anything else in its text came from the client (an
    # upstream echoing a value), and blanking it would tell the client it had guessed a secret.
    upstream.queue(answer_error(400, message=f"Invalid value: '{BACKUP_KEY}' and '{API_KEY}'"))
    gateway = build(upstream, backup=FakeOpenAI(api_key=BACKUP_KEY), models=two_routes())
    driver = await drive(gateway, json=CHAT)  # not `ask`: the backup's key is expected here

    assert error_of(driver)["message"] == f"Invalid value: '{BACKUP_KEY}' and '[redacted]'"


# -- client disconnects -----------------------------------------------------------------------


async def test_a_disconnect_mid_stream_cancels_the_upstream_promptly(upstream: FakeOpenAI) -> None:
    upstream.queue(answer_sse(recording("openai/stream-text.sse"), pause_after={4: 30.0}))
    driver = AsgiDriver(build(upstream), body=orjson.dumps(STREAM_CHAT))
    async with anyio.create_task_group() as tg:
        await start(driver, tg)
        await wait_for(lambda: len(driver.payloads()) >= 4)
        await anyio.sleep(0.05)
        driver.disconnect()
        disconnected = time.monotonic()

    (stream,) = upstream.streams
    assert stream.cancelled and stream.closed
    assert stream.closed_at is not None and stream.closed_at - disconnected < 1.0
    assert driver.finished_at is not None and driver.disconnected_at is not None
    assert driver.finished_at - driver.disconnected_at < 1.0
    assert b"[DONE]" not in driver.body
    assert len(driver.payloads()) == 4


async def test_a_disconnect_while_waiting_for_the_first_byte_cancels_the_attempt(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(stall())
    driver = AsgiDriver(build(upstream, backup, models=two_routes()), body=orjson.dumps(STREAM_CHAT))
    async with anyio.create_task_group() as tg:
        await start(driver, tg)
        await wait_for(lambda: bool(upstream.requests) and upstream.requests[0].stalled)
        driver.disconnect()

    assert upstream.requests[0].cancelled
    assert backup.requests == []
    assert driver.messages == []
    assert driver.finished_at is not None and driver.disconnected_at is not None
    assert driver.finished_at - driver.disconnected_at < 1.0


async def test_a_disconnect_at_the_commit_point_still_releases_the_upstream(upstream: FakeOpenAI) -> None:
    async def leave_on_start(driver: AsgiDriver, message: Mapping[str, Any]) -> None:
        # The client leaves just as the response starts, and the server's send() yields (as
        # ASGI allows): the cancellation lands inside the gateway's first send.
        if message["type"] == "http.response.start":
            driver.disconnect()
            await anyio.sleep(0.05)

    upstream.queue(answer_sse(recording("openai/stream-text.sse"), pause_after={3: 30.0}))
    driver = AsgiDriver(build(upstream), body=orjson.dumps(STREAM_CHAT), on_send=leave_on_start)
    await driver.run()

    assert driver.finished_at is not None and driver.finished_at < 5.0
    assert upstream.streams[0].closed


async def test_a_disconnect_before_the_body_arrives_answers_nothing(upstream: FakeOpenAI) -> None:
    driver = AsgiDriver(build(upstream), body=[b'{"model": "gpt-4o", ', b'"messages": []}'])
    driver.disconnect()
    await driver.run()

    assert driver.messages == []
    assert upstream.requests == []


# -- keep-alive -------------------------------------------------------------------------------


async def test_keepalive_comments_fill_an_upstream_pause_and_stop_at_the_end(upstream: FakeOpenAI) -> None:
    sse = recording("openai/stream-finish-length.sse")
    upstream.queue(answer_sse(sse, pause_after={2: 0.2, 3: 0.2}))
    driver = await ask(build(upstream, server={"keepalive": 0.05}), json=STREAM_CHAT)

    assert driver.status == 200
    assert driver.payloads() == [*upstream_payloads(sse), b"[DONE]"]
    kinds = ["ping" if body == b": ping\n" else "data" for body in driver.bodies]
    assert all(body == b": ping\n" or body.startswith(b"data: ") for body in driver.bodies)
    # Pings only in the two pauses: after the 2nd and the 3rd event (events that arrived
    # together may share one body message, so events are counted, not messages).
    first_ping, last_ping = kinds.index("ping"), len(kinds) - 1 - kinds[::-1].index("ping")
    before = [p for body in driver.bodies[:first_ping] for p in data_payloads(body)]
    after = [p for body in driver.bodies[last_ping + 1 :] for p in data_payloads(body)]
    assert len(before) == 2
    assert 2 <= kinds.count("ping") <= 10
    assert len(after) == len(upstream_payloads(sse)) - 3 + 1  # the rest, and [DONE]
    assert driver.bodies[-1].endswith(b"data: [DONE]\n\n")
    messages = driver.body_messages
    pings = [m for m in messages if m.message["body"] == b": ping\n"]
    assert all(p.message["more_body"] for p in pings)
    assert pings[0].at - messages[first_ping - 1].at >= 0.04


async def test_no_keepalive_when_the_upstream_does_not_pause(upstream: FakeOpenAI) -> None:
    upstream.queue(answer_sse(recording("openai/stream-text.sse")))
    driver = await ask(build(upstream, server={"keepalive": 5}), json=STREAM_CHAT)

    assert b": ping" not in driver.body


# -- gateway errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b'{"model": "gpt-4o", ', b"[1, 2]", b"", b"\xff\xfe"])
async def test_a_body_that_is_not_a_json_object_is_a_400(upstream: FakeOpenAI, raw: bytes) -> None:
    driver = await ask(build(upstream), body=raw)

    assert driver.status == 400
    error = error_of(driver)
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_json")
    assert upstream.requests == []


async def test_a_body_that_repeats_a_key_is_refused_and_never_forwarded(upstream: FakeOpenAI) -> None:
    # Checked as the last `model`, forwarded as bytes with both: an upstream that keeps the
    # first key would serve a model routemw never checked.
    raw = b'{"model":"not-allowed","messages":[{"role":"user","content":"hi"}],"model":"gpt-4o"}'
    driver = await ask(build(upstream), body=raw)

    assert driver.status == 400
    error = error_of(driver)
    assert (error["param"], error["code"]) == ("model", "duplicate_key")
    assert upstream.requests == []


async def test_a_chunked_body_over_the_limit_is_a_413(upstream: FakeOpenAI) -> None:
    pieces = [b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "', b"x" * 600, b'"}]}']
    driver = await ask(build(upstream, server={"max_body_bytes": 512}), body=pieces)

    assert driver.status == 413
    assert error_of(driver)["code"] == "request_too_large"
    assert upstream.requests == []


async def test_a_declared_content_length_over_the_limit_is_a_413_without_reading_the_body(
    upstream: FakeOpenAI,
) -> None:
    body = orjson.dumps(CHAT)
    driver = AsgiDriver(
        build(upstream, server={"max_body_bytes": 64}), body=body, headers=[("content-length", "1000000")]
    )
    await driver.run()

    assert driver.status == 413
    assert error_of(driver)["code"] == "request_too_large"
    assert driver.receives == 0


async def test_a_body_at_the_limit_is_accepted(upstream: FakeOpenAI) -> None:
    body = orjson.dumps(CHAT)
    driver = await ask(build(upstream, server={"max_body_bytes": len(body)}), body=[body[:10], body[10:]])

    assert driver.status == 200
    assert upstream.requests[0].raw == body


async def test_an_unknown_model_is_a_404_model_not_found(upstream: FakeOpenAI) -> None:
    driver = await ask(build(upstream), json={**CHAT, "model": "gpt-unknown"})

    assert driver.status == 404
    error = error_of(driver)
    assert error == {
        "message": "The model `gpt-unknown` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert upstream.requests == []


async def test_an_unknown_path_is_a_404_envelope(upstream: FakeOpenAI) -> None:
    driver = await ask(build(upstream), method="GET", path="/v1/audio/speech")

    assert driver.status == 404
    error = error_of(driver)
    assert error["type"] == "invalid_request_error"
    assert "/v1/audio/speech" in error["message"]


@pytest.mark.parametrize(
    ("path", "root_path"),
    [("/llm/v1", "/llm"), ("/v1", "/llm"), ("/llm/v1/audio/speech", "/llm"), ("/v1/audio/speech", "/llm")],
)
async def test_a_404_under_a_root_path_names_the_path_the_client_used(
    upstream: FakeOpenAI, path: str, root_path: str
) -> None:
    # Starlette's Mount and spec-following servers keep `path` whole; older servers strip it.
    driver = await ask(build(upstream), method="GET", path=path, root_path=root_path)

    assert driver.status == 404
    full = path if path.startswith(root_path) else root_path + path
    assert error_of(driver)["message"] == f"Invalid URL (GET {full})"


async def test_a_404_from_a_gateway_mounted_in_starlette_names_the_mounted_path(upstream: FakeOpenAI) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    host = Starlette(routes=[Mount("/llm", app=build(upstream))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://host") as client:
        missing = await client.get("/llm/v1")
        chat = await client.post("/llm/v1/chat/completions", json=CHAT)

    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Invalid URL (GET /llm/v1)"
    assert chat.status_code == 200


async def test_a_long_path_or_method_is_quoted_short(upstream: FakeOpenAI) -> None:
    driver = await ask(build(upstream), method="GET", path="/" + "p" * 5000)

    assert error_of(driver)["message"] == f"Invalid URL (GET /{'p' * 63}…)"


@pytest.mark.parametrize(
    ("method", "path", "allow"), [("GET", "/v1/chat/completions", "POST"), ("POST", "/v1/models", "GET")]
)
async def test_a_wrong_method_is_a_405_with_allow(upstream: FakeOpenAI, method: str, path: str, allow: str) -> None:
    driver = await ask(build(upstream), method=method, path=path)

    assert driver.status == 405
    assert driver.header("allow") == allow
    assert error_of(driver)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"json": CHAT},
        {"json": STREAM_CHAT},
        {"json": {**CHAT, "model": "nope"}},
        {"body": b"not json"},
        {"method": "GET", "path": "/v1/models"},
        {"method": "GET", "path": "/v1/models/gpt-4o"},
        {"method": "GET", "path": "/nowhere"},
        {"method": "DELETE", "path": "/v1/chat/completions"},
    ],
)
async def test_every_response_has_a_request_id(upstream: FakeOpenAI, request_kwargs: dict[str, Any]) -> None:
    gateway = build(upstream)
    first = await ask(gateway, **request_kwargs)
    second = await ask(gateway, **request_kwargs)

    ids = [first.header("x-request-id"), second.header("x-request-id")]
    assert all(GENERATED_ID.fullmatch(i or "") for i in ids)
    assert ids[0] != ids[1]


async def test_a_valid_inbound_request_id_is_echoed(upstream: FakeOpenAI) -> None:
    upstream.queue(answer_json(recording("openai/completion-text.json")), answer_error(500))
    gateway = build(upstream)
    ok = await ask(gateway, json=CHAT, headers=[("x-request-id", "trace-42.a:b_c")])
    failed = await ask(gateway, json=STREAM_CHAT, headers=[("x-request-id", "trace-43")])

    assert ok.header("x-request-id") == "trace-42.a:b_c"
    assert (failed.status, failed.header("x-request-id")) == (502, "trace-43")


@pytest.mark.parametrize(
    "inbound", [b"abc\r\nx-evil: 1", b"abc\nset-cookie: a=b", "x" * 500, b"has space", b"", "caf\u00e9"]
)
async def test_a_malicious_inbound_request_id_is_replaced(upstream: FakeOpenAI, inbound: str | bytes) -> None:
    raw = inbound if isinstance(inbound, bytes) else inbound.encode("latin-1")
    driver = await ask(build(upstream), json=CHAT, headers=[(b"x-request-id", raw)])

    assert driver.status == 200
    assert GENERATED_ID.fullmatch(driver.header("x-request-id") or "")
    names = [name for name, _ in driver.header_list]
    assert "x-evil" not in names
    assert driver.header("set-cookie") is None
    assert all(b"\r" not in v and b"\n" not in v for _, v in driver.start["headers"])


class ExplodingMiddleware:
    async def __call__(self, call: Call, next: Handler) -> Reply:
        raise RuntimeError("boom: internal state at 0xdeadbeef")


class ExplodingStreamMiddleware:
    """Breaks a stream after the response has started."""

    async def __call__(self, call: Call, next: Handler) -> Reply:
        reply = await next(call)
        assert isinstance(reply, Stream)
        seen: list[Chunk] = []

        def transform(chunk: Chunk) -> Chunk:
            seen.append(chunk)
            if len(seen) > 3:
                raise ValueError("boom: stream transform failed")
            return chunk

        return reply.map(transform)


async def test_an_unexpected_exception_in_a_middleware_is_a_500_envelope_and_is_logged(
    upstream: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    driver = await ask(build(upstream, middleware=[ExplodingMiddleware()]), json=CHAT)

    assert driver.status == 500
    error = error_of(driver)
    assert error["code"] == "internal_error"
    assert b"boom" not in driver.body
    assert b"Traceback" not in driver.body
    assert b"RuntimeError" not in driver.body
    assert GENERATED_ID.fullmatch(driver.header("x-request-id") or "")
    logged = [r for r in caplog.records if r.exc_info and "boom" in str(r.exc_info[1])]
    assert len(logged) == 1
    assert logged[0].levelno >= logging.ERROR
    request_id = driver.header("x-request-id")
    assert request_id is not None and request_id in logged[0].getMessage()
    assert upstream.requests == []


async def test_an_unexpected_exception_after_the_stream_started_is_an_in_band_error(
    upstream: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(answer_sse(sse))
    driver = await ask(build(upstream, middleware=[ExplodingStreamMiddleware()]), json=STREAM_CHAT)

    assert driver.status == 200
    payloads = driver.payloads()
    assert payloads[:3] == upstream_payloads(sse)[:3]
    assert orjson.loads(payloads[-1])["error"]["code"] == "internal_error"
    assert b"boom" not in driver.body
    assert b"[DONE]" not in driver.body
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
    assert upstream.streams[0].closed


# -- /v1/models -------------------------------------------------------------------------------


MODELS = {
    "gpt-4o": {"routes": [{"provider": "up", "model": "gpt-4o"}]},
    "fast": {"routes": [{"provider": "up", "model": "gpt-4o-mini"}], "owned_by": "acme"},
}


@pytest.mark.parametrize(
    ("root_path", "path"), [("", "/v1/models"), ("/llm", "/llm/v1/models"), ("/llm", "/v1/models")]
)
async def test_models_list(upstream: FakeOpenAI, root_path: str, path: str) -> None:
    driver = await ask(build(upstream, models=MODELS), method="GET", path=path, root_path=root_path)

    assert driver.status == 200
    assert driver.header("content-type") == "application/json"
    body = driver.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["gpt-4o", "fast"]
    for card in body["data"]:
        assert card["object"] == "model"
        assert isinstance(card["created"], int) and not isinstance(card["created"], bool)
        assert abs(card["created"] - time.time()) < 3600
    assert {m["id"]: m["owned_by"] for m in body["data"]} == {"gpt-4o": "up", "fast": "acme"}
    assert upstream.requests == []


async def test_one_model(upstream: FakeOpenAI) -> None:
    gateway = build(upstream, models=MODELS)
    listed = (await ask(gateway, method="GET", path="/v1/models")).json()["data"]
    driver = await ask(gateway, method="GET", path="/llm/v1/models/fast", root_path="/llm")

    assert driver.status == 200
    card = driver.json()
    assert card == {**card, "id": "fast", "object": "model", "created": listed[1]["created"], "owned_by": "acme"}
    assert card == listed[1]


async def test_an_unknown_model_id_is_a_404(upstream: FakeOpenAI) -> None:
    driver = await ask(build(upstream, models=MODELS), method="GET", path="/v1/models/gpt-3")

    assert driver.status == 404
    error = error_of(driver)
    assert (error["code"], error["param"]) == ("model_not_found", "model")


async def test_chat_under_a_root_path(upstream: FakeOpenAI) -> None:
    driver = await ask(build(upstream), json=CHAT, path="/llm/v1/chat/completions", root_path="/llm")

    assert driver.status == 200
    assert len(upstream.requests) == 1


# -- lifespan and transport ownership ---------------------------------------------------------


@pytest.fixture
def default_transport(monkeypatch: pytest.MonkeyPatch, upstream: FakeOpenAI) -> Iterator[list[RecordingTransport]]:
    """The transports the gateway creates for itself, recording their closing."""
    created: list[RecordingTransport] = []

    def factory() -> RecordingTransport:
        created.append(RecordingTransport(route_hosts({"upstream.test": upstream})))
        return created[-1]

    monkeypatch.setattr("routemw.app.default_transport", factory)
    yield created


def default_gateway() -> Gateway:
    document = {
        "providers": {"up": {"type": "openai", "base_url": UP_URL, "api_key": API_KEY}},
        "models": {"gpt-4o": {"routes": [{"provider": "up", "model": "gpt-4o"}]}},
    }
    return Gateway.from_config(document, environ={})


async def lifespan(app: Any) -> list[Mapping[str, Any]]:
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Mapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(incoming)

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    return sent


async def test_the_lifespan_protocol_closes_the_transport_the_gateway_made(
    default_transport: list[RecordingTransport],
) -> None:
    gateway = default_gateway()
    assert (await ask(gateway, json=CHAT)).status == 200
    assert len(default_transport) == 1 and default_transport[0].close_calls == 0

    assert await lifespan(gateway) == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert default_transport[0].close_calls == 1


async def test_async_with_closes_the_transport_the_gateway_made(default_transport: list[RecordingTransport]) -> None:
    async with default_gateway() as gateway:
        assert (await ask(gateway, json=CHAT)).status == 200
        assert (await ask(gateway, json=STREAM_CHAT)).status == 200
        assert default_transport[0].close_calls == 0
    assert len(default_transport) == 1
    assert default_transport[0].close_calls == 1


async def test_the_lifespan_context_closes_the_transport_and_a_later_request_opens_a_new_one(
    default_transport: list[RecordingTransport],
) -> None:
    gateway = default_gateway()
    async with gateway.lifespan(None):
        assert (await ask(gateway, json=CHAT)).status == 200
    assert default_transport[0].close_calls == 1

    assert (await ask(gateway, json=CHAT)).status == 200
    assert len(default_transport) == 2
    await gateway.aclose()
    assert default_transport[1].close_calls == 1


async def test_a_transport_passed_in_is_never_closed(upstream: FakeOpenAI) -> None:
    transport = RecordingTransport(route_hosts({"upstream.test": upstream}))
    gateway = build(upstream, transport=transport)
    async with gateway:
        assert (await ask(gateway, json=CHAT)).status == 200
    async with gateway.lifespan(None):
        pass
    assert await lifespan(gateway) == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert transport.close_calls == 0


async def test_a_websocket_is_refused(upstream: FakeOpenAI) -> None:
    sent: list[Mapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(message)

    await build(upstream)({"type": "websocket", "path": "/v1/chat/completions", "headers": []}, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]


# -- the echo provider, scripted --------------------------------------------------------------


def echo_gateway(providers: Mapping[str, Any], routes: list[str]) -> Gateway:
    document = {
        "providers": dict(providers),
        "models": {"m": {"routes": [{"provider": p, "model": f"echo-{i}"} for i, p in enumerate(routes)]}},
        "retry": {"attempts": 1},
    }
    return Gateway.from_config(document, environ={})


def message_text(driver: AsgiDriver) -> str:
    text: str = driver.json()["choices"][0]["message"]["content"]
    return text


def streamed_text(driver: AsgiDriver) -> str:
    parts: list[str] = []
    for payload in driver.payloads():
        if payload == b"[DONE]":
            continue
        for choice in orjson.loads(payload).get("choices") or []:
            parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


ECHO_CHAT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "echo me back"}]}


async def test_a_scripted_echo_provider_fails_then_answers() -> None:
    gateway = echo_gateway({"flaky": {"type": "echo", "script": [{"status": 503}, {"text": "hi"}]}}, ["flaky", "flaky"])
    first = await ask(gateway, json=ECHO_CHAT)
    second = await ask(gateway, json=ECHO_CHAT)

    assert first.status == 200
    assert message_text(first) == "hi"
    assert first.header("x-routemw-attempts") == "2"
    assert first.header("x-routemw-route-model") == "echo-1"
    assert message_text(second) == "echo me back"
    assert second.header("x-routemw-attempts") == "1"


async def test_a_scripted_echo_error_on_every_route_is_a_502() -> None:
    script = [{"status": 503, "message": "down"}, {"status": 500}]
    driver = await ask(echo_gateway({"flaky": {"type": "echo", "script": script}}, ["flaky", "flaky"]), json=ECHO_CHAT)

    assert driver.status == 502
    assert "flaky/echo-0: 503" in error_of(driver)["message"]
    assert "flaky/echo-1: 500" in error_of(driver)["message"]


async def test_an_echo_stream_cut_after_it_started_ends_with_an_in_band_error() -> None:
    gateway = echo_gateway({"cut": {"type": "echo", "script": [{"cut_after": 2}]}}, ["cut", "echo"])
    driver = await ask(gateway, json={**ECHO_CHAT, "stream": True})

    assert driver.status == 200
    assert streamed_text(driver) == "echo me"
    assert orjson.loads(driver.payloads()[-1])["error"]["code"] == "upstream_stream_truncated"
    assert b"[DONE]" not in driver.body


async def test_an_echo_stream_cut_before_any_content_falls_back() -> None:
    gateway = echo_gateway({"cut": {"type": "echo", "script": [{"cut_after": 0}]}}, ["cut", "echo"])
    driver = await ask(gateway, json={**ECHO_CHAT, "stream": True})

    assert driver.status == 200
    assert streamed_text(driver) == "echo me back"
    assert driver.payloads()[-1] == b"[DONE]"
    assert driver.header("x-routemw-provider") == "echo"
    assert driver.header("x-routemw-attempts") == "2"


@pytest.mark.parametrize("stream", [False, True])
async def test_an_echo_stall_times_out_and_falls_back(stream: bool) -> None:
    providers = {"slow": {"type": "echo", "timeout": 0.1, "script": [{"stall": True}]}}
    driver = await ask(echo_gateway(providers, ["slow", "echo"]), json={**ECHO_CHAT, "stream": stream})

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "echo"
    assert driver.header("x-routemw-attempts") == "2"
    assert driver.finished_at is not None and 0.09 <= driver.finished_at < 3.0


async def test_an_echo_stall_on_the_only_route_is_a_gateway_error_naming_the_timeout() -> None:
    providers = {"slow": {"type": "echo", "timeout": 0.1, "script": [{"stall": True}]}}
    driver = await ask(echo_gateway(providers, ["slow"]), json=ECHO_CHAT)

    # 504 or 502 is a policy choice (the request's deadline did not pass, the provider's did);
    # either way it is a gateway error that says what happened, never a 200 or a hang.
    assert driver.status in {502, 504}
    error = error_of(driver)
    assert error["type"] in {"upstream_error", "timeout_error"}
    assert "slow/echo-0: no response upstream_timeout" in error["message"]
    assert driver.finished_at is not None and driver.finished_at < 3.0


async def test_an_echo_chunk_delay_spaces_the_stream_out() -> None:
    gateway = echo_gateway({"slow": {"type": "echo", "chunk_delay": 0.05}}, ["slow"])
    body = {"model": "m", "messages": [{"role": "user", "content": "one two three four"}], "stream": True}
    driver = await ask(gateway, json=body)

    assert driver.status == 200
    assert streamed_text(driver) == "one two three four"
    # When each word's chunk left, whether or not it shared a message with the role chunk.
    content = [
        m.at
        for m in driver.body_messages
        for payload in data_payloads(m.message["body"])
        if payload != b"[DONE]" and (orjson.loads(payload)["choices"] or [{}])[0].get("delta", {}).get("content")
    ]
    assert len(content) == 4
    gaps = [b - a for a, b in itertools.pairwise(content)]
    assert all(gap >= 0.03 for gap in gaps), gaps


async def test_consecutive_streams_all_release_their_upstream(upstream: FakeOpenAI) -> None:
    """Several streams in a row leave every fake upstream stream closed."""
    for _ in range(3):
        upstream.queue(answer_sse(recording("openai/stream-refusal.sse")))
        assert (await ask(build(upstream), json=STREAM_CHAT)).status == 200
    assert [s.closed for s in upstream.streams] == [True, True, True]


# -- the fake upstream itself: it must refuse what OpenAI refuses, or the tests above prove little


@pytest.mark.parametrize(
    ("headers", "body", "status", "code", "param"),
    [
        ({}, CHAT, 401, "invalid_api_key", None),
        ({"authorization": "Bearer sk-wrong-key-000000"}, CHAT, 401, "invalid_api_key", None),
        ({"authorization": f"Bearer {API_KEY}"}, b"{not json", 400, None, None),
        ({"authorization": f"Bearer {API_KEY}"}, {"messages": CHAT["messages"]}, 400, None, None),
        ({"authorization": f"Bearer {API_KEY}"}, {"model": "gpt-4o"}, 400, "missing_required_parameter", "messages"),
        (
            {"authorization": f"Bearer {API_KEY}"},
            {**CHAT, "parallel_tool_calls": True},
            400,
            None,
            "parallel_tool_calls",
        ),
        (
            {"authorization": f"Bearer {API_KEY}"},
            {**CHAT, "stop": list("abcde")},
            400,
            "array_above_max_length",
            "stop",
        ),
        ({"authorization": f"Bearer {API_KEY}"}, {**CHAT, "model": "gpt-9"}, 404, "model_not_found", None),
    ],
)
async def test_the_fake_upstream_refuses_what_openai_refuses(
    upstream: FakeOpenAI, headers: dict[str, str], body: Any, status: int, code: str | None, param: str | None
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as client:
        response = await client.post(f"{UP_URL}/chat/completions", content=content, headers=headers)

    assert response.status_code == status
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert API_KEY not in error["message"]
    assert upstream.requests[0].raw == content


async def test_the_fake_upstream_answers_with_recordings_by_default(upstream: FakeOpenAI) -> None:
    headers = {"authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as client:
        plain = await client.post(f"{UP_URL}/chat/completions", json=CHAT, headers=headers)
        streamed = await client.post(f"{UP_URL}/chat/completions", json=STREAM_CHAT, headers=headers)

    assert plain.content == recording("openai/completion-text.json")
    assert streamed.content == recording("openai/stream-text.sse")
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert [r.body for r in upstream.requests] == [CHAT, STREAM_CHAT]
    assert upstream.streams[0].closed and len(upstream.streams[0].sent) > 100  # many awkward pieces


async def test_generated_request_ids_are_unique_per_gateway_and_across_gateways() -> None:
    first, second = Gateway.from_config(None, environ={}), Gateway.from_config(None, environ={})
    ids = []
    for gateway in (first, first, second):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
            ids.append((await client.get("/v1/models")).headers["x-request-id"])
    assert all(GENERATED_ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == 3
    assert ids[0][:16] == ids[1][:16] != ids[2][:16]  # one random prefix per gateway


async def test_a_transport_the_user_gave_survives_the_gateway_closing(upstream: FakeOpenAI) -> None:
    gateway = build(upstream, transport=httpx.MockTransport(route_hosts({"upstream.test": upstream})))
    async with gateway:
        pass
    driver = await ask(gateway, json=CHAT)
    assert driver.status == 200
    assert len(upstream.requests) == 1  # still the user's transport, not a new network pool


async def test_a_client_gone_when_the_answer_is_sent_raises_nothing(upstream: FakeOpenAI) -> None:
    gateway = build(upstream)
    body = orjson.dumps(CHAT)
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, object]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: object) -> None:
        raise OSError("client disconnected")  # what ASGI 2.4 servers do after a disconnect

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "method": "POST",
        "path": "/v1/chat/completions",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
    }
    await gateway(scope, receive, send)  # must return quietly
    await gateway({**scope, "path": "/v1/models", "method": "GET"}, receive, send)
