"""Limits through the Gateway at the ASGI message level, against a fake OpenAI upstream.

Every test that counts runs on both stores, memory and Redis (`make_store`, tests/limits/conftest.py).

Each exit path of a request (success, upstream failure, fallback exhausted, client disconnect
mid-stream, cancellation while waiting, a middleware raising) is checked against the store:
the concurrency slot is free again and the token reservation is replaced or refunded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from fakes import (
    API_KEY,
    AsgiDriver,
    FakeOpenAI,
    answer_error,
    answer_json,
    answer_sse,
    drive,
    recording,
    route_hosts,
    stall,
    wait_for,
)
from limit_stores import MakeStore

from routemw import Gateway
from routemw.errors import ConfigError
from routemw.limits import LimitMiddleware, LimitStore, Rate, Slots
from routemw.middleware.stream_usage import StreamUsageMiddleware
from routemw.pipeline import Call, Handler, Middleware
from routemw.reply import Reply
from routemw.usage import UsageRecord

UP_URL = "https://upstream.test/v1"
BACKUP_URL = "https://backup.test/v1"
KEY = "sk-team-a-0123456789abcdef"
AUTH = [("authorization", f"Bearer {KEY}")]
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "What's the weather like in SF?"}]}
STREAM_CHAT: dict[str, Any] = {**CHAT, "stream": True}
RECORDED_USAGE = 51  # completion-text.json: 14 prompt + 37 completion tokens
TPM = 100_000


def document(
    limits: dict[str, Any] | None = None,
    *,
    routes: list[dict[str, Any]] | None = None,
    model_limits: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    key: dict[str, Any] | None = None,
) -> dict[str, Any]:
    model: dict[str, Any] = {
        "routes": routes or [{"provider": "up", "model": "gpt-4o", "capabilities": {"stream_usage": True}}]
    }
    if model_limits is not None:
        model["limits"] = model_limits
    account: dict[str, Any] = {"name": "team-a", "key": KEY, "models": ["*"], **(key or {})}
    if limits is not None:
        account["limits"] = limits
    return {
        "providers": {
            "up": {"type": "openai", "base_url": UP_URL, "api_key": API_KEY},
            "backup": {"type": "openai", "base_url": BACKUP_URL, "api_key": API_KEY},
        },
        "models": {"gpt-4o": model},
        "keys": [account],
        "auth": {"mode": "keys"},
        "retry": {"attempts": 1},
        **(extra or {}),
    }


def build(upstream: FakeOpenAI, doc: dict[str, Any], backup: FakeOpenAI | None = None, **kwargs: Any) -> Gateway:
    hosts = {"upstream.test": upstream, "backup.test": backup or FakeOpenAI()}
    return Gateway.from_config(doc, environ={}, transport=httpx.MockTransport(route_hosts(hosts)), **kwargs)


async def standing(gateway: Gateway, claim: Rate | Slots) -> Any:
    (result,) = await gateway.limits.store.inspect([claim])
    return result


async def assert_settled(gateway: Gateway, *, tokens_used: int, requests: int = 1) -> None:
    """No slot held, and the tpm bucket charged exactly `tokens_used`."""
    slots = await standing(gateway, Slots("acct:team-a", 4))
    assert slots.remaining == 4, "the concurrency slot was not released"
    tpm = await standing(gateway, Rate("acct:team-a", "tpm", TPM, 0))
    assert TPM - tpm.remaining == tokens_used
    rpm = await standing(gateway, Rate("acct:team-a", "rpm", 100, 0))
    assert 100 - rpm.remaining == requests


LIMITS: dict[str, Any] = {"rpm": 100, "tpm": TPM, "concurrency": 4}


@pytest.fixture
def clock_store(make_store: MakeStore) -> LimitStore:
    # Frozen time: nothing flows back into a bucket while a test looks at it.
    return make_store(lambda: 1_800_000_000.0)


# -- release on every exit path -----------------------------------------------------------------


async def test_success_reconciles_with_the_reported_usage(clock_store: LimitStore) -> None:
    gateway = build(FakeOpenAI(), document(LIMITS), limits=clock_store)
    driver = await drive(gateway, json=CHAT, headers=AUTH)
    assert driver.status == 200
    await assert_settled(gateway, tokens_used=RECORDED_USAGE)


@pytest.mark.parametrize("routes", [1, 2])
async def test_upstream_failure_and_exhausted_fallback_release_everything(clock_store: LimitStore, routes: int) -> None:
    up = FakeOpenAI(steps=[answer_error(500)])
    backup = FakeOpenAI(steps=[answer_error(503)])
    route_list = [{"provider": "up", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o"}][:routes]
    gateway = build(up, document(LIMITS, routes=route_list), backup, limits=clock_store)
    driver = await drive(gateway, json=CHAT, headers=AUTH)
    assert driver.status == 502
    assert len(up.requests) + len(backup.requests) == routes
    await assert_settled(gateway, tokens_used=0)  # refunded; the request itself still counts


async def test_a_client_leaving_mid_stream_frees_its_slot_and_is_charged_the_reservation(
    clock_store: LimitStore,
) -> None:
    up = FakeOpenAI(steps=[answer_sse(recording("openai/stream-text.sse"), stall_after=4)])
    gateway = build(up, document(LIMITS), limits=clock_store)
    reserved = await _reserved_tokens(gateway, STREAM_CHAT)

    async def leave_after_first_body(driver: AsgiDriver, message: Any) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            driver.disconnect()

    driver = AsgiDriver(gateway, body=orjson.dumps(STREAM_CHAT), headers=AUTH, on_send=leave_after_first_body)
    await driver.run(5)
    assert driver.status == 200
    await wait_for(lambda: up.streams[0].closed)
    await assert_settled(gateway, tokens_used=reserved)  # no usage was reported: the reservation


async def test_cancellation_while_waiting_for_the_upstream_releases_everything(clock_store: LimitStore) -> None:
    up = FakeOpenAI(steps=[stall()])
    gateway = build(up, document(LIMITS), limits=clock_store)
    driver = AsgiDriver(gateway, body=orjson.dumps(STREAM_CHAT), headers=AUTH)
    async with anyio.create_task_group() as tg:
        tg.start_soon(driver.run, 5)
        await wait_for(lambda: bool(up.requests))
        assert (await standing(gateway, Slots("acct:team-a", 4))).remaining == 3  # held while waiting
        driver.disconnect()
    assert not driver.started
    await assert_settled(gateway, tokens_used=0)


class Boom:
    async def __call__(self, call: Call, next: Handler) -> Reply:
        raise RuntimeError("a middleware failed")


def with_boom(defaults: list[Middleware]) -> list[Middleware]:
    index = next(i for i, m in enumerate(defaults) if isinstance(m, LimitMiddleware))
    return [*defaults[: index + 1], Boom(), *defaults[index + 1 :]]


async def test_a_middleware_raising_releases_everything(clock_store: LimitStore) -> None:
    up = FakeOpenAI()
    gateway = build(up, document(LIMITS), limits=clock_store, middleware=with_boom)
    driver = await drive(gateway, json=CHAT, headers=AUTH)
    assert driver.status == 500
    assert not up.requests
    await assert_settled(gateway, tokens_used=0)


async def test_a_completed_stream_is_charged_its_reported_usage(clock_store: LimitStore) -> None:
    up = FakeOpenAI(steps=[answer_sse(recording("openai/stream-text.sse"))])
    gateway = build(up, document(LIMITS), limits=clock_store)
    driver = await drive(gateway, json=STREAM_CHAT, headers=AUTH)
    assert driver.status == 200
    await assert_settled(gateway, tokens_used=44)  # the recording's usage chunk


async def _reserved_tokens(gateway: Gateway, body: dict[str, Any]) -> int:
    from routemw.chat import parse_chat_request
    from routemw.limits import estimate

    entry = gateway.catalog.get("gpt-4o")
    assert entry is not None
    return estimate(parse_chat_request(orjson.dumps(body)), entry.targets, 1024).likely


# -- what the caller sees -----------------------------------------------------------------------


async def test_past_rpm_the_client_gets_429_with_a_usable_retry_after_and_no_upstream_call(
    clock_store: LimitStore,
) -> None:
    up = FakeOpenAI()
    gateway = build(up, document({"rpm": 2}), limits=clock_store)
    first = await drive(gateway, json=CHAT, headers=AUTH)
    assert first.header("x-ratelimit-limit-requests") == "2"
    assert first.header("x-ratelimit-remaining-requests") == "1"
    assert first.header("x-ratelimit-reset-requests") == "30s"
    await drive(gateway, json=CHAT, headers=AUTH)
    refused = await drive(gateway, json=CHAT, headers=AUTH)
    assert refused.status == 429
    assert refused.header("retry-after") == "30"
    assert refused.header("retry-after-ms") == "30000"
    error = refused.json()["error"]
    assert error["type"] == "requests"
    assert error["code"] == "rate_limit_exceeded"
    assert "your API key" in error["message"] and "team-a" not in error["message"]
    assert len(up.requests) == 2


async def test_concurrency_refusal_names_what_ran_out(clock_store: LimitStore) -> None:
    up = FakeOpenAI(steps=[stall()])
    gateway = build(up, document({"concurrency": 1}), limits=clock_store)
    waiting = AsgiDriver(gateway, body=orjson.dumps(CHAT), headers=AUTH)
    async with anyio.create_task_group() as tg:
        tg.start_soon(waiting.run, 5)
        await wait_for(lambda: bool(up.requests))
        refused = await drive(gateway, json=CHAT, headers=AUTH)
        waiting.disconnect()
    assert refused.status == 429
    assert refused.json()["error"]["type"] == "concurrency"
    assert refused.header("retry-after") == "1"


async def test_a_request_larger_than_tpm_is_refused_without_a_retry_after(clock_store: LimitStore) -> None:
    gateway = build(FakeOpenAI(), document({"tpm": 100}), limits=clock_store)
    refused = await drive(gateway, json={**CHAT, "max_tokens": 500}, headers=AUTH)
    assert refused.status == 429
    assert refused.json()["error"]["type"] == "tokens"
    assert refused.header("retry-after") is None
    assert refused.header("x-should-retry") == "false"


async def test_a_used_up_budget_answers_402_naming_the_period_and_its_reset(clock_store: LimitStore) -> None:
    # Input is free and the output cap is the real output, so the reservation is the real cost:
    # two requests of 37 tokens at $1000/1M spend exactly $0.074.
    prices = {"prices": {"gpt-4o": {"input": 0, "output": 1000}}}
    gateway = build(
        FakeOpenAI(), document({"budget": {"usd": 0.074, "period": "month"}}, extra=prices), limits=clock_store
    )
    body = {**CHAT, "max_tokens": 37}
    assert (await drive(gateway, json=body, headers=AUTH)).status == 200
    assert (await drive(gateway, json=body, headers=AUTH)).status == 200
    refused = await drive(gateway, json=body, headers=AUTH)
    assert refused.status == 402
    assert refused.header("x-should-retry") == "false"
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "month 2027-01" in error["message"] and "resets at 2027-02-01T00:00:00Z" in error["message"]
    key = (await drive(gateway, method="GET", path="/v1/key", headers=AUTH)).json()["data"]
    assert (key["usage"], key["limit"], key["limit_remaining"]) == (0.074, 0.074, 0.0)


async def test_an_expired_key_is_refused_saying_so() -> None:
    gateway = build(FakeOpenAI(), document(key={"expires": "2020-01-31T00:00:00Z"}))
    refused = await drive(gateway, json=CHAT, headers=AUTH)
    assert refused.status == 401
    error = refused.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert "expired" in error["message"] and "2020-01-31T00:00:00Z" in error["message"]


async def test_model_limits_are_shared_and_decided_with_the_key_at_once(clock_store: LimitStore) -> None:
    gateway = build(FakeOpenAI(), document({"rpm": 10}, model_limits={"rpm": 1}), limits=clock_store)
    assert (await drive(gateway, json=CHAT, headers=AUTH)).status == 200
    refused = await drive(gateway, json=CHAT, headers=AUTH)
    assert refused.status == 429
    assert "model 'gpt-4o'" in refused.json()["error"]["message"]
    key_rpm = await standing(gateway, Rate("acct:team-a", "rpm", 10, 0))
    assert key_rpm.remaining == 9  # the refusal took nothing from the key


async def test_defaults_apply_to_keys_without_their_own(clock_store: LimitStore) -> None:
    gateway = build(FakeOpenAI(), document(extra={"limits": {"rpm": 1}}), limits=clock_store)
    assert (await drive(gateway, json=CHAT, headers=AUTH)).status == 200
    assert (await drive(gateway, json=CHAT, headers=AUTH)).status == 429


# -- streams: usage asked for, and hidden ---------------------------------------------------------


async def test_a_stream_asks_for_usage_where_supported_and_hides_it_from_the_client(
    clock_store: LimitStore,
) -> None:
    up = FakeOpenAI(steps=[answer_sse(recording("openai/stream-text.sse"))])
    gateway = build(up, document(LIMITS), limits=clock_store)
    driver = await drive(gateway, json=STREAM_CHAT, headers=AUTH)
    assert up.requests[0].body["stream_options"] == {"include_usage": True}
    payloads = [orjson.loads(p) for p in driver.payloads() if p != b"[DONE]"]
    assert payloads and all("usage" not in p and p["choices"] for p in payloads)
    assert driver.header("x-ratelimit-limit-tokens") == str(TPM)  # a stream has the headers too


async def test_a_target_of_unknown_usage_support_gets_nothing_added(clock_store: LimitStore) -> None:
    up = FakeOpenAI(steps=[answer_sse(recording("openai/stream-text.sse"))])
    routes = [{"provider": "up", "model": "gpt-4o"}]
    gateway = build(up, document(LIMITS, routes=routes), limits=clock_store)
    await drive(gateway, json=STREAM_CHAT, headers=AUTH)
    assert "stream_options" not in up.requests[0].body


async def test_a_client_asking_for_usage_gets_it(clock_store: LimitStore) -> None:
    up = FakeOpenAI(steps=[answer_sse(recording("openai/stream-text.sse"))])
    gateway = build(up, document(LIMITS), limits=clock_store)
    body = {**STREAM_CHAT, "stream_options": {"include_usage": True}}
    driver = await drive(gateway, json=body, headers=AUTH)
    assert any(orjson.loads(p).get("usage") for p in driver.payloads() if p != b"[DONE]")


# -- route limits -------------------------------------------------------------------------------


async def test_a_route_at_its_limit_is_skipped_and_all_at_limit_is_429(clock_store: LimitStore) -> None:
    routes = [
        {"provider": "up", "model": "gpt-4o", "limits": {"rpm": 1}},
        {"provider": "backup", "model": "gpt-4o", "limits": {"rpm": 2}},
    ]
    up, backup = FakeOpenAI(), FakeOpenAI()
    gateway = build(up, document(routes=routes), backup, limits=clock_store)
    providers = [(await drive(gateway, json=CHAT, headers=AUTH)).header("x-routemw-provider") for _ in range(3)]
    assert providers == ["up", "backup", "backup"]
    refused = await drive(gateway, json=CHAT, headers=AUTH)
    assert refused.status == 429
    assert refused.header("retry-after") == "30"  # the soonest: backup gets one back after 30 s
    assert (len(up.requests), len(backup.requests)) == (1, 2)


# -- /v1/key, /v1/models, usage records, startup -----------------------------------------------


async def test_key_endpoint_shows_the_callers_own_state(clock_store: LimitStore) -> None:
    limits = {**LIMITS, "budget": {"usd": 10, "period": "day"}, "tokens": {"total": 10_000, "period": "total"}}
    gateway = build(FakeOpenAI(), document(limits, key={"expires": "2099-01-01T00:00:00Z"}), limits=clock_store)
    await drive(gateway, json=CHAT, headers=AUTH)
    data = (await drive(gateway, method="GET", path="/v1/key", headers=AUTH)).json()["data"]
    assert data["label"] == "team-a"
    assert data["limit"] == 10.0 and data["limit_period"] == "day"
    assert data["usage"] == pytest.approx((14 * 2.5 + 37 * 10) / 1e6)
    assert data["expires_at"] == "2099-01-01T00:00:00Z"
    assert data["rate_limit"]["requests"] == 100 and data["rate_limit"]["remaining_requests"] == 99
    assert data["tokens"] == {"limit": 10_000, "usage": RECORDED_USAGE, "remaining": 10_000 - 51, "period": "total"}
    assert data["limit_reset"] == "2027-01-16T00:00:00Z"  # the end of the store's day
    anonymous = await drive(gateway, method="GET", path="/v1/key")
    assert anonymous.status == 401


async def test_model_cards_carry_the_price_of_the_first_route() -> None:
    doc = document()
    doc["models"]["mystery"] = {"routes": [{"provider": "up", "model": "in-house-7b"}]}
    gateway = build(FakeOpenAI(), doc)
    cards = {c["id"]: c for c in (await drive(gateway, method="GET", path="/v1/models", headers=AUTH)).json()["data"]}
    assert cards["gpt-4o"]["pricing"] == {"input": 2.5, "output": 10.0, "cached_input": 1.25}
    assert cards["mystery"]["pricing"] is None


async def test_every_finished_request_produces_one_usage_record(clock_store: LimitStore, tmp_path: Path) -> None:
    records: list[UsageRecord] = []
    path = tmp_path / "usage.jsonl"
    doc = document({"rpm": 1}, extra={"usage": {"jsonl": str(path)}})
    gateway = build(FakeOpenAI(), doc, limits=clock_store, on_usage=records.append)
    await drive(gateway, json=CHAT, headers=AUTH)
    await drive(gateway, json=CHAT, headers=AUTH)
    ok, refused = records
    assert ok.to_dict() | {"time": None, "request_id": None, "latency_ms": None} == {
        "request_id": None,
        "time": None,
        "account": "team-a",
        "model": "gpt-4o",
        "provider": "up",
        "upstream_model": "gpt-4o",
        "prompt_tokens": 14,
        "cached_tokens": 0,
        "completion_tokens": 37,
        "reasoning_tokens": 0,
        "cost_usd": pytest.approx((14 * 2.5 + 37 * 10) / 1e6),
        "status": 200,
        "error_code": None,
        "attempts": 1,
        "latency_ms": None,
        "ttft_ms": None,
        "stream": False,
        "method": "POST",
        "path": "/v1/chat/completions",
        "fallbacks": 0,
        "limit": None,
    }
    assert ok.trace is not None and ok.trace["attempts"][0]["outcome"] == "answered"
    assert (refused.status, refused.error_code, refused.attempts, refused.provider, refused.limit) == (
        429,
        "rate_limit_exceeded",
        0,
        None,
        "requests",
    )
    await wait_for(lambda: path.exists() and len(path.read_bytes().splitlines()) == 2, seconds=3)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["status"] for line in lines] == [200, 429]
    await gateway.aclose()


async def test_a_stream_record_has_its_usage_and_time_to_first_token(clock_store: LimitStore) -> None:
    records: list[UsageRecord] = []
    up = FakeOpenAI(steps=[answer_sse(recording("openai/stream-text.sse"))])
    gateway = build(up, document(), limits=clock_store, on_usage=records.append)
    await drive(gateway, json=STREAM_CHAT, headers=AUTH)
    (record,) = records
    assert (record.stream, record.prompt_tokens, record.completion_tokens) == (True, 14, 30)
    assert record.ttft_ms is not None and 0 <= record.ttft_ms <= record.latency_ms


def test_a_budget_over_a_model_without_a_price_is_a_startup_error() -> None:
    doc = document({"budget": {"usd": 5}})
    doc["models"]["house"] = {"routes": [{"provider": "up", "model": "in-house-7b"}]}
    with pytest.raises(ConfigError) as caught:
        build(FakeOpenAI(), doc)
    message = str(caught.value)
    assert "'house'" in message and "in-house-7b" in message and "team-a" in message
    doc["prices"] = {"up/in-house-7b": {"input": 0.1, "output": 0.2}}
    build(FakeOpenAI(), doc)  # priced: fine


def test_without_limits_the_pipeline_pays_nothing() -> None:
    gateway = build(FakeOpenAI(), document())
    kinds = {type(m) for m in gateway.middleware}
    assert LimitMiddleware not in kinds and StreamUsageMiddleware not in kinds


async def test_upstream_error_json_keeps_no_reservation_for_a_completion_without_usage(
    clock_store: LimitStore,
) -> None:
    # A completion that reports no usage is charged its reservation, never nothing.
    body = orjson.loads(recording("openai/completion-text.json"))
    del body["usage"]
    gateway = build(FakeOpenAI(steps=[answer_json(body)]), document(LIMITS), limits=clock_store)
    await drive(gateway, json=CHAT, headers=AUTH)
    await assert_settled(gateway, tokens_used=await _reserved_tokens(gateway, CHAT))


# -- a single route decided with the key, spend tracked for every key --------------------------


async def test_a_lone_route_at_its_limit_takes_nothing_from_the_key(clock_store: LimitStore) -> None:
    # With one candidate the route is decided in the key's own atomic step: its refusal must not
    # leave the key's request counted, and it still answers like the fallback loop would.
    up = FakeOpenAI()
    routes = [{"provider": "up", "model": "gpt-4o", "limits": {"rpm": 1}}]
    gateway = build(up, document(LIMITS, routes=routes), limits=clock_store)
    assert (await drive(gateway, json=CHAT, headers=AUTH)).status == 200
    refused = await drive(gateway, json=CHAT, headers=AUTH)
    assert refused.status == 429
    assert refused.header("retry-after") == "60"
    assert "Every route of model 'gpt-4o' is at its rate limit" in refused.json()["error"]["message"]
    assert len(up.requests) == 1
    rpm = await standing(gateway, Rate("acct:team-a", "rpm", 100, 0))
    assert rpm.remaining == 99, "the refused request was counted against the key"
    await assert_settled(gateway, tokens_used=RECORDED_USAGE)


async def test_a_key_without_a_budget_still_reports_what_it_spent(clock_store: LimitStore) -> None:
    gateway = build(FakeOpenAI(), document({"rpm": 100}), limits=clock_store)
    for _ in range(2):
        assert (await drive(gateway, json=CHAT, headers=AUTH)).status == 200
    data = (await drive(gateway, method="GET", path="/v1/key", headers=AUTH)).json()["data"]
    assert data["usage"] == pytest.approx(2 * (14 * 2.5 + 37 * 10) / 1e6)
    assert data["usage_period"] == "month"
    assert data["limit"] is None and data["limit_remaining"] is None and data["limit_reset"] is None


async def test_without_any_limits_spend_is_not_tracked(clock_store: LimitStore) -> None:
    gateway = build(FakeOpenAI(), document(), limits=clock_store)
    assert not any(isinstance(m, LimitMiddleware) for m in gateway.middleware)
    assert (await drive(gateway, json=CHAT, headers=AUTH)).status == 200
    data = (await drive(gateway, method="GET", path="/v1/key", headers=AUTH)).json()["data"]
    assert data["usage"] is None and data["usage_period"] is None
