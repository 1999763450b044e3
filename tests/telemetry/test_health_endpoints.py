"""`/healthz` and `/readyz`: no key needed, readiness checks pluggable and bounded."""

from __future__ import annotations

import anyio
import pytest
from fakes import FakeOpenAI, drive
from telemetry_fixtures import build

from routemw.telemetry import Readiness


async def test_liveness_needs_no_key_and_says_ok() -> None:
    gateway = build(FakeOpenAI())  # auth: keys
    answer = await drive(gateway, method="GET", path="/healthz")
    assert (answer.status, answer.json()) == (200, {"status": "ok"})
    assert answer.header("cache-control") == "no-store"


async def test_ready_once_the_config_is_loaded() -> None:
    answer = await drive(build(FakeOpenAI()), method="GET", path="/readyz")
    assert (answer.status, answer.json()) == (200, {"status": "ready", "checks": {"config": "ok", "shutdown": "ok"}})


async def test_a_registered_check_that_fails_makes_it_not_ready_with_the_reason() -> None:
    gateway = build(FakeOpenAI())
    answers: list[str | None] = ["connection refused", None]

    async def redis() -> str | None:
        return answers.pop(0)

    gateway.readiness.add("redis", redis)
    refused = await drive(gateway, method="GET", path="/readyz")
    assert refused.status == 503
    assert refused.json() == {
        "status": "not_ready",
        "reason": "redis: connection refused",
        "checks": {"config": "ok", "shutdown": "ok", "redis": "connection refused"},
    }
    assert (await drive(gateway, method="GET", path="/readyz")).status == 200


async def test_a_check_that_hangs_or_raises_is_a_failure_not_a_hang() -> None:
    gateway = build(FakeOpenAI())
    gateway.readiness.timeout = 0.05

    async def hangs() -> str | None:
        await anyio.sleep_forever()
        return None

    async def raises() -> str | None:
        raise RuntimeError("secret detail")

    gateway.readiness.add("slow", hangs)
    gateway.readiness.add("broken", raises)
    answer = await drive(gateway, method="GET", path="/readyz", seconds=2.0)
    assert answer.status == 503
    assert answer.json()["checks"] == {
        "config": "ok",
        "shutdown": "ok",
        "slow": "no answer within 0.05s",
        "broken": "the check failed",
    }
    assert b"secret detail" not in answer.body


async def test_not_ready_while_draining_but_still_alive() -> None:
    gateway = build(FakeOpenAI())
    await gateway.drain(0)
    ready = await drive(gateway, method="GET", path="/readyz")
    assert (ready.status, ready.json()["reason"]) == (503, "shutdown: the server is shutting down")
    assert (await drive(gateway, method="GET", path="/healthz")).status == 200


async def test_head_answers_without_a_body_and_other_methods_are_refused() -> None:
    gateway = build(FakeOpenAI())
    head = await drive(gateway, method="HEAD", path="/readyz")
    assert (head.status, head.body) == (200, b"")
    post = await drive(gateway, method="POST", path="/healthz")
    assert (post.status, post.header("allow")) == (405, "GET, HEAD")


async def test_health_endpoints_answer_under_a_mount_prefix() -> None:
    answer = await drive(build(FakeOpenAI()), method="GET", path="/llm/healthz", root_path="/llm")
    assert answer.status == 200


def test_check_names_are_unique() -> None:
    readiness = Readiness(lambda: False)

    async def ok() -> None:
        return None

    readiness.add("redis", ok)
    with pytest.raises(ValueError, match="already registered"):
        readiness.add("redis", ok)
    with pytest.raises(ValueError, match="already registered"):
        readiness.add("config", ok)
