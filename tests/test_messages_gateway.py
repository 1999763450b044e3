"""The Messages door through the gateway's own steps, at the ASGI message level.

`test_messages_door.py` checks the door's bytes; this file checks that what the gateway does for
every request is done for this door too, with Anthropic's envelope wherever the client is told
something: the key checked before the body, duplicate keys refused, limits admitted and settled
on every exit (the limit store is inspected as in `limits/test_gateway_limits.py`), the usage
record, `response_model`, the drain, header-safe disclosure, and bounded upstream reads.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import httpx
import orjson
import pytest
from fakes import API_KEY, AsgiDriver, FakeOpenAI, answer_json, answer_sse, drive, recording, route_hosts, wait_for
from test_messages_door import ANTHROPIC_KEY, Anthropic, anthropic_error

from routemw import Gateway
from routemw.doors.messages.parse import parse_messages_request
from routemw.limits import MemoryLimitStore, Rate, Slots, estimate
from routemw.usage import UsageRecord

CLAUDE = "claude-sonnet-4-5"
KEY = "sk-team-a-0123456789abcdef"
AUTH = [("x-api-key", KEY)]
HELLO: dict[str, Any] = {"model": "m", "max_tokens": 256, "messages": [{"role": "user", "content": "Say hi"}]}
STREAM: dict[str, Any] = {**HELLO, "stream": True}
TPM = 100_000
LIMITS: dict[str, Any] = {"rpm": 100, "tpm": TPM, "concurrency": 4}
ROUTES = {"anthropic": ("claude", CLAUDE), "openai": ("gpt", "gpt-4o")}


def document(
    route: str = "anthropic",
    *,
    limits: dict[str, Any] | None = None,
    key: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    provider, upstream_model = ROUTES[route]
    account: dict[str, Any] = {"name": "team-a", "key": KEY, "models": ["*"], **(key or {})}
    if limits is not None:
        account["limits"] = limits
    return {
        "providers": {
            "claude": {"type": "anthropic", "base_url": "https://anthropic.test", "api_key": ANTHROPIC_KEY},
            "gpt": {"type": "openai", "base_url": "https://upstream.test/v1", "api_key": API_KEY},
        },
        "models": {"m": {"routes": [{"provider": provider, "model": upstream_model}], **(model or {})}},
        "keys": [account],
        "auth": {"mode": "keys"},
        "retry": {"attempts": 1},
        **(extra or {}),
    }


def build(doc: dict[str, Any], claude: Anthropic | None = None, openai: FakeOpenAI | None = None, **kw: Any) -> Gateway:
    hosts = {"anthropic.test": claude or Anthropic(), "upstream.test": openai or FakeOpenAI(api_key=API_KEY)}
    return Gateway.from_config(doc, environ={}, transport=httpx.MockTransport(route_hosts(hosts)), **kw)


def upstreams(route: str, step: Any) -> tuple[Anthropic | None, FakeOpenAI | None]:
    if route == "anthropic":
        return Anthropic(step), None
    return None, FakeOpenAI(api_key=API_KEY).queue(step)


async def post(app: Gateway, body: Any, **kwargs: Any) -> AsgiDriver:
    return await drive(app, path=kwargs.pop("path", "/v1/messages"), json=body, headers=AUTH, **kwargs)


@pytest.fixture
def clock_store() -> MemoryLimitStore:
    return MemoryLimitStore(clock=lambda: 1_800_000_000.0)  # frozen: nothing flows back meanwhile


async def charged(gateway: Gateway) -> tuple[int, int, int]:
    """(slots free of 4, tpm tokens charged, requests counted) for the key."""
    slots, tpm, rpm = await gateway.limits.store.inspect(
        [Slots("acct:team-a", 4), Rate("acct:team-a", "tpm", TPM, 0), Rate("acct:team-a", "rpm", 100, 0)]
    )
    return slots.remaining, TPM - tpm.remaining, 100 - rpm.remaining


def reserved(gateway: Gateway, body: dict[str, Any]) -> int:
    entry = gateway.catalog.get("m")
    assert entry is not None
    return estimate(parse_messages_request(orjson.dumps(body), {}), entry.targets, 1024).likely


# -- limits: settled on every exit -----------------------------------------------------------------


@pytest.mark.parametrize("route", ["anthropic", "openai"])
async def test_a_client_cancelling_a_messages_stream_frees_its_slot_and_is_charged_the_reservation(
    clock_store: MemoryLimitStore, route: str
) -> None:
    sse = recording("anthropic/stream-text.sse" if route == "anthropic" else "openai/stream-text.sse")
    claude, openai = upstreams(route, answer_sse(sse, pause_after={4: 30.0}))
    gateway = build(document(route, limits=LIMITS), claude, openai, limits=clock_store)
    driver = AsgiDriver(gateway, path="/v1/messages", body=orjson.dumps(STREAM), headers=AUTH)
    async with anyio.create_task_group() as tg:
        tg.start_soon(driver.run)
        await anyio.lowlevel.checkpoint()
        await wait_for(lambda: b"text_delta" in driver.body)
        assert (await charged(gateway))[0] == 3  # the slot is held while the stream runs
        driver.disconnect()
    assert driver.status == 200 and b"message_stop" not in driver.body
    (stream,) = claude.streams if claude is not None else openai.streams  # type: ignore[union-attr]
    await wait_for(lambda: stream.closed)
    # No usage came before the client left, so the whole reservation stays charged.
    assert await charged(gateway) == (4, reserved(gateway, STREAM), 1)


@pytest.mark.parametrize(
    ("route", "stream"), [("anthropic", True), ("anthropic", False), ("openai", True), ("openai", False)]
)
async def test_a_messages_answer_is_charged_its_usage_and_recorded_under_the_public_model(
    clock_store: MemoryLimitStore, route: str, stream: bool
) -> None:
    if route == "anthropic":
        name = "anthropic/stream-text.sse" if stream else "anthropic/message-parallel-tool-use.json"
    else:
        name = "openai/stream-text.sse" if stream else "openai/completion-text.json"
    step = answer_sse(recording(name)) if stream else answer_json(orjson.loads(recording(name)))
    claude, openai = upstreams(route, step)
    records: list[UsageRecord] = []
    gateway = build(document(route, limits=LIMITS), claude, openai, limits=clock_store, on_usage=records.append)
    driver = await post(gateway, {**HELLO, "stream": stream})
    assert driver.status == 200
    (record,) = records
    assert (record.model, record.account, record.status, record.stream) == ("m", "team-a", 200, stream)
    assert (record.provider, record.upstream_model) == ROUTES[route]
    assert record.prompt_tokens and record.completion_tokens
    assert await charged(gateway) == (4, record.prompt_tokens + record.completion_tokens, 1)


async def test_a_rate_limited_key_gets_anthropics_rate_limit_error_with_retry_after(
    clock_store: MemoryLimitStore,
) -> None:
    claude = Anthropic()
    gateway = build(document(limits={"rpm": 1}), claude, limits=clock_store)
    first = await post(gateway, HELLO)
    assert first.status == 200 and first.header("x-ratelimit-remaining-requests") == "0"
    refused = await post(gateway, HELLO)
    assert refused.status == 429
    error = anthropic_error(refused)
    assert error["type"] == "rate_limit_error" and "your API key" in error["message"]
    assert refused.header("retry-after") == "60"
    assert len(claude.requests) == 1


async def test_a_used_up_budget_is_a_billing_error(clock_store: MemoryLimitStore) -> None:
    prices = {"prices": {CLAUDE: {"input": 1000, "output": 1000}}}
    limits = {"budget": {"usd": 0.01, "period": "month"}}
    claude = Anthropic()
    gateway = build(document(limits=limits, extra=prices), claude, limits=clock_store)
    refused = await post(gateway, {**HELLO, "max_tokens": 20_000})  # its bound alone is $0.02
    assert refused.status == 402
    error = anthropic_error(refused)
    assert error["type"] == "billing_error" and "month" in error["message"]
    assert claude.requests == []


async def test_an_expired_key_is_an_authentication_error() -> None:
    claude = Anthropic()
    gateway = build(document(key={"expires": "2020-01-31T00:00:00Z"}), claude)
    refused = await post(gateway, HELLO)
    assert refused.status == 401
    error = anthropic_error(refused)
    assert error["type"] == "authentication_error" and "expired" in error["message"]
    assert claude.requests == []


# -- before the pipeline ---------------------------------------------------------------------------


async def test_the_key_is_checked_before_the_body_is_read() -> None:
    gateway = build(document())
    driver = await drive(gateway, path="/v1/messages", body=b"{not json", headers=[("x-api-key", "sk-wrong-0000")])
    assert driver.status == 401  # not 400: the body was never judged
    assert anthropic_error(driver)["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"model":"m","max_tokens":9,"model":"other","messages":[{"role":"user","content":"x"}]}', "model"),
        (b'{"model":"m","max_tokens":9,"messages":[{"role":"user","role":"x","content":"x"}]}', "messages.0.role"),
    ],
    ids=["top-level", "nested"],
)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_a_body_that_repeats_a_key_is_refused_naming_it(raw: bytes, param: str, path: str) -> None:
    claude = Anthropic()
    driver = await drive(build(document(), claude), path=path, body=raw, headers=AUTH)
    assert driver.status == 400
    error = anthropic_error(driver)
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(f"{param}: Duplicate key")
    assert claude.requests == []  # the client's bytes, with both values, went nowhere


# -- response_model --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["message-parallel-tool-use.json", "stream-text.sse"])
async def test_with_response_model_upstream_a_passthrough_answer_is_the_upstreams_bytes(name: str) -> None:
    raw = recording(f"anthropic/{name}")
    stream = name.endswith(".sse")
    claude = Anthropic(answer_sse(raw) if stream else answer_json(raw))
    gateway = build(document(model={"response_model": "upstream"}), claude)
    driver = await post(gateway, {**HELLO, "stream": stream})
    assert driver.status == 200
    assert driver.body == raw


async def test_with_response_model_upstream_a_translated_answer_names_the_upstreams_model() -> None:
    completion = orjson.loads(recording("openai/completion-text.json"))
    openai = FakeOpenAI(api_key=API_KEY).queue(answer_json(completion))
    gateway = build(document("openai", model={"response_model": "upstream"}), openai=openai)
    message = (await post(gateway, HELLO)).json()
    assert message["model"] == completion["model"] != "m"


# -- the drain ------------------------------------------------------------------------------------


async def test_while_draining_a_new_messages_request_is_refused_in_anthropics_envelope() -> None:
    gateway = build(document())
    await gateway.drain(0)
    driver = await post(gateway, HELLO)
    assert driver.status == 529  # Anthropic's status for "overloaded, try again"
    assert anthropic_error(driver)["type"] == "overloaded_error"


async def test_a_messages_stream_open_at_the_drain_deadline_ends_with_an_error_event() -> None:
    claude = Anthropic(answer_sse(recording("anthropic/stream-text.sse"), stall_after=4))
    gateway = build(document(), claude)
    driver = AsgiDriver(gateway, path="/v1/messages", body=orjson.dumps(STREAM), headers=AUTH)
    async with anyio.create_task_group() as tg:
        tg.start_soon(driver.run)
        await anyio.lowlevel.checkpoint()
        await wait_for(lambda: bool(claude.streams) and claude.streams[0].stalled)
        with anyio.fail_after(5):
            await gateway.drain(0.05)
    assert driver.status == 200 and driver.complete
    last = [event for event in driver.body.split(b"\n\n") if event][-1]
    assert last.startswith(b"event: error\ndata: ")
    assert orjson.loads(last.split(b"data: ", 1)[1])["error"]["type"] == "overloaded_error"
    assert claude.streams[0].closed


# -- header safety and upstream bounds --------------------------------------------------------------


async def test_fields_left_out_by_the_translation_are_disclosed_header_safe() -> None:
    openai = FakeOpenAI(api_key=API_KEY)
    gateway = build(document("openai"), openai=openai)
    body = {**HELLO, "caf\u00e9,\r\nx": 1, "service_tier": "auto"}
    driver = await post(gateway, body)
    assert driver.status == 200
    assert driver.header("x-routemw-dropped-params") == "caf%C3%A9%2C%0D%0Ax, service_tier"


async def test_count_tokens_past_the_upstream_bound_falls_back_to_the_estimate() -> None:
    claude = Anthropic(answer_json({"input_tokens": 7, "padding": "x" * 4096}))
    gateway = build(document(extra={"upstream": {"max_body_bytes": 1024}}), claude)
    body = {"model": "m", "messages": [{"role": "user", "content": "abcd"}]}
    driver = await post(gateway, body, path="/v1/messages/count_tokens")
    assert driver.status == 200 and driver.header("x-routemw-token-count") == "estimate"
    assert driver.json() == {"input_tokens": 1 + 4}
    assert len(claude.requests) == 1
