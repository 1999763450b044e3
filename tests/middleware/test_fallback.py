"""Fallback across targets: order, weights, the one deadline, failure answers, disclosure headers,
fresh translation per attempt, and streaming before and after the commit point.

Streaming and disconnects are driven at the raw ASGI message level (`fakes.AsgiDriver`), since
in-process HTTP clients buffer bodies and would hide the commit point and what a disconnect does.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import orjson
import pytest
from fakes import (
    API_KEY,
    BACKUP_KEY,
    AsgiDriver,
    FakeOpenAI,
    answer_error,
    answer_sse,
    data_payloads,
    drive,
    recording,
    route_hosts,
    stall,
    wait_for,
)

from routemw import Call, FallbackMiddleware, Gateway, Handler, OpenAIProvider, ProviderConfig, Reply, Target
from routemw.middleware.fallback import weighted_order
from routemw.routing.health import HealthStore

UP_URL = "https://upstream.test/v1"
BACKUP_URL = "https://backup.test/v1"
THIRD_URL = "https://third.test/v1"
THIRD_KEY = "sk-third-secret-777777"
SECRETS = (API_KEY, BACKUP_KEY, THIRD_KEY)
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
STREAM_CHAT: dict[str, Any] = {**CHAT, "stream": True}
ENVELOPE_KEYS = ["code", "message", "param", "type"]


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for secret in SECRETS:
        assert secret not in caplog.text


@pytest.fixture
def third() -> FakeOpenAI:
    return FakeOpenAI(api_key=THIRD_KEY)


class Observer:
    """A middleware in front of the defaults that keeps each `Call`."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    async def __call__(self, call: Call, next: Handler) -> Reply:
        self.calls.append(call)
        return await next(call)


def two_routes(first: str = "gpt-4o", second: str = "gpt-4o-mini", **first_route: Any) -> dict[str, Any]:
    return {
        "gpt-4o": {
            "routes": [{"provider": "up", "model": first, **first_route}, {"provider": "backup", "model": second}]
        }
    }


def build(
    upstream: FakeOpenAI,
    backup: FakeOpenAI | None = None,
    third: FakeOpenAI | None = None,
    *,
    models: Mapping[str, Any] | None = None,
    retry: Mapping[str, Any] | None = None,
    middleware: Any = None,
    extra: Mapping[str, Any] | None = None,
    up_options: Mapping[str, Any] | None = None,
    health: HealthStore | None = None,
) -> Gateway:
    """Providers `up`, `backup` and `third` over one MockTransport; one attempt per target by default."""
    providers: dict[str, Any] = {
        "up": {"type": "openai", "base_url": UP_URL, "api_key": API_KEY, **(up_options or {})},
        "backup": {"type": "openai", "base_url": BACKUP_URL, "api_key": BACKUP_KEY},
        "third": {"type": "openai", "base_url": THIRD_URL, "api_key": THIRD_KEY},
    }
    hosts = {"upstream.test": upstream}
    if backup is not None:
        hosts["backup.test"] = backup
    if third is not None:
        hosts["third.test"] = third
    # Answers keep the upstream's model name, so streams can be compared with the upstream's bytes.
    specs = two_routes() if models is None else models
    models = {name: {"response_model": "upstream", **spec} for name, spec in specs.items()}
    document: dict[str, Any] = {
        "providers": providers,
        "models": models,
        "retry": {"attempts": 1, **(retry or {})},
        **(extra or {}),
    }
    transport = httpx.MockTransport(route_hosts(hosts))
    return Gateway.from_config(document, environ={}, transport=transport, middleware=middleware, health=health)


async def ask(app: Any, body: Mapping[str, Any] = CHAT, **kwargs: Any) -> AsgiDriver:
    driver = await drive(app, json=body, **kwargs)
    output = driver.raw_output()
    for secret in SECRETS:
        assert secret.encode() not in output
    return driver


def error_of(driver: AsgiDriver) -> dict[str, Any]:
    assert driver.header("content-type") == "application/json"
    body = driver.json()
    assert list(body) == ["error"]
    assert sorted(body["error"]) == ENVELOPE_KEYS
    error: dict[str, Any] = body["error"]
    return error


def statuses(fake: FakeOpenAI) -> list[int | None]:
    return [r.response_status for r in fake.requests]


def upstream_payloads(sse: bytes) -> list[bytes]:
    return [p for p in data_payloads(sse) if p != b"[DONE]"]


# -- order ---------------------------------------------------------------------------------------


def with_fallback(
    first_routes: Sequence[Mapping[str, Any]], *, fallbacks: Sequence[str] = ("cheap",)
) -> dict[str, Any]:
    return {
        "gpt-4o": {"routes": list(first_routes), "fallbacks": list(fallbacks)},
        "cheap": {"routes": [{"provider": "third", "model": "o1-mini"}]},
    }


async def test_routes_are_tried_in_order_then_the_fallback_models(
    upstream: FakeOpenAI, backup: FakeOpenAI, third: FakeOpenAI
) -> None:
    upstream.queue(answer_error(500))
    backup.queue(answer_error(502))
    routes = [{"provider": "up", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o-mini"}]
    observer = Observer()
    app = build(upstream, backup, third, models=with_fallback(routes), middleware=[observer])
    driver = await ask(app)

    assert driver.status == 200
    (call,) = observer.calls
    assert [(a.provider, a.model, a.status) for a in call.attempts] == [
        ("up", "gpt-4o", 500),
        ("backup", "gpt-4o-mini", 502),
        ("third", "o1-mini", 200),
    ]
    assert upstream.requests[0].received_at <= backup.requests[0].received_at <= third.requests[0].received_at
    assert third.requests[0].body["model"] == "o1-mini"
    assert driver.header("x-routemw-provider") == "third"
    assert driver.header("x-routemw-route-model") == "o1-mini"
    assert driver.header("x-routemw-attempts") == "3"
    assert driver.header("x-routemw-fallbacks") == "2"


async def test_the_first_route_that_answers_ends_the_search(
    upstream: FakeOpenAI, backup: FakeOpenAI, third: FakeOpenAI
) -> None:
    routes = [{"provider": "up", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o-mini"}]
    driver = await ask(build(upstream, backup, third, models=with_fallback(routes)))

    assert driver.status == 200
    assert (len(upstream.requests), backup.requests, third.requests) == (1, [], [])
    assert driver.header("x-routemw-fallbacks") == "0"
    assert driver.header("x-routemw-attempts") == "1"


async def test_a_fallback_model_the_account_may_not_use_is_never_tried(upstream: FakeOpenAI, third: FakeOpenAI) -> None:
    upstream.queue(answer_error(500))
    models = with_fallback([{"provider": "up", "model": "gpt-4o"}])
    keys = {"auth": {"mode": "keys"}, "keys": [{"name": "team", "key": "sk-client-team-key", "models": ["gpt-4o"]}]}
    app = build(upstream, None, third, models=models, extra=keys)
    driver = await ask(app, headers=[("authorization", "Bearer sk-client-team-key")])

    assert driver.status == 502
    assert third.requests == []
    assert "third" not in error_of(driver)["message"]


def _targets(spec: Sequence[tuple[str, str, float | None]]) -> list[Target]:
    providers = {name: OpenAIProvider(ProviderConfig(name=name, type="openai")) for name, _, _ in spec}
    return [
        Target(provider=providers[name], model=f"{name}-model", public_model=public, weight=weight)
        for name, public, weight in spec
    ]


def _names(targets: Sequence[Target]) -> list[str]:
    return [t.provider.name for t in targets]


def test_weighted_order_puts_each_route_first_in_proportion_to_its_weight() -> None:
    targets = _targets([("a", "m", 3.0), ("b", "m", 1.0)])
    rng = random.Random(20240601)
    firsts = Counter(_names(weighted_order(targets, rng.random))[0] for _ in range(4000))

    assert set(firsts) == {"a", "b"}
    assert 0.72 <= firsts["a"] / 4000 <= 0.78
    assert 0.22 <= firsts["b"] / 4000 <= 0.28


def test_weighted_order_with_three_weights() -> None:
    targets = _targets([("a", "m", 1.0), ("b", "m", 2.0), ("c", "m", 7.0)])
    rng = random.Random(7)
    firsts = Counter(_names(weighted_order(targets, rng.random))[0] for _ in range(5000))

    assert firsts["a"] / 5000 == pytest.approx(0.1, abs=0.02)
    assert firsts["b"] / 5000 == pytest.approx(0.2, abs=0.025)
    assert firsts["c"] / 5000 == pytest.approx(0.7, abs=0.025)


def test_weighted_order_is_a_permutation_and_fallback_models_stay_behind() -> None:
    targets = _targets([("a", "m", 3.0), ("b", "m", 1.0), ("c", "fb", 9.0), ("d", "fb", 1.0), ("e", "fb2", 1.0)])
    rng = random.Random(99)
    orders = [_names(weighted_order(targets, rng.random)) for _ in range(500)]

    for order in orders:
        assert sorted(order[:2]) == ["a", "b"]
        assert sorted(order[2:4]) == ["c", "d"]
        assert order[4] == "e"
    assert {tuple(o[:2]) for o in orders} == {("a", "b"), ("b", "a")}  # really shuffled
    assert {tuple(o[2:4]) for o in orders} == {("c", "d"), ("d", "c")}  # the fallback's own run too


def test_routes_without_weights_keep_their_configured_order() -> None:
    targets = _targets([("a", "m", None), ("b", "m", None), ("c", "m", None)])

    def no_randomness() -> float:
        raise AssertionError("unweighted routes must not be shuffled")

    assert _names(weighted_order(targets, no_randomness)) == ["a", "b", "c"]


def seeded_fallback(seed: int) -> Any:
    def replace(defaults: list[Any]) -> list[Any]:
        layers = []
        for layer in defaults:
            if isinstance(layer, FallbackMiddleware):
                layer = FallbackMiddleware(timeout=layer.timeout, health=None, rand=random.Random(seed).random)
            layers.append(layer)
        return layers

    return replace


async def test_weighted_routes_spread_requests_through_the_gateway(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    models = {
        "gpt-4o": {
            "routes": [
                {"provider": "up", "model": "gpt-4o", "weight": 3},
                {"provider": "backup", "model": "gpt-4o-mini", "weight": 1},
            ]
        }
    }
    app = build(upstream, backup, models=models, middleware=seeded_fallback(12345))
    answered: Counter[str | None] = Counter()
    for _ in range(400):
        driver = await drive(app, json=CHAT)
        assert driver.status == 200
        answered[driver.header("x-routemw-provider")] += 1

    assert answered["up"] + answered["backup"] == 400
    assert 0.68 <= answered["up"] / 400 <= 0.82
    assert (len(upstream.requests), len(backup.requests)) == (answered["up"], answered["backup"])


# -- the deadline --------------------------------------------------------------------------------


async def test_the_deadline_answers_504_when_the_upstream_stalls(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(stall())
    models = {"gpt-4o": {"routes": [{"provider": "up", "model": "gpt-4o"}]}}
    started = time.monotonic()
    driver = await ask(build(upstream, backup, models=models, retry={"timeout": 0.3, "attempts": 3}))
    elapsed = time.monotonic() - started

    assert driver.status == 504
    error = error_of(driver)
    assert (error["type"], error["code"], error["param"]) == ("timeout_error", "upstream_timeout", None)
    assert "deadline" in error["message"]
    assert 0.25 <= elapsed < 1.0
    assert upstream.requests[0].cancelled  # the stalled attempt was abandoned, not left running
    assert len(upstream.requests) == 1


async def test_the_deadline_message_lists_the_attempts_that_failed_before_it(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(answer_error(500))
    backup.queue(stall())
    started = time.monotonic()
    driver = await ask(build(upstream, backup, retry={"timeout": 0.3}))

    assert time.monotonic() - started < 1.0
    assert driver.status == 504
    message = error_of(driver)["message"]
    assert message.endswith("Tried: up/gpt-4o: 500 upstream_error; backup/gpt-4o-mini: no response upstream_timeout")
    assert driver.header("x-routemw-attempts") == "2"
    assert backup.requests[0].cancelled


async def test_the_deadline_message_lists_the_attempt_in_flight(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(stall())
    models = {"gpt-4o": {"routes": [{"provider": "up", "model": "gpt-4o"}]}}
    driver = await ask(build(upstream, backup, models=models, retry={"timeout": 0.3}))

    assert driver.status == 504
    message = error_of(driver)["message"]
    assert message.endswith("Tried: up/gpt-4o: no response upstream_timeout")
    assert driver.header("x-routemw-attempts") == "1"


async def test_the_deadline_also_bounds_a_stream_waiting_for_its_first_event(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(answer_sse(recording("openai/stream-text.sse"), stall_after=1))
    backup.queue(answer_sse(recording("openai/stream-text.sse"), stall_after=1))
    started = time.monotonic()
    driver = await ask(build(upstream, backup, retry={"timeout": 0.3}), STREAM_CHAT)

    assert time.monotonic() - started < 1.0
    assert driver.status == 504
    assert error_of(driver)["code"] == "upstream_timeout"
    assert upstream.streams[0].closed
    assert backup.requests == []  # the first stream held the whole deadline


async def test_each_attempt_has_its_own_timeout_within_the_deadline(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(stall())
    started = time.monotonic()
    app = build(upstream, backup, retry={"timeout": 10}, up_options={"timeout": 0.1})
    driver = await ask(app)

    assert time.monotonic() - started < 1.0
    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "backup"
    assert upstream.requests[0].cancelled


async def test_attempts_that_all_time_out_before_the_deadline_are_a_504_listing_them(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(stall(), stall())
    models = {"gpt-4o": {"routes": [{"provider": "up", "model": "gpt-4o"}]}}
    retry = {"timeout": 10, "attempts": 2, "backoff_initial": 0.01}
    started = time.monotonic()
    driver = await ask(build(upstream, backup, models=models, retry=retry, up_options={"timeout": 0.1}))

    assert time.monotonic() - started < 1.5
    assert driver.status == 504
    assert (error_of(driver)["type"], error_of(driver)["code"]) == ("timeout_error", "upstream_timeout")
    tried = error_of(driver)["message"].split("failed: ", 1)[1]
    assert tried == "up/gpt-4o: no response upstream_timeout; up/gpt-4o: no response upstream_timeout"
    assert [r.cancelled for r in upstream.requests] == [True, True]


# -- when every target failed --------------------------------------------------------------------


def rate_limited(headers: Mapping[str, str] | None = None) -> Any:
    return answer_error(429, message="Rate limit reached for requests", code="rate_limit_exceeded", headers=headers)


async def test_all_routes_rate_limited_is_a_429_with_the_soonest_retry_after(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(rate_limited({"retry-after": "7"}))
    backup.queue(rate_limited({"retry-after-ms": "2500"}))
    driver = await ask(build(upstream, backup))

    assert driver.status == 429
    error = error_of(driver)
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert driver.header("retry-after") == "3"
    assert driver.header("x-should-retry") is None
    assert "up/gpt-4o: 429" in error["message"]
    assert "backup/gpt-4o-mini: 429" in error["message"]


async def test_all_routes_rate_limited_without_hints_still_sends_retry_after(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(rate_limited())
    backup.queue(rate_limited())
    driver = await ask(build(upstream, backup), STREAM_CHAT)

    assert driver.status == 429
    assert driver.header("retry-after") == "1"


async def test_all_routes_refusing_credentials_or_model_is_a_502_that_says_do_not_retry(
    backup: FakeOpenAI,
) -> None:
    stranger = FakeOpenAI(api_key="sk-a-key-the-gateway-does-not-have")
    driver = await ask(build(stranger, backup, models=two_routes(second="gpt-no-such-model")))

    assert driver.status == 502
    assert driver.header("x-should-retry") == "false"
    error = error_of(driver)
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_error")
    assert "up/gpt-4o: 401 invalid_api_key" in error["message"]
    assert "backup/gpt-no-such-model: 404 model_not_found" in error["message"]
    assert (statuses(stranger), statuses(backup)) == ([401], [404])


@pytest.mark.parametrize(
    ("first", "second", "should_retry"),
    [
        (answer_error(500), answer_error(401, code="invalid_api_key"), None),
        (rate_limited(), answer_error(503), None),
        (rate_limited(), answer_error(404, code="model_not_found"), None),
        (answer_error(429, code="insufficient_quota", type="insufficient_quota"), answer_error(403), "false"),
        (answer_error(503, headers={"x-should-retry": "false"}), answer_error(402), "false"),
        (answer_error(400, param="logprobs", code="unsupported_parameter"), answer_error(401), "false"),
    ],
    ids=["500+401", "429+503", "429+404", "quota+403", "503-no-retry+402", "refused-param+401"],
)
async def test_mixed_failures_are_a_502(
    upstream: FakeOpenAI, backup: FakeOpenAI, first: Any, second: Any, should_retry: str | None
) -> None:
    upstream.queue(first)
    backup.queue(second)
    driver = await ask(build(upstream, backup))

    assert driver.status == 502
    assert error_of(driver)["type"] == "upstream_error"
    assert driver.header("x-should-retry") == should_retry
    assert driver.header("retry-after") is None
    assert driver.header("x-routemw-attempts") == "2"


async def test_a_parameter_every_route_refuses_is_the_last_refusal_as_a_400(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(answer_error(400, message="no logprobs here", param="logprobs", code="unsupported_parameter"))
    backup.queue(answer_error(400, message="logprobs: not this value", param="logprobs", code="unsupported_value"))
    driver = await ask(build(upstream, backup))

    assert driver.status == 400
    error = error_of(driver)
    assert error == {
        "message": "logprobs: not this value",
        "type": "invalid_request_error",
        "param": "logprobs",
        "code": "unsupported_value",
    }
    assert (statuses(upstream), statuses(backup)) == ([400], [400])


async def test_the_failure_message_lists_each_attempt_without_keys_or_urls(
    upstream: FakeOpenAI, backup: FakeOpenAI, third: FakeOpenAI
) -> None:
    leak = f"key {API_KEY} rejected at {UP_URL}/chat/completions (backup {BACKUP_KEY} at {BACKUP_URL})"
    upstream.queue(answer_error(500, message=leak), answer_error(503, message=leak))
    backup.queue(*(answer_error(502, message=leak, code="bad_gateway") for _ in range(2)))
    third.queue(answer_error(401, message=f"Incorrect API key provided: {THIRD_KEY}", code="invalid_api_key"))
    routes = [{"provider": "up", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o-mini"}]
    app = build(upstream, backup, third, models=with_fallback(routes), retry={"attempts": 2, "backoff_initial": 0.01})
    driver = await ask(app)

    assert driver.status == 502
    message = error_of(driver)["message"]
    tried = message.split("failed: ", 1)[1]
    assert tried.split("; ") == [
        "up/gpt-4o: 500 upstream_error",
        "up/gpt-4o: 503 upstream_error",
        "backup/gpt-4o-mini: 502 bad_gateway",
        "backup/gpt-4o-mini: 502 bad_gateway",
        "third/o1-mini: 401 invalid_api_key",
    ]
    for forbidden in ("upstream.test", "backup.test", "third.test", "http://", "https://", "/chat/completions"):
        assert forbidden not in message
    assert driver.header("x-routemw-attempts") == "5"


# -- success headers and fresh translation -------------------------------------------------------


async def test_a_success_discloses_who_answered(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_error(500))
    driver = await ask(build(upstream, backup))

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-route-model") == "gpt-4o-mini"
    assert driver.header("x-routemw-attempts") == "2"
    assert driver.header("x-routemw-fallbacks") == "1"
    upstream_id = driver.header("x-upstream-request-id")
    assert upstream_id is not None and upstream_id.startswith("req_")
    assert upstream_id != driver.header("x-request-id")


async def test_an_upstream_refusal_relayed_as_is_names_the_target_that_refused(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(answer_error(500))
    backup.queue(answer_error(400, message="bad messages", param="messages", headers={"x-request-id": "req_refused"}))
    driver = await ask(build(upstream, backup))

    assert driver.status == 400
    assert driver.json()["error"]["param"] == "messages"
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-route-model") == "gpt-4o-mini"
    assert driver.header("x-routemw-attempts") == "2"
    assert driver.header("x-routemw-fallbacks") == "1"
    assert driver.header("x-routemw-skipped") is None
    assert driver.header("x-upstream-request-id") == "req_refused"


async def test_when_every_target_failed_the_last_one_tried_is_named(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_error(500))
    backup.queue(answer_error(503, headers={"x-request-id": "req_last"}))
    driver = await ask(build(upstream, backup))

    assert driver.status == 502
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-route-model") == "gpt-4o-mini"
    assert driver.header("x-routemw-attempts") == "2"
    assert driver.header("x-routemw-fallbacks") == "1"
    assert driver.header("x-upstream-request-id") == "req_last"


TOOL_CHAT: dict[str, Any] = {**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}]}


@pytest.mark.parametrize(
    ("unfit", "provider", "fallbacks", "skipped"),
    [("first", "backup", "1", "capability=1"), ("second", "up", "0", None)],
)
async def test_a_route_skipped_for_a_capability_counts_as_a_fallback_only_when_listed_ahead(
    upstream: FakeOpenAI, backup: FakeOpenAI, unfit: str, provider: str, fallbacks: str, skipped: str | None
) -> None:
    no_tools = {"capabilities": {"tools": False}}
    routes = [{"provider": "up", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o-mini"}]
    routes[0 if unfit == "first" else 1].update(no_tools)
    driver = await ask(build(upstream, backup, models={"gpt-4o": {"routes": routes}}), TOOL_CHAT)

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == provider
    assert driver.header("x-routemw-attempts") == "1"
    assert driver.header("x-routemw-fallbacks") == fallbacks
    assert driver.header("x-routemw-skipped") == skipped


class Cooling:
    """A health store in which the given targets cool down for the given seconds."""

    def __init__(self, seconds: Mapping[str, float]) -> None:
        self.seconds = dict(seconds)

    async def check(self, key: str) -> float | None:
        return time.monotonic() + self.seconds[key] if key in self.seconds else None

    async def success(self, key: str) -> None:
        return None

    async def failure(self, key: str, *, retry_after: float | None = None) -> None:
        return None


@pytest.mark.parametrize(
    "cooling",
    [{"up/gpt-4o": 60.0}, {"up/gpt-4o": 60.0, "backup/gpt-4o-mini": 30.0}],  # one, or every one (soonest tried)
)
async def test_a_route_skipped_for_its_cooldown_counts_as_a_fallback(
    upstream: FakeOpenAI, backup: FakeOpenAI, cooling: dict[str, float]
) -> None:
    driver = await ask(build(upstream, backup, health=Cooling(cooling)))

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-attempts") == "1"
    assert driver.header("x-routemw-fallbacks") == "1"
    assert driver.header("x-routemw-skipped") == "cooldown=1"
    assert upstream.requests == []


async def test_skips_of_both_kinds_and_a_failure_add_up(
    upstream: FakeOpenAI, backup: FakeOpenAI, third: FakeOpenAI
) -> None:
    routes = [
        {"provider": "up", "model": "gpt-4o", "capabilities": {"tools": False}},  # cannot serve it
        {"provider": "backup", "model": "gpt-4o-mini"},  # fails
        {"provider": "third", "model": "o1-mini"},  # cooling down
        {"provider": "third", "model": "gpt-4o"},  # answers
    ]
    backup.queue(answer_error(500))
    app = build(upstream, backup, third, models={"gpt-4o": {"routes": routes}}, health=Cooling({"third/o1-mini": 60}))
    driver = await ask(app, TOOL_CHAT)

    assert driver.status == 200, driver.body
    assert driver.header("x-routemw-provider") == "third"
    assert driver.header("x-routemw-route-model") == "gpt-4o"
    assert driver.header("x-routemw-attempts") == "2"
    assert driver.header("x-routemw-fallbacks") == "3"
    assert driver.header("x-routemw-skipped") == "capability=1, cooldown=1"


async def test_each_attempt_is_translated_afresh_for_its_target(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_error(500))
    params = {"temperature": 0.2, "seed": 7, "max_completion_tokens": 64}
    body = {**CHAT, "top_p": 0.5, "metadata": {"k": "v"}}
    driver = await ask(build(upstream, backup, models=two_routes(params=params)), body)

    assert driver.status == 200
    first = upstream.requests[0].body
    second = backup.requests[0].body
    assert first == {**body, **params, "model": "gpt-4o"}
    assert second == {**body, "model": "gpt-4o-mini"}  # nothing of the first route's leaks in
    assert upstream.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert backup.requests[0].headers["authorization"] == f"Bearer {BACKUP_KEY}"


async def test_a_retry_of_the_same_target_sends_the_same_bytes(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_error(500))
    models = two_routes("gpt-4o-mini", params={"seed": 1})
    app = build(upstream, backup, models=models, retry={"attempts": 2, "backoff_initial": 0.01})
    driver = await ask(app)

    assert driver.status == 200
    assert upstream.requests[0].raw == upstream.requests[1].raw
    assert upstream.requests[1].body["model"] == "gpt-4o-mini"
    assert upstream.requests[1].body["seed"] == 1


# -- streaming: before the commit point ----------------------------------------------------------


@pytest.mark.parametrize("stall_after", [0, 1], ids=["no-event", "after-role-chunk"])
async def test_a_stream_that_stalls_before_its_first_event_falls_back_invisibly(
    upstream: FakeOpenAI, backup: FakeOpenAI, stall_after: int
) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(answer_sse(sse, stall_after=stall_after))
    backup_sse = recording("openai/stream-tool-call-single.sse")
    backup.queue(answer_sse(backup_sse))
    started = time.monotonic()
    driver = await ask(build(upstream, backup, retry={"first_token_timeout": 0.1, "attempts": 1}), STREAM_CHAT)

    assert time.monotonic() - started < 1.5
    assert driver.status == 200
    assert driver.header("content-type") == "text/event-stream; charset=utf-8"
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-attempts") == "2"
    assert driver.payloads() == [*upstream_payloads(backup_sse), b"[DONE]"]  # nothing of the first
    assert driver.complete
    (stream,) = upstream.streams
    assert stream.stalled and stream.closed
    assert backup.requests[0].body["model"] == "gpt-4o-mini"


async def test_a_stream_whose_upstream_stalls_before_any_byte_falls_back_after_first_token_timeout(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(stall())
    started = time.monotonic()
    app = build(upstream, backup, retry={"first_token_timeout": 0.1, "attempts": 1, "timeout": 1})
    driver = await ask(app, STREAM_CHAT)

    assert driver.status == 200, driver.body
    assert driver.header("x-routemw-provider") == "backup"
    assert time.monotonic() - started < 1.0


async def test_first_token_timeout_does_not_bound_pauses_after_the_first_event(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(answer_sse(sse, pause_after={3: 0.3}, sizes=None))  # a long pause after the commit
    driver = await ask(build(upstream, backup, retry={"first_token_timeout": 0.1}), STREAM_CHAT)

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "up"
    assert driver.payloads() == [*upstream_payloads(sse), b"[DONE]"]
    assert backup.requests == []


# -- streaming: after the commit point -----------------------------------------------------------


def in_band_error(driver: AsgiDriver) -> dict[str, Any]:
    *_, last = driver.payloads()
    error = orjson.loads(last)
    assert list(error) == ["error"]
    assert sorted(error["error"]) == ENVELOPE_KEYS
    result: dict[str, Any] = error["error"]
    return result


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"cut_after": 3}, "upstream_stream_truncated"),
        ({"fail_after": 3}, "upstream_unreachable"),
        ({"error_after": 3, "error": {"message": "model crashed", "type": "server_error", "code": "boom"}}, "boom"),
    ],
    ids=["clean-eof", "connection-lost", "upstream-error-event"],
)
async def test_a_stream_cut_after_the_commit_ends_with_an_in_band_error_and_no_retry(
    upstream: FakeOpenAI, backup: FakeOpenAI, fault: dict[str, Any], code: str
) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(answer_sse(sse, **fault))
    app = build(upstream, backup, retry={"attempts": 3, "backoff_initial": 0.01})
    driver = await ask(app, STREAM_CHAT)

    assert driver.status == 200  # committed before the cut
    assert driver.header("x-routemw-provider") == "up"
    payloads = driver.payloads()
    assert payloads[:-1] == upstream_payloads(sse)[:3]  # the role chunk and two content chunks
    assert b"[DONE]" not in payloads
    error = in_band_error(driver)
    assert error["code"] == code
    assert not any(b'"finish_reason":"stop"' in p for p in payloads)  # no fake finish
    assert driver.complete  # the body is ended, not left hanging
    assert len(upstream.requests) == 1  # no retry after the commit
    assert backup.requests == []  # and no fallback


async def test_the_commit_happens_before_the_cut_arrives(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(answer_sse(sse, cut_after=3, pause_after={3: 0.2}, sizes=None))
    driver = await ask(build(upstream, backup), STREAM_CHAT)

    start = next(s for s in driver.messages if s.message["type"] == "http.response.start")
    last = driver.body_messages[-1]
    assert last.at - start.at >= 0.15  # the client had its 200 and chunks while the upstream was still open
    assert in_band_error(driver)["code"] == "upstream_stream_truncated"


# -- client disconnects --------------------------------------------------------------------------


async def _disconnect_when_stalled(driver: AsgiDriver, upstream: FakeOpenAI) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(driver.run)
        await anyio.lowlevel.checkpoint()
        await wait_for(lambda: any(r.stalled or (r.stream is not None and r.stream.stalled) for r in upstream.requests))
        await anyio.sleep(0.05)
        driver.disconnect()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_disconnect_mid_attempt_cancels_it_and_nothing_else_starts(
    upstream: FakeOpenAI, backup: FakeOpenAI, third: FakeOpenAI, stream: bool
) -> None:
    upstream.queue(stall())
    routes = [{"provider": "up", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o-mini"}]
    app = build(upstream, backup, third, models=with_fallback(routes), retry={"attempts": 3, "backoff_initial": 0.01})
    driver = AsgiDriver(app, body=orjson.dumps({**CHAT, "stream": stream}))
    await _disconnect_when_stalled(driver, upstream)

    (request,) = upstream.requests  # no retry
    assert request.cancelled  # the fake saw the attempt cancelled
    assert backup.requests == [] and third.requests == []  # no fallback
    assert driver.messages == []
    assert driver.finished_at is not None and driver.disconnected_at is not None
    assert driver.finished_at - driver.disconnected_at < 1.0


async def test_a_disconnect_while_a_stream_waits_for_its_first_event_cancels_it(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(answer_sse(recording("openai/stream-text.sse"), stall_after=1))
    app = build(upstream, backup, retry={"attempts": 3, "first_token_timeout": 30})
    driver = AsgiDriver(app, body=orjson.dumps(STREAM_CHAT))
    await _disconnect_when_stalled(driver, upstream)

    (stream,) = upstream.streams
    assert stream.cancelled and stream.closed
    assert len(upstream.requests) == 1
    assert backup.requests == []
    assert driver.messages == []


async def test_a_disconnect_during_the_fallback_attempt_stops_there(
    upstream: FakeOpenAI, backup: FakeOpenAI, third: FakeOpenAI
) -> None:
    upstream.queue(answer_error(500))
    backup.queue(stall())
    routes = [{"provider": "up", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o-mini"}]
    app = build(upstream, backup, third, models=with_fallback(routes))
    driver = AsgiDriver(app, body=orjson.dumps(CHAT))
    await _disconnect_when_stalled(driver, backup)

    assert statuses(upstream) == [500]
    (request,) = backup.requests
    assert request.cancelled
    assert third.requests == []
    assert driver.messages == []


async def test_the_trace_explains_every_decision() -> None:
    traces: list[dict[str, object]] = []

    class Trace:
        async def __call__(self, call: Call, next: Handler) -> Reply:
            try:
                return await next(call)
            finally:
                traces.append(call.trace())

    config = {
        "providers": {"flaky": {"type": "echo", "script": [{"status": 503}, {"status": 401}]}},
        "models": {
            "m": {
                "routes": [
                    {"provider": "flaky", "model": "a", "capabilities": {"tools": False}},
                    {"provider": "flaky", "model": "b"},
                    {"provider": "echo", "model": "c"},
                ]
            }
        },
        "retry": {"attempts": 2},
    }

    async def no_sleep(seconds: float) -> None:
        return None

    gateway = Gateway.from_config(config, middleware=[Trace()], sleep=no_sleep)
    tool = {"type": "function", "function": {"name": "f"}}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    (trace,) = traces
    assert trace["model"] == "m"
    assert trace["skipped"] == [{"target": "flaky/a", "reason": "route flaky/a does not support tools"}]
    outcomes = [(a["target"], a["status"], a["outcome"]) for a in trace["attempts"]]  # type: ignore[attr-defined]
    assert outcomes == [("flaky/b", 503, "retry"), ("flaky/b", 401, "fallback"), ("echo/c", 200, "answered")]
    assert 0 <= trace["overhead_ms"] <= trace["elapsed_ms"]  # type: ignore[operator]
