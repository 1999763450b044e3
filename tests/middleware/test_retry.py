"""Retries of one target: the tenacity strategies on hand-made states, `RetryMiddleware` on its own,
and the retry policy through the gateway with a recording `sleep` (nothing here really waits).
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    answer_json,
    answer_sse,
    data_payloads,
    drive,
    recording,
    route_hosts,
    wait_for,
)
from tenacity import AsyncRetrying, RetryCallState

from routemw import (
    Action,
    Call,
    Completion,
    Gateway,
    OpenAIProvider,
    ProviderConfig,
    Reply,
    Target,
    UpstreamError,
)
from routemw.chat import parse_chat_request
from routemw.middleware import RetryMiddleware
from routemw.middleware.retry import stop_at_deadline, wait_backoff, wait_retry_after_or

UP_URL = "https://upstream.test/v1"
BACKUP_URL = "https://backup.test/v1"
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


# -- the strategies on hand-made states ----------------------------------------------------------


def state(attempt_number: int = 1, exc: BaseException | None = None, upcoming_sleep: float = 0.0) -> RetryCallState:
    retry_state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    retry_state.attempt_number = attempt_number
    retry_state.upcoming_sleep = upcoming_sleep
    if exc is not None:
        retry_state.set_exception((type(exc), exc, None))
    return retry_state


def upstream_error(
    action: Action = Action.RETRY, *, status: int | None = 503, retry_after: float | None = None
) -> UpstreamError:
    return UpstreamError("scripted", provider="up", action=action, status=status, retry_after=retry_after)


def test_backoff_doubles_from_initial_and_stops_at_max_without_jitter() -> None:
    wait = wait_backoff(0.25, 8.0, rand=lambda: 0.0)
    assert [wait(state(n)) for n in range(1, 9)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_jitter_only_lengthens_by_up_to_a_quarter_and_respects_max() -> None:
    full = wait_backoff(0.25, 8.0, rand=lambda: 1.0)
    half = wait_backoff(0.25, 8.0, rand=lambda: 0.5)
    assert [full(state(n)) for n in range(1, 7)] == pytest.approx([0.3125, 0.625, 1.25, 2.5, 5.0, 8.0])
    assert [half(state(n)) for n in range(1, 4)] == pytest.approx([0.28125, 0.5625, 1.125])


def test_backoff_with_real_randomness_stays_in_its_range() -> None:
    wait = wait_backoff(0.1, 1.0)
    for n in range(1, 8):
        low = 0.1 * 2 ** (n - 1)
        for _ in range(50):
            value = wait(state(n))
            assert min(low, 1.0) <= value <= min(1.0, 1.25 * low)


def test_backoff_for_a_huge_attempt_number_is_the_cap_not_an_overflow() -> None:
    assert wait_backoff(0.25, 8.0, rand=lambda: 1.0)(state(10_000)) == 8.0


def test_retry_after_from_the_upstream_replaces_the_backoff() -> None:
    wait = wait_retry_after_or(wait_backoff(0.25, 8.0, rand=lambda: 0.0))
    assert wait(state(1, upstream_error(retry_after=3.5))) == 3.5
    assert wait(state(4, upstream_error(retry_after=3.5))) == 3.5  # not scaled by the attempt number
    assert wait(state(1, upstream_error(retry_after=30.0))) == 30.0  # not capped by backoff_max either


def test_a_retry_after_of_zero_means_retry_now_not_use_the_backoff() -> None:
    wait = wait_retry_after_or(wait_backoff(0.25, 8.0, rand=lambda: 0.0))
    assert wait(state(3, upstream_error(retry_after=0.0))) == 0.0


@pytest.mark.parametrize(
    "exc",
    [upstream_error(retry_after=None), RuntimeError("not an upstream error"), None],
    ids=["no-hint", "other-exception", "no-outcome"],
)
def test_without_a_hint_the_backoff_decides(exc: BaseException | None) -> None:
    wait = wait_retry_after_or(wait_backoff(0.25, 8.0, rand=lambda: 0.0))
    assert wait(state(3, exc)) == 1.0


@pytest.mark.parametrize(("upcoming_sleep", "stops"), [(0.0, False), (0.99, False), (1.0, True), (5.0, True)], ids=str)
def test_stop_at_deadline_when_the_coming_sleep_would_reach_it(upcoming_sleep: float, stops: bool) -> None:
    stop = stop_at_deadline(lambda: 101.0, clock=lambda: 100.0)
    assert stop(state(1, upstream_error(), upcoming_sleep=upcoming_sleep)) is stops


def test_stop_at_deadline_reads_the_deadline_and_clock_each_time() -> None:
    now = [100.0]
    deadline = [200.0]
    stop = stop_at_deadline(lambda: deadline[0], clock=lambda: now[0])
    assert stop(state(1, upcoming_sleep=10.0)) is False
    now[0] = 195.0
    assert stop(state(1, upcoming_sleep=10.0)) is True
    deadline[0] = math.inf
    assert stop(state(1, upcoming_sleep=1e9)) is False


# -- RetryMiddleware on its own ------------------------------------------------------------------


class Recorder:
    """An injectable sleep that records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await anyio.lowlevel.checkpoint()


class RecordingHealth:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, float | None]] = []

    async def check(self, key: str) -> float | None:
        return None

    async def success(self, key: str) -> None:
        self.events.append(("success", key, None))

    async def failure(self, key: str, *, retry_after: float | None = None) -> None:
        self.events.append(("failure", key, retry_after))


COMPLETION = Completion(data=orjson.loads(recording("openai/completion-text.json")))


class ScriptedNext:
    """A `next` handler that raises or answers from a script, one step per call."""

    def __init__(self, steps: Sequence[BaseException | Completion]) -> None:
        self.steps = list(steps)
        self.calls = 0

    async def __call__(self, call: Call) -> Reply:
        step = self.steps[self.calls]
        self.calls += 1
        if isinstance(step, BaseException):
            raise step
        return step


def make_call() -> Call:
    provider = OpenAIProvider(ProviderConfig(name="up", type="openai", base_url=UP_URL))
    call = Call(request=parse_chat_request(orjson.dumps(CHAT)), request_id="req_test", headers={}, scope={})
    call.target = Target(provider=provider, model="gpt-4o", public_model="gpt-4o")
    return call


def middleware(sleep: Recorder, health: RecordingHealth | None = None, **kwargs: Any) -> RetryMiddleware:
    options: dict[str, Any] = {"attempts": 3, "backoff_initial": 0.25, "backoff_max": 8.0, **kwargs}
    return RetryMiddleware(sleep=sleep, health=health, rand=lambda: 0.0, **options)


async def test_a_first_success_is_returned_without_sleeping() -> None:
    sleep, health = Recorder(), RecordingHealth()
    next = ScriptedNext([COMPLETION])
    assert await middleware(sleep, health)(make_call(), next) is COMPLETION
    assert (next.calls, sleep.waits) == (1, [])
    assert health.events == [("success", "up/gpt-4o", None)]


async def test_retryable_failures_are_retried_with_the_backoff_schedule() -> None:
    sleep, health = Recorder(), RecordingHealth()
    next = ScriptedNext([upstream_error(), upstream_error(retry_after=1.5), COMPLETION])
    assert await middleware(sleep, health)(make_call(), next) is COMPLETION
    assert next.calls == 3
    assert sleep.waits == [0.25, 1.5]  # backoff for the first, the upstream's hint for the second
    assert health.events == [
        ("failure", "up/gpt-4o", None),
        ("failure", "up/gpt-4o", 1.5),
        ("success", "up/gpt-4o", None),
    ]


async def test_when_attempts_run_out_the_last_error_itself_is_raised() -> None:
    sleep = Recorder()
    errors = [upstream_error(status=500), upstream_error(status=502), upstream_error(status=503)]
    next = ScriptedNext([*errors, COMPLETION])
    with pytest.raises(UpstreamError) as caught:
        await middleware(sleep, attempts=3)(make_call(), next)
    assert caught.value is errors[-1]
    assert next.calls == 3
    assert sleep.waits == [0.25, 0.5]


@pytest.mark.parametrize("action", [Action.FALLBACK, Action.STOP])
async def test_a_failure_that_is_not_retryable_is_raised_at_once_and_not_counted_against_health(
    action: Action,
) -> None:
    sleep, health = Recorder(), RecordingHealth()
    error = upstream_error(action, status=401 if action is Action.FALLBACK else 400)
    next = ScriptedNext([error, COMPLETION])
    with pytest.raises(UpstreamError) as caught:
        await middleware(sleep, health)(make_call(), next)
    assert caught.value is error
    assert (next.calls, sleep.waits) == (1, [])
    assert not any(event[0] == "failure" for event in health.events)
    # A 400 about the request still proves the target answers: it counts as alive (which also
    # ends a half-open probe at once instead of holding the slot).
    assert len(health.events) == (1 if action is Action.STOP else 0)


async def test_an_exception_that_is_not_an_upstream_error_is_not_retried() -> None:
    sleep = Recorder()
    next = ScriptedNext([RuntimeError("bug in a middleware"), COMPLETION])
    with pytest.raises(RuntimeError):
        await middleware(sleep)(make_call(), next)
    assert (next.calls, sleep.waits) == (1, [])


async def test_a_wait_that_would_pass_the_deadline_is_not_taken() -> None:
    sleep = Recorder()
    call = make_call()
    call.deadline = 100.0 + 2.0
    error = upstream_error(status=429, retry_after=3.0)
    next = ScriptedNext([error, COMPLETION])
    with pytest.raises(UpstreamError) as caught:
        await middleware(sleep, clock=lambda: 100.0)(call, next)
    assert caught.value is error
    assert (next.calls, sleep.waits) == (1, [])


async def test_a_wait_that_fits_the_deadline_is_taken() -> None:
    sleep = Recorder()
    call = make_call()
    call.deadline = 100.0 + 3.5
    next = ScriptedNext([upstream_error(status=429, retry_after=3.0), COMPLETION])
    assert await middleware(sleep, clock=lambda: 100.0)(call, next) is COMPLETION
    assert sleep.waits == [3.0]


async def test_a_backoff_that_would_pass_the_deadline_is_not_taken_either() -> None:
    sleep = Recorder()
    call = make_call()
    call.deadline = 100.0 + 0.5
    next = ScriptedNext([upstream_error(), upstream_error(), COMPLETION])
    with pytest.raises(UpstreamError):
        await middleware(sleep, clock=lambda: 100.0, backoff_initial=0.4)(call, next)
    assert next.calls == 2  # 0.4 fits, the next 0.8 does not
    assert sleep.waits == [0.4]


async def test_a_cancelled_sleep_stops_the_retries() -> None:
    started = anyio.Event()
    calls: list[float] = []

    async def blocking_sleep(seconds: float) -> None:
        calls.append(seconds)
        started.set()
        await anyio.sleep_forever()

    next = ScriptedNext([upstream_error(), COMPLETION])
    retry = RetryMiddleware(attempts=3, sleep=blocking_sleep, rand=lambda: 0.0)
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            await retry(make_call(), next)

        tg.start_soon(run)
        with anyio.fail_after(5):
            await started.wait()
        tg.cancel_scope.cancel()

    assert calls == [0.25]
    assert next.calls == 1


# -- through the gateway, with a recording sleep -------------------------------------------------


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    assert API_KEY not in caplog.text
    assert BACKUP_KEY not in caplog.text


def build(
    upstream: FakeOpenAI,
    backup: FakeOpenAI,
    *,
    retry: Mapping[str, Any] | None = None,
    sleep: Callable[[float], Any] | None = None,
    middleware: Any = None,
) -> Gateway:
    """Public model gpt-4o: route `up` (gpt-4o), then route `backup` (gpt-4o-mini)."""
    document: dict[str, Any] = {
        "providers": {
            "up": {"type": "openai", "base_url": UP_URL, "api_key": API_KEY},
            "backup": {"type": "openai", "base_url": BACKUP_URL, "api_key": BACKUP_KEY},
        },
        "models": {
            "gpt-4o": {
                "routes": [{"provider": "up", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o-mini"}],
                "response_model": "upstream",  # streams are compared with the upstream's bytes
            }
        },
        "retry": dict(retry or {}),
    }
    transport = httpx.MockTransport(route_hosts({"upstream.test": upstream, "backup.test": backup}))
    return Gateway.from_config(document, environ={}, transport=transport, sleep=sleep, middleware=middleware)


def statuses(fake: FakeOpenAI) -> list[int | None]:
    return [r.response_status for r in fake.requests]


def rate_limited(headers: Mapping[str, str]) -> Any:
    return answer_error(429, message="Rate limit reached for requests", code="rate_limit_exceeded", headers=headers)


async def test_429_then_200_retries_once_after_the_upstreams_retry_after(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(rate_limited({"retry-after": "2"}))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert driver.body == recording("openai/completion-text.json")
    assert sleep.waits == [2.0]
    assert statuses(upstream) == [429, 200]
    assert backup.requests == []
    assert driver.header("x-routemw-provider") == "up"
    assert driver.header("x-routemw-attempts") == "2"
    assert driver.header("x-routemw-fallbacks") == "0"


async def test_a_stream_that_is_rate_limited_first_is_retried_before_anything_is_sent(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(rate_limited({"retry-after": "2"}), answer_sse(sse))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, sleep=sleep), json={**CHAT, "stream": True})

    assert driver.status == 200
    assert sleep.waits == [2.0]
    assert driver.payloads() == data_payloads(sse)  # the retry is invisible: one clean stream
    assert statuses(upstream) == [429, 200]
    assert driver.header("x-routemw-attempts") == "2"


async def test_a_stream_that_stalls_before_its_first_event_is_retried_on_the_same_target(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    sse = recording("openai/stream-text.sse")
    upstream.queue(answer_sse(sse, stall_after=1), answer_sse(sse))
    sleep = Recorder()
    retry = {"attempts": 2, "first_token_timeout": 0.1}
    driver = await drive(build(upstream, backup, retry=retry, sleep=sleep), json={**CHAT, "stream": True})

    assert driver.status == 200
    assert driver.payloads() == data_payloads(sse)
    assert len(sleep.waits) == 1
    assert len(upstream.requests) == 2
    assert upstream.streams[0].closed
    assert backup.requests == []


async def test_retry_after_on_a_5xx_is_obeyed_too(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_error(503, headers={"retry-after": "3"}))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert sleep.waits == [3.0]


@pytest.mark.parametrize("value", ["soon", "", "Thu, 99 Foo 2025 99:99:99 GMT"])
async def test_an_unusable_retry_after_falls_back_to_the_backoff(
    upstream: FakeOpenAI, backup: FakeOpenAI, value: str
) -> None:
    upstream.queue(rate_limited({"retry-after": value}))
    sleep = Recorder()
    app = build(upstream, backup, middleware=deterministic_retry(3, 0.25, 8.0, sleep))
    driver = await drive(app, json=CHAT)

    assert driver.status == 200
    assert sleep.waits == [0.25]


async def test_retry_after_ms_wins_over_retry_after(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(rate_limited({"retry-after-ms": "1500", "retry-after": "9"}))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert sleep.waits == [1.5]


async def test_retry_after_as_an_http_date(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(rate_limited({"retry-after": email.utils.formatdate(time.time() + 30, usegmt=True)}))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, sleep=sleep), json=CHAT)

    assert driver.status == 200
    (wait,) = sleep.waits
    assert 27.0 <= wait <= 30.0  # the date has one-second resolution
    assert statuses(upstream) == [429, 200]


async def test_retry_after_as_an_http_date_in_the_past_retries_at_once(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(rate_limited({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert sleep.waits == [0.0]


def deterministic_retry(attempts: int, initial: float, maximum: float, sleep: Recorder, rand: float = 0.0) -> Any:
    """A pipeline spec: the gateway's own, with its RetryMiddleware swapped for one without jitter."""

    def replace(defaults: list[Any]) -> list[Any]:
        *rest, default = defaults
        assert isinstance(default, RetryMiddleware)
        retry = RetryMiddleware(
            attempts=attempts,
            backoff_initial=initial,
            backoff_max=maximum,
            health=default.health,
            sleep=sleep,
            rand=lambda: rand,
        )
        return [*rest, retry]

    return replace


async def test_503_three_times_then_fallback_with_the_exact_backoff_schedule(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(*(answer_error(503, message="overloaded") for _ in range(3)))
    sleep = Recorder()
    app = build(upstream, backup, middleware=deterministic_retry(3, 0.25, 8.0, sleep))
    driver = await drive(app, json=CHAT)

    assert driver.status == 200
    assert sleep.waits == [0.25, 0.5]  # between the 3 calls to the first route; none before the fallback
    assert statuses(upstream) == [503, 503, 503]
    assert statuses(backup) == [200]
    assert backup.requests[0].body["model"] == "gpt-4o-mini"
    assert driver.header("x-routemw-provider") == "backup"
    assert driver.header("x-routemw-route-model") == "gpt-4o-mini"
    assert driver.header("x-routemw-attempts") == "4"
    assert driver.header("x-routemw-fallbacks") == "1"


async def test_the_backoff_schedule_is_capped_at_backoff_max(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(*(answer_error(500) for _ in range(5)))
    sleep = Recorder()
    app = build(upstream, backup, middleware=deterministic_retry(5, 1.0, 3.0, sleep, rand=1.0))
    driver = await drive(app, json=CHAT)

    assert driver.status == 200
    assert sleep.waits == [1.25, 2.5, 3.0, 3.0]
    assert len(upstream.requests) == 5


async def test_the_default_jittered_schedule_stays_in_its_range(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(*(answer_error(502) for _ in range(4)))
    sleep = Recorder()
    retry = {"attempts": 4, "backoff_initial": 0.5, "backoff_max": 1.5}
    driver = await drive(build(upstream, backup, retry=retry, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert len(sleep.waits) == 3
    for n, wait in enumerate(sleep.waits, start=1):
        base = 0.5 * 2 ** (n - 1)
        assert min(base, 1.5) <= wait <= min(1.5, 1.25 * base), (n, wait)


async def test_retry_after_longer_than_the_remaining_deadline_falls_back_without_sleeping(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(rate_limited({"retry-after": "10"}))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, retry={"timeout": 5}, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert sleep.waits == []
    assert statuses(upstream) == [429]
    assert statuses(backup) == [200]
    assert driver.header("x-routemw-provider") == "backup"


async def test_retry_after_that_fits_the_deadline_is_waited(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(rate_limited({"retry-after": "4"}))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, retry={"timeout": 5}, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert sleep.waits == [4.0]
    assert statuses(upstream) == [429, 200]
    assert backup.requests == []


async def test_a_backoff_longer_than_the_deadline_falls_back_without_sleeping(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(answer_error(503))
    sleep = Recorder()
    retry = {"timeout": 1, "backoff_initial": 2, "backoff_max": 4}
    driver = await drive(build(upstream, backup, retry=retry, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert sleep.waits == []
    assert statuses(upstream) == [503]
    assert driver.header("x-routemw-provider") == "backup"


async def test_a_quota_429_falls_back_without_retrying(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(
        answer_error(
            429,
            message="You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
            headers={"retry-after": "1"},
        )
    )
    sleep = Recorder()
    driver = await drive(build(upstream, backup, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert sleep.waits == []
    assert statuses(upstream) == [429]
    assert statuses(backup) == [200]
    assert driver.header("x-routemw-attempts") == "2"


async def test_a_400_stops_no_retry_no_fallback(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_error(400, message="Invalid 'messages[0].content': too long.", param="messages"))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, sleep=sleep), json=CHAT)

    assert driver.status == 400
    error = driver.json()["error"]
    assert error["message"] == "Invalid 'messages[0].content': too long."
    assert (error["type"], error["param"]) == ("invalid_request_error", "messages")
    assert sleep.waits == []
    assert statuses(upstream) == [400]
    assert backup.requests == []


async def test_x_should_retry_false_on_a_503_falls_back_without_retrying(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(answer_error(503, headers={"x-should-retry": "false"}))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert sleep.waits == []
    assert statuses(upstream) == [503]
    assert driver.header("x-routemw-provider") == "backup"


async def test_x_should_retry_true_retries_even_a_status_that_would_not_be(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(answer_error(400, headers={"x-should-retry": "true"}))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, sleep=sleep, retry={"backoff_initial": 0.5}), json=CHAT)

    assert driver.status == 200
    assert len(sleep.waits) == 1
    assert statuses(upstream) == [400, 200]
    assert backup.requests == []


@pytest.mark.parametrize("attempts", [1, 2, 4])
async def test_attempts_counts_the_first_call(upstream: FakeOpenAI, backup: FakeOpenAI, attempts: int) -> None:
    upstream.queue(*(answer_error(500) for _ in range(10)))
    sleep = Recorder()
    driver = await drive(build(upstream, backup, retry={"attempts": attempts}, sleep=sleep), json=CHAT)

    assert driver.status == 200
    assert len(upstream.requests) == attempts
    assert len(sleep.waits) == attempts - 1
    assert len(backup.requests) == 1
    assert driver.header("x-routemw-attempts") == str(attempts + 1)


async def test_retries_apply_to_every_target_in_turn(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_error(500), answer_error(500))
    backup.queue(answer_error(503))
    sleep = Recorder()
    app = build(upstream, backup, middleware=deterministic_retry(2, 0.1, 1.0, sleep))
    driver = await drive(app, json=CHAT)

    assert driver.status == 200
    assert statuses(upstream) == [500, 500]
    assert statuses(backup) == [503, 200]
    assert sleep.waits == [0.1, 0.1]  # the schedule starts over for the second target
    assert driver.header("x-routemw-attempts") == "4"


async def test_a_disconnect_during_a_backoff_sleep_stops_everything(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.queue(answer_error(503), answer_json(recording("openai/completion-text.json")))
    waits: list[float] = []
    cancelled: list[bool] = []

    async def blocking_sleep(seconds: float) -> None:
        waits.append(seconds)
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    driver = AsgiDriver(build(upstream, backup, sleep=blocking_sleep), body=orjson.dumps(CHAT))
    async with anyio.create_task_group() as tg:
        tg.start_soon(driver.run)
        await wait_for(lambda: bool(waits))
        driver.disconnect()

    assert cancelled == [True]  # the sleep itself received the cancellation
    assert len(waits) == 1
    assert statuses(upstream) == [503]  # no second attempt started
    assert backup.requests == []  # and no fallback
    assert driver.messages == []  # nothing was answered to a client that is gone
    assert driver.finished_at is not None and driver.disconnected_at is not None
    assert driver.finished_at - driver.disconnected_at < 1.0


async def test_with_the_real_sleep_no_wait_crosses_the_deadline_and_the_fallback_gets_its_turn(
    upstream: FakeOpenAI, backup: FakeOpenAI
) -> None:
    upstream.queue(*(rate_limited({"retry-after-ms": "100"}) for _ in range(10)))
    app = build(upstream, backup, retry={"attempts": 10, "timeout": 0.35})
    started = time.monotonic()
    driver = await drive(app, json=CHAT)

    assert driver.status == 200
    assert driver.header("x-routemw-provider") == "backup"
    assert 2 <= len(upstream.requests) <= 4  # retried while a 100 ms wait still fit
    assert backup.requests[0].received_at - started < 0.35  # ... and stopped in time for the fallback


@pytest.mark.parametrize("hint", ["inf", "nan", "1e400"])
async def test_a_nonsense_retry_after_is_ignored_not_a_500(hint: str) -> None:
    config = {
        "providers": {"limited": {"type": "echo", "script": [{"status": 429, "headers": {"retry-after": hint}}] * 4}},
        "models": {"m": {"routes": [{"provider": "limited", "model": "m"}]}},
        "retry": {"attempts": 2},
    }
    sleep = Recorder()
    gateway = Gateway.from_config(config, sleep=sleep, environ={})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]}
        )
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert len(sleep.waits) == 1 and 0 < sleep.waits[0] < 10  # the backoff, not the hint


class BrokenHealth:
    async def check(self, key: str) -> float | None:
        return None

    async def success(self, key: str) -> None:
        raise RuntimeError("health store is down")

    async def failure(self, key: str, *, retry_after: float | None = None) -> None:
        raise RuntimeError("health store is down")


@pytest.mark.parametrize("stream", [False, True])
async def test_a_broken_health_store_fails_no_request_and_leaks_no_stream(
    stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    config = {
        "providers": {"flaky": {"type": "echo", "script": [{"status": 503}]}},
        "models": {"m": {"routes": [{"provider": "flaky", "model": "m"}]}},
        "retry": {"attempts": 2},
    }
    gateway = Gateway.from_config(config, sleep=Recorder(), health=BrokenHealth(), environ={})
    body = {"model": "m", "messages": [{"role": "user", "content": "still fine"}], "stream": stream}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert "still fine" in response.text or "still" in response.text
    echo = gateway.providers["flaky"]
    assert echo.upstream.open_streams == 0  # type: ignore[attr-defined]
    assert "health store failed" in caplog.text
