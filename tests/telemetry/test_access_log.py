"""The access log at the ASGI level: one JSON line per finished request, field by field."""

from __future__ import annotations

import logging
import re
from typing import Any

import anyio
import orjson
import pytest
from fakes import API_KEY, AsgiDriver, FakeOpenAI, answer_error, answer_sse, drive, recording, wait_for
from telemetry_fixtures import (
    AUTH,
    CHAT,
    KEY,
    MESSAGES,
    MESSAGES_AUTH,
    QUESTION,
    STREAM_CHAT,
    AccessCatcher,
    build,
    document,
)

from routemw.telemetry import ACCESS_FIELDS
from routemw.telemetry.access_log import AccessLine
from routemw.usage import UsageRecord

ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
GPT_4O_COST = (14 * 2.5 + 37 * 10) / 1e6  # completion-text.json's usage at the table's gpt-4o price


def no_secrets_or_content(catcher: AccessCatcher) -> None:
    text = "\n".join(catcher.lines)
    for forbidden in (KEY, API_KEY, QUESTION, "San Francisco"):
        assert forbidden not in text


def timing(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with its clock readings checked for shape and then blanked."""
    assert ISO_TIME.fullmatch(entry["time"])
    assert isinstance(entry["latency_ms"], float) and entry["latency_ms"] >= 0
    return entry | {"time": None, "latency_ms": None}


async def test_a_success_is_one_line_with_exactly_the_documented_fields(access: AccessCatcher) -> None:
    gateway = build(FakeOpenAI(), access_log=True)
    answer = await drive(gateway, json=CHAT, headers=AUTH)

    (entry,) = access.entries()
    assert list(entry) == list(ACCESS_FIELDS)
    assert timing(entry) == {
        "time": None,
        "request_id": answer.header("x-request-id"),
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "error_code": None,
        "account": "team-a",
        "model": "gpt-4o",
        "provider": "up",
        "upstream_model": "gpt-4o",
        "attempts": 1,
        "fallbacks": 0,
        "stream": False,
        "prompt_tokens": 14,
        "cached_tokens": 0,
        "completion_tokens": 37,
        "cost_usd": pytest.approx(GPT_4O_COST),
        "ttft_ms": None,
        "latency_ms": None,
    }
    no_secrets_or_content(access)


async def test_a_request_through_the_messages_door_is_one_line_with_its_path(access: AccessCatcher) -> None:
    up = FakeOpenAI()
    gateway = build(up, access_log=True)
    answer = await drive(gateway, path="/v1/messages", json=MESSAGES, headers=MESSAGES_AUTH)

    assert answer.status == 200 and orjson.loads(answer.body)["type"] == "message"
    (entry,) = access.entries()
    assert list(entry) == list(ACCESS_FIELDS)
    assert timing(entry) == {
        "time": None,
        "request_id": answer.header("x-request-id"),
        "method": "POST",
        "path": "/v1/messages",
        "status": 200,
        "error_code": None,
        "account": "team-a",
        "model": "gpt-4o",
        "provider": "up",
        "upstream_model": "gpt-4o",
        "attempts": 1,
        "fallbacks": 0,
        "stream": False,
        "prompt_tokens": 14,
        "cached_tokens": 0,
        "completion_tokens": 37,
        "cost_usd": pytest.approx(GPT_4O_COST),
        "ttft_ms": None,
        "latency_ms": None,
    }
    no_secrets_or_content(access)


async def test_a_fallback_names_the_route_that_answered_and_counts_what_it_passed(access: AccessCatcher) -> None:
    up = FakeOpenAI().queue(answer_error(401, code="invalid_api_key"))  # classified FALLBACK
    backup = FakeOpenAI()
    gateway = build(up, backup, access_log=True)
    answer = await drive(gateway, json=CHAT, headers=AUTH)

    assert answer.status == 200
    (entry,) = access.entries()
    assert timing(entry) | {"cost_usd": None} == {
        "time": None,
        "request_id": answer.header("x-request-id"),
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "error_code": None,
        "account": "team-a",
        "model": "gpt-4o",
        "provider": "backup",
        "upstream_model": "gpt-4o-mini",
        "attempts": 2,
        "fallbacks": 1,
        "stream": False,
        "prompt_tokens": 14,
        "cached_tokens": 0,
        "completion_tokens": 37,
        "cost_usd": None,
        "ttft_ms": None,
        "latency_ms": None,
    }
    assert 0 < entry["cost_usd"] < GPT_4O_COST / 10  # gpt-4o-mini's price, not gpt-4o's
    no_secrets_or_content(access)


async def test_refusals_are_logged_with_their_status_and_code(access: AccessCatcher) -> None:
    gateway = build(FakeOpenAI(), doc=document(limits={"rpm": 1}), access_log=True)
    await drive(gateway, json=CHAT, headers=[("authorization", "Bearer sk-wrong-key-0000000000")])
    await drive(gateway, json=CHAT, headers=AUTH)
    limited = await drive(gateway, json=CHAT, headers=AUTH)

    assert limited.status == 429
    unauthenticated, _, refused = (timing(e) for e in access.entries())
    assert unauthenticated == {
        "time": None,
        "request_id": unauthenticated["request_id"],
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 401,
        "error_code": "invalid_api_key",
        "account": None,
        "model": None,
        "provider": None,
        "upstream_model": None,
        "attempts": 0,
        "fallbacks": 0,
        "stream": None,
        "prompt_tokens": None,
        "cached_tokens": None,
        "completion_tokens": None,
        "cost_usd": None,
        "ttft_ms": None,
        "latency_ms": None,
    }
    assert refused == unauthenticated | {
        "request_id": limited.header("x-request-id"),
        "status": 429,
        "error_code": "rate_limit_exceeded",
        "account": "team-a",
        "model": "gpt-4o",
        "stream": False,
    }
    no_secrets_or_content(access)


async def test_a_stream_is_logged_when_it_ends_with_its_time_to_first_token(access: AccessCatcher) -> None:
    gateway = build(FakeOpenAI(), access_log=True)
    answer = await drive(gateway, json=STREAM_CHAT, headers=AUTH)

    assert answer.payloads()[-1] == b"[DONE]"
    (entry,) = access.entries()
    assert (entry["status"], entry["stream"], entry["prompt_tokens"], entry["completion_tokens"]) == (200, True, 14, 30)
    assert 0 <= entry["ttft_ms"] <= entry["latency_ms"]


async def test_a_stream_the_client_left_is_logged_once_it_is_over(access: AccessCatcher) -> None:
    up = FakeOpenAI().queue(answer_sse(recording("openai/stream-text.sse"), pause_after={4: 30.0}))
    gateway = build(up, access_log=True)
    driver = AsgiDriver(gateway, body=orjson.dumps(STREAM_CHAT), headers=[("content-type", "application/json"), *AUTH])
    async with anyio.create_task_group() as tg:
        tg.start_soon(driver.run)
        await wait_for(lambda: len(driver.payloads()) >= 4)
        assert access.lines == []  # nothing is logged while the stream is open
        driver.disconnect()

    (entry,) = access.entries()
    assert timing(entry) | {"ttft_ms": None} == {
        "time": None,
        "request_id": driver.header("x-request-id"),
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 499,
        "error_code": "client_disconnected",
        "account": "team-a",
        "model": "gpt-4o",
        "provider": "up",
        "upstream_model": "gpt-4o",
        "attempts": 1,
        "fallbacks": 0,
        "stream": True,
        "prompt_tokens": None,  # the usage chunk never came
        "cached_tokens": None,
        "completion_tokens": None,
        "cost_usd": None,
        "ttft_ms": None,
        "latency_ms": None,
    }
    assert entry["ttft_ms"] is not None


async def test_other_endpoints_are_logged_and_health_checks_are_not(access: AccessCatcher) -> None:
    gateway = build(FakeOpenAI(), access_log=True)
    models = await drive(gateway, method="GET", path="/v1/models", headers=AUTH)
    await drive(gateway, method="GET", path="/no/such/thing")
    assert (await drive(gateway, method="GET", path="/healthz")).status == 200
    assert (await drive(gateway, method="GET", path="/readyz")).status == 200

    listed, missing = (timing(e) for e in access.entries())
    assert (listed["method"], listed["path"], listed["status"]) == ("GET", "/v1/models", 200)
    assert listed["request_id"] == models.header("x-request-id")
    assert (missing["path"], missing["status"], missing["model"]) == ("/no/such/thing", 404, None)


async def test_health_checks_are_logged_when_the_config_asks(access: AccessCatcher) -> None:
    gateway = build(FakeOpenAI(), doc=document(extra={"health": {"observe": True}}), access_log=True)
    await drive(gateway, method="GET", path="/healthz")

    (entry,) = access.entries()
    assert (entry["path"], entry["status"]) == ("/healthz", 200)


async def test_nothing_is_logged_unless_the_gateway_was_asked(access: AccessCatcher) -> None:
    gateway = build(FakeOpenAI())
    await drive(gateway, json=CHAT, headers=AUTH)
    assert access.lines == []
    assert gateway.telemetry.records is False


async def test_a_logger_turned_down_gets_no_lines(access: AccessCatcher) -> None:
    gateway = build(FakeOpenAI(), access_log=True)
    logging.getLogger("routemw.access").setLevel(logging.WARNING)
    await drive(gateway, json=CHAT, headers=AUTH)
    assert access.lines == []


def test_the_text_form_is_key_value_pairs_quoted_where_needed() -> None:
    fields = {"request_id": "req_1", "model": "my model", "status": 200, "stream": True, "cost_usd": None}
    assert str(AccessLine(fields)) == 'request_id=req_1 model="my model" status=200 stream=true cost_usd=-'


def test_a_record_for_user_sinks_carries_the_same_fields() -> None:
    record_fields = set(UsageRecord.__dataclass_fields__)
    assert set(ACCESS_FIELDS) <= record_fields
