"""`/v1/responses` through the gateway, at the ASGI message level, against strict fakes.

OpenAI-type routes get the client's bytes and the client gets the upstream's (JSON, or the
event stream event by event); failures before the first event fall back, failure events after
it pass through as sent; continuations are pinned to the provider that made the response they
continue (in memory and in Redis); routes without a Responses API are refused by `model`.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from fake_doors import FakeOpenAIDoors, response_events
from fakes import API_KEY, answer_error, answer_sse, data_payloads, drive, route_hosts, split_events

from routemw import Gateway
from routemw.affinity import MemoryAffinity
from routemw.state import RedisAffinity
from routemw.usage import UsageRecord

KEY = "sk-team-a-0123456789abcdef"
AUTH = [("authorization", f"Bearer {KEY}")]
HELLO: dict[str, Any] = {"model": "gpt-4o", "input": "Say hello."}


def document(**extra: Any) -> dict[str, Any]:
    return {
        "providers": {
            "oai": {"type": "openai", "base_url": "https://openai.test/v1", "api_key": API_KEY},
            "backup": {"type": "openai", "base_url": "https://backup.test/v1", "api_key": API_KEY},
            "az": {
                "type": "azure",
                "base_url": "https://res.openai.azure.test",
                "api_key": "az-key-1234567890",
                "api_version": "v1",
            },
            "claude": {"type": "anthropic", "base_url": "https://anthropic.test", "api_key": "sk-ant-123456789"},
        },
        "models": {
            "gpt-4o": {"routes": [{"provider": "oai", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o"}]},
            "azure-4o": {"routes": [{"provider": "az", "model": "gpt-4o"}]},
            "claude": {"routes": [{"provider": "claude", "model": "claude-sonnet-4-5"}]},
            "mixed": {
                "routes": [{"provider": "claude", "model": "claude-sonnet-4-5"}, {"provider": "oai", "model": "gpt-4o"}]
            },
        },
        "keys": [{"name": "team-a", "key": KEY, "models": ["*"]}],
        "auth": {"mode": "keys"},
        "retry": {"attempts": 1},
        **extra,
    }


class Upstreams:
    def __init__(self) -> None:
        self.oai = FakeOpenAIDoors(name="oai")
        self.backup = FakeOpenAIDoors(name="backup")
        self.azure = FakeOpenAIDoors(name="az")

    def gateway(self, **kw: Any) -> Gateway:
        hosts = {"openai.test": self.oai, "backup.test": self.backup, "res.openai.azure.test": self.azure}
        return Gateway.from_config(document(), environ={}, transport=httpx.MockTransport(route_hosts(hosts)), **kw)


async def respond(app: Gateway, body: Any) -> Any:
    return await drive(app, path="/v1/responses", json=body, headers=AUTH)


def events(body: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(payload) for payload in data_payloads(body)]


async def test_a_json_answer_is_the_upstreams_bytes_and_the_request_the_clients() -> None:
    up = Upstreams()
    raw = b'{"model": "gpt-4o",  "input": [{"role": "user", "content": "hi"}], "store": true}'
    driver = await drive(
        up.gateway(), path="/v1/responses", body=raw, headers=[*AUTH, ("content-type", "application/json")]
    )

    assert driver.status == 200, driver.body
    assert up.oai.requests[0].url == "https://openai.test/v1/responses"
    assert up.oai.requests[0].raw == raw
    answer = driver.json()
    assert answer["object"] == "response" and answer["id"] == "resp_oai_1"
    assert driver.header("x-routemw-provider") == "oai"


async def test_a_stream_is_passed_on_event_by_event_as_the_upstream_framed_it() -> None:
    up = Upstreams()
    driver = await respond(up.gateway(), {**HELLO, "stream": True})

    assert driver.status == 200
    assert driver.header("content-type").startswith("text/event-stream")
    assert split_events(driver.body) == split_events(response_events("resp_oai_1", "gpt-4o"))


async def test_the_usage_record_reads_the_responses_usage_shape() -> None:
    records: list[UsageRecord] = []
    up = Upstreams()
    app = up.gateway(on_usage=records.append)
    await respond(app, HELLO)
    await respond(app, {**HELLO, "stream": True})

    for record in records:
        assert (record.prompt_tokens, record.cached_tokens, record.completion_tokens, record.reasoning_tokens) == (
            12,
            4,
            7,
            2,
        )
        assert record.cost_usd is not None and record.status == 200
    assert [r.stream for r in records] == [False, True]


async def test_a_failure_before_the_first_event_falls_back() -> None:
    up = Upstreams()
    failed = (
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":'
        b'{"id":"resp_x","object":"response","model":"gpt-4o","status":"in_progress"}}\n\n'
        b'event: response.failed\ndata: {"type":"response.failed","sequence_number":1,"response":'
        b'{"id":"resp_x","object":"response","model":"gpt-4o","status":"failed",'
        b'"error":{"code":"server_error","message":"The server had an error."}}}\n\n'
    )
    up.oai.queue(answer_sse(failed))
    driver = await respond(up.gateway(), {**HELLO, "stream": True})

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-fallbacks") == "1"
    assert b"resp_x" not in driver.body
    assert events(driver.body)[-1]["type"] == "response.completed"


async def test_a_failure_event_after_the_first_event_passes_through_as_sent() -> None:
    up = Upstreams()
    sent = response_events("resp_oai_9", "gpt-4o").split(b"event: response.output_text.done")[0]
    failed = (
        b'event: response.failed\ndata: {"type":"response.failed","sequence_number":6,"response":'
        b'{"id":"resp_oai_9","object":"response","model":"gpt-4o","status":"failed",'
        b'"error":{"code":"server_error","message":"boom"}}}\n\n'
    )
    up.oai.queue(answer_sse(sent + failed))
    driver = await respond(up.gateway(), {**HELLO, "stream": True})

    assert driver.status == 200
    assert driver.body == sent + failed
    assert up.backup.requests == []


async def test_a_stream_cut_after_the_first_event_ends_with_an_error_event() -> None:
    up = Upstreams()
    sent = response_events("resp_oai_9", "gpt-4o").split(b"event: response.output_text.done")[0]
    up.oai.queue(answer_sse(sent))
    driver = await respond(up.gateway(), {**HELLO, "stream": True})

    last = split_events(driver.body)[-1]
    assert last.startswith(b"event: error\n")
    error = orjson.loads(data_payloads(last)[0])
    assert error["type"] == "error" and error["code"] == "upstream_stream_truncated"
    assert error["sequence_number"] == len(split_events(sent))


async def test_an_azure_route_uses_its_resources_responses_endpoint() -> None:
    up = Upstreams()
    driver = await respond(up.gateway(), {**HELLO, "model": "azure-4o"})

    assert driver.status == 200, driver.body
    assert up.azure.requests[0].url == "https://res.openai.azure.test/openai/v1/responses"
    assert up.azure.requests[0].headers["api-key"] == "az-key-1234567890"


async def test_a_model_with_no_responses_route_is_a_400_naming_model() -> None:
    driver = await respond(Upstreams().gateway(), {**HELLO, "model": "claude"})

    assert driver.status == 400
    error = driver.json()["error"]
    assert error["param"] == "model" and "has no Responses API" in error["message"]


async def test_routes_without_a_responses_api_are_passed_over() -> None:
    up = Upstreams()
    driver = await respond(up.gateway(), {**HELLO, "model": "mixed"})

    assert driver.status == 200, driver.body
    assert driver.header("x-routemw-provider") == "oai"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "", "input": "x"}, "model"),
        ({"model": "gpt-4o", "input": 3}, "input"),
        ({"model": "gpt-4o", "stream": "yes"}, "stream"),
        ({"model": "gpt-4o", "store": 1}, "store"),
        ({"model": "gpt-4o", "previous_response_id": 5}, "previous_response_id"),
        ({"model": "gpt-4o", "conversation": {"id": 5}}, "conversation.id"),
        ({"model": "gpt-4o", "conversation": "conv_1", "previous_response_id": "resp_1"}, "conversation"),
        ({"model": "gpt-4o", "max_output_tokens": "10"}, "max_output_tokens"),
    ],
)
async def test_a_bad_field_is_a_400_naming_it(body: dict[str, Any], param: str) -> None:
    up = Upstreams()
    driver = await respond(up.gateway(), body)

    assert driver.status == 400
    assert driver.json()["error"]["param"] == param
    assert up.oai.requests == []


# -- continuations -------------------------------------------------------------------------


async def created_by_backup(up: Upstreams, app: Gateway, *, stream: bool = False) -> str:
    """A response made by `backup` (the first route failed), its id."""
    up.oai.queue(answer_error(500))
    driver = await respond(app, {**HELLO, "stream": stream})
    assert driver.header("x-routemw-provider") == "backup"
    if stream:
        return str(events(driver.body)[0]["response"]["id"])
    return str(driver.json()["id"])


@pytest.mark.parametrize("stream", [False, True])
async def test_a_continuation_goes_to_the_provider_that_made_the_response(stream: bool) -> None:
    up = Upstreams()
    app = up.gateway()
    previous = await created_by_backup(up, app, stream=stream)
    calls = len(up.oai.requests)

    driver = await respond(app, {**HELLO, "previous_response_id": previous})

    assert driver.status == 200, driver.body
    assert driver.header("x-routemw-provider") == "backup"
    assert len(up.oai.requests) == calls  # first in order and healthy, but not asked
    assert up.backup.requests[-1].body["previous_response_id"] == previous


async def test_a_continuations_provider_failing_is_the_clients_failure_never_another_providers_answer() -> None:
    up = Upstreams()
    app = up.gateway()
    previous = await created_by_backup(up, app)
    calls = len(up.oai.requests)
    up.backup.queue(answer_error(503))

    driver = await respond(app, {**HELLO, "previous_response_id": previous})

    assert driver.status == 502
    assert len(up.oai.requests) == calls


async def test_a_continuations_provider_at_its_rate_limit_is_a_429() -> None:
    up = Upstreams()
    app = up.gateway()
    previous = await created_by_backup(up, app)
    up.backup.queue(answer_error(429, headers={"retry-after": "7"}, code="rate_limit_exceeded"))

    driver = await respond(app, {**HELLO, "previous_response_id": previous})

    assert driver.status == 429
    assert driver.header("retry-after") == "7"


async def test_store_false_is_not_remembered_and_falls_back_freely() -> None:
    up = Upstreams()
    store = MemoryAffinity()
    app = up.gateway(affinity=store)
    up.oai.queue(answer_error(500))
    driver = await respond(app, {**HELLO, "store": False})

    assert driver.header("x-routemw-provider") == "backup"
    assert await store.get(f"response:{driver.json()['id']}") is None


async def test_an_id_the_gateway_never_relayed_goes_to_the_first_routes_provider_only() -> None:
    up = Upstreams()
    up.oai.queue(answer_error(503))
    driver = await respond(up.gateway(), {**HELLO, "previous_response_id": "resp_elsewhere"})

    assert driver.status == 502
    assert up.backup.requests == []


async def test_a_conversation_is_pinned_once_used() -> None:
    up = Upstreams()
    app = up.gateway()
    up.oai.queue(answer_error(500))  # the conversation's first use goes to the first route's provider: oai
    first = await respond(app, {**HELLO, "conversation": "conv_1"})
    second = await respond(app, {**HELLO, "conversation": {"id": "conv_1"}})

    assert first.status == 502  # pinned, so no fallback even for the first use
    assert second.status == 200 and second.header("x-routemw-provider") == "oai"
    assert up.backup.requests == []


async def test_pins_are_shared_through_redis(redis_client: Any, redis_prefix: str) -> None:
    up = Upstreams()
    first = up.gateway(affinity=RedisAffinity(client=redis_client, prefix=redis_prefix))
    other = up.gateway(affinity=RedisAffinity(client=redis_client, prefix=redis_prefix))
    previous = await created_by_backup(up, first)

    driver = await respond(other, {**HELLO, "previous_response_id": previous})

    assert driver.header("x-routemw-provider") == "backup"
    assert await redis_client.ttl(f"{redis_prefix}pin:response:{previous}") > 29 * 24 * 3600


async def test_memory_pins_expire() -> None:
    now = [0.0]
    store = MemoryAffinity(ttl=10, max_entries=2, clock=lambda: now[0])
    await store.set("response:a", "oai")
    await store.set("response:b", "oai")
    await store.set("response:c", "backup")

    assert await store.get("response:a") is None  # the oldest went when a third came
    assert await store.get("response:c") == "backup"
    now[0] = 10.0
    assert await store.get("response:c") is None
