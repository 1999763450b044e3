"""`models.ID.response_model`: answers report the public id asked for (default) or the upstream's name.

Streams are checked chunk by chunk at the ASGI message level: every chunk carries the name, and
nothing else in a chunk changes.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from conformance.fake_anthropic import FakeAnthropic
from fakes import (
    API_KEY,
    BACKUP_KEY,
    FakeOpenAI,
    answer_error,
    answer_json,
    answer_sse,
    data_payloads,
    drive,
    recording,
    route_hosts,
)

from routemw import ConfigError, Gateway, OpenAIProvider, ProviderConfig, Target, load_config
from routemw.chat import parse_chat_request

USER = {"role": "user", "content": "hi"}
COMPLETION = recording("openai/completion-text.json")
STREAM = recording("openai/stream-text.sse")
UPSTREAM_NAME = orjson.loads(COMPLETION)["model"]  # gpt-4o-2024-08-06: OpenAI names the snapshot


def gateway(upstream: FakeOpenAI, backup: FakeOpenAI | None = None, **models: dict[str, Any]) -> Gateway:
    config = {
        "providers": {
            "up": {"type": "openai", "base_url": "https://upstream.test/v1", "api_key": API_KEY},
            "backup": {"type": "openai", "base_url": "https://backup.test/v1", "api_key": BACKUP_KEY},
        },
        "models": models or {"smart": {"routes": [{"provider": "up", "model": "gpt-4o"}]}},
        "retry": {"attempts": 1},
    }
    hosts = {"upstream.test": upstream, **({"backup.test": backup} if backup else {})}
    return Gateway.from_config(config, environ={}, transport=httpx.MockTransport(route_hosts(hosts)))


def without_model(payload: bytes) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(payload)
    data.pop("model", None)
    return data


async def test_a_completion_reports_the_public_model_by_default(upstream: FakeOpenAI) -> None:
    upstream.queue(answer_json(COMPLETION))
    driver = await drive(gateway(upstream), json={"model": "smart", "messages": [USER]})

    assert driver.status == 200
    assert driver.json()["model"] == "smart"
    assert without_model(driver.body) == without_model(COMPLETION)
    assert driver.header("x-routemw-route-model") == "gpt-4o"
    assert upstream.requests[0].body["model"] == "gpt-4o"


async def test_every_stream_chunk_reports_the_public_model_by_default(upstream: FakeOpenAI) -> None:
    upstream.queue(answer_sse(STREAM))
    driver = await drive(gateway(upstream), json={"model": "smart", "messages": [USER], "stream": True})

    assert driver.status == 200
    *chunks, done = driver.payloads()
    sent = data_payloads(STREAM)[:-1]
    assert done == b"[DONE]" and len(chunks) == len(sent)
    assert all(orjson.loads(chunk)["model"] == "smart" for chunk in chunks)
    assert [without_model(c) for c in chunks] == [without_model(c) for c in sent]
    # Only the name changed: the rest of each chunk keeps its keys in the upstream's order.
    assert [list(orjson.loads(c)) for c in chunks] == [list(orjson.loads(c)) for c in sent]


@pytest.mark.parametrize("stream", [False, True])
async def test_response_model_upstream_keeps_the_upstreams_bytes(upstream: FakeOpenAI, stream: bool) -> None:
    upstream.queue(answer_sse(STREAM) if stream else answer_json(COMPLETION))
    models = {"smart": {"routes": [{"provider": "up", "model": "gpt-4o"}], "response_model": "upstream"}}
    driver = await drive(gateway(upstream, **models), json={"model": "smart", "messages": [USER], "stream": stream})

    assert driver.status == 200
    if stream:
        assert driver.payloads() == data_payloads(STREAM)
    else:
        assert driver.body == COMPLETION


@pytest.mark.parametrize(("option", "reported"), [("public", "smart"), ("upstream", "gpt-4o-mini")])
async def test_the_model_asked_for_decides_even_when_a_fallback_model_answers(
    upstream: FakeOpenAI, backup: FakeOpenAI, option: str, reported: str
) -> None:
    upstream.queue(answer_error(500))
    backup.queue(answer_json({**orjson.loads(COMPLETION), "model": "gpt-4o-mini"}))
    models = {
        "smart": {"routes": [{"provider": "up", "model": "gpt-4o"}], "fallbacks": ["cheap"], "response_model": option},
        "cheap": {"routes": [{"provider": "backup", "model": "gpt-4o-mini"}], "response_model": "public"},
    }
    driver = await drive(gateway(upstream, backup, **models), json={"model": "smart", "messages": [USER]})

    assert driver.status == 200
    assert driver.json()["model"] == reported
    assert driver.header("x-routemw-route-model") == "gpt-4o-mini"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_translated_answer_reports_the_public_model_too(stream: bool) -> None:
    fake = FakeAnthropic("sk-ant-test-key-0000000")
    config = {
        "providers": {"claude": fake.provider_config},
        "models": {"writer": {"routes": [{"provider": "claude", "model": "claude-sonnet-4-5"}]}},
    }
    app = Gateway.from_config(config, environ={}, transport=fake.transport())
    driver = await drive(app, json={"model": "writer", "messages": [USER], "stream": stream})

    assert driver.status == 200
    if stream:
        *chunks, done = driver.payloads()
        assert done == b"[DONE]" and chunks
        assert {orjson.loads(chunk)["model"] for chunk in chunks} == {"writer"}
    else:
        assert driver.json()["model"] == "writer"
    assert driver.header("x-routemw-route-model") == "claude-sonnet-4-5"


def test_an_unknown_response_model_is_a_config_error() -> None:
    document = {"models": {"m": {"routes": [{"provider": "echo", "model": "e"}], "response_model": "mine"}}}
    with pytest.raises(ConfigError) as caught:
        load_config(document, environ={})
    assert any(p.startswith("models.m.response_model") and "public, upstream" in p for p in caught.value.problems)
    assert (
        load_config({"models": {"m": {"routes": [{"provider": "echo", "model": "e"}]}}}).models["m"].response_model
        == "public"
    )


def test_the_passthrough_translator_renames_as_it_parses_and_keeps_bytes_when_names_agree() -> None:
    provider = OpenAIProvider(ProviderConfig(name="up", type="openai"))
    request = parse_chat_request(orjson.dumps({"model": "smart", "messages": [USER], "stream": True}))
    target = Target(provider=provider, model="gpt-4o", public_model="smart")
    renamed = provider.stream_translator(request, target)
    renamed.report_model("smart")
    chunks = renamed.feed(STREAM)
    assert chunks and all(c.data["model"] == "smart" and c.raw is None for c in chunks)

    agreeing = provider.stream_translator(request, target)
    agreeing.report_model(UPSTREAM_NAME)
    assert [c.raw for c in agreeing.feed(STREAM)] == data_payloads(STREAM)[:-1]  # forwarded as they came
