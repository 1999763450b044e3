"""Two `routemw serve` processes on one Redis count limits as one gateway.

A fake OpenAI upstream runs on a loopback port: JSON answers report 5 completion tokens, and
streams of model `hang` send one chunk and then hold on until the gateway lets go. The
gateways are real processes (`python -m routemw serve`), so nothing is shared but Redis.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis_server import RedisServer
from servers import free_port, read_request, serve, wait_until

LEASE = 1.0  # state.lease in these tests: a killed process's slot is free within a second
RATE_KEY = "sk-procs-rate-0123456789"
BUDGET_KEY = "sk-procs-budget-0123456789"
SLOTS_KEY = "sk-procs-slots-0123456789"
OPEN_KEY = "sk-procs-open-0123456789"
Process = subprocess.Popen[bytes]
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


class Upstream:
    """OpenAI chat completions; counts the requests it answered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answered = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_request(scope, receive, send)
        if body is None:
            return
        request = json.loads(body)
        with self.lock:
            self.answered += 1
        base = {"id": "chatcmpl-1", "created": 1, "model": request["model"]}
        if request.get("stream"):
            headers = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            delta = {"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}
            chunk = {**base, "object": "chat.completion.chunk", "choices": [delta]}
            await send(
                {
                    "type": "http.response.body",
                    "body": b"data: " + json.dumps(chunk).encode() + b"\n\n",
                    "more_body": True,
                }
            )
            await receive()  # `hang`: until the gateway goes away
            return
        answer = {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


def config(upstream: int, redis: str, prefix: str) -> dict[str, Any]:
    route = {"provider": "up", "model": "gpt-4o"}
    return {
        "providers": {"up": {"type": "openai", "base_url": f"http://127.0.0.1:{upstream}/v1", "api_key": "sk-up-1"}},
        "models": {"gpt-4o": {"routes": [route]}, "hang": {"routes": [{**route, "model": "hang"}]}},
        # 5 output tokens at $10,000 per 1M: $0.05 a request, reserved exactly (input is free).
        "prices": {"gpt-4o": {"input": 0, "output": 10_000}, "up/hang": {"input": 0, "output": 0}},
        "keys": [
            {"name": "rate", "key": RATE_KEY, "models": ["*"], "limits": {"rpm": 50}},
            {"name": "budget", "key": BUDGET_KEY, "models": ["*"], "limits": {"budget": {"usd": 0.5}}},
            {"name": "slots", "key": SLOTS_KEY, "models": ["*"], "limits": {"concurrency": 1}},
            {"name": "open", "key": OPEN_KEY, "models": ["*"], "limits": {"rpm": 100_000, "concurrency": 50}},
        ],
        "auth": {"mode": "keys"},
        "retry": {"attempts": 1},
        "state": {"redis": {"url": redis, "prefix": prefix}, "timeout": 2.0, "lease": LEASE},
    }


@contextmanager
def gateways(
    tmp_path: Path, redis: str, prefix: str
) -> Iterator[tuple[Upstream, list[subprocess.Popen[bytes]], list[str]]]:
    upstream = Upstream()
    with serve(upstream) as live:
        path = tmp_path / "routemw.json"
        path.write_text(json.dumps(config(live.port, redis, prefix)), encoding="utf-8")
        processes: list[Process] = []
        urls: list[str] = []
        try:
            for _ in range(2):
                port = free_port()
                command = [sys.executable, "-m", "routemw", "serve", "--config", str(path), "--port", str(port)]
                command += ["--log-level", "warning", "--no-access-log"]
                processes.append(subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.DEVNULL))
                urls.append(f"http://127.0.0.1:{port}")
            for url, process in zip(urls, processes, strict=True):
                wait_until(partial(_answers, url, process), timeout=30, interval=0.05, what=f"routemw at {url}")
            yield upstream, processes, urls
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
            for process in processes:
                process.wait(timeout=30)


def _answers(url: str, process: Process) -> bool:
    assert process.poll() is None, f"routemw exited with {process.returncode}"
    try:
        return httpx.get(f"{url}/v1/models", timeout=1.0).status_code == 401  # up, and asking for a key
    except httpx.HTTPError:
        return False


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """One client for every request of a test (building one costs milliseconds); it is thread-safe."""
    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=32)) as client:
        yield client


def poster(http: httpx.Client, key: str) -> Callable[[str], httpx.Response]:
    def post(url: str) -> httpx.Response:
        return http.post(f"{url}/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"})

    return post


def spread(urls: list[str], count: int, call: Callable[[str], httpx.Response]) -> list[httpx.Response]:
    """`count` requests, alternating between the gateways, 16 at a time."""
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda i: call(urls[i % len(urls)]), range(count)))


def test_rpm_and_budget_hold_across_two_processes(
    http: httpx.Client, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    with gateways(tmp_path, redis_url, redis_prefix) as (upstream, _, urls):
        start = time.monotonic()
        answers = spread(urls, 200, poster(http, RATE_KEY))
        elapsed = time.monotonic() - start
        statuses = [a.status_code for a in answers]
        admitted = statuses.count(200)
        # 50 at once, then one more every 1.2 s (GCRA): a fast run admits exactly 50, and a slow
        # machine at most what came back meanwhile. Counted per process it would be 100.
        assert 50 <= admitted <= 50 + int(elapsed / 1.2), (admitted, elapsed)
        assert statuses.count(429) == 200 - admitted
        assert {a.request.url.port for a in answers if a.status_code == 200} == {int(u.rsplit(":", 1)[1]) for u in urls}

        upstream.answered = 0
        budget = spread(urls, 40, poster(http, BUDGET_KEY))
        # $0.50 at $0.05 a request: ten, however the forty concurrent requests raced.
        assert sorted(a.status_code for a in budget) == [200] * 10 + [402] * 30
        assert upstream.answered == 10
        for url in urls:
            key = http.get(f"{url}/v1/key", headers={"authorization": f"Bearer {BUDGET_KEY}"}, timeout=10).json()
            assert (key["data"]["usage"], key["data"]["limit_remaining"]) == (0.5, 0.0)


def test_killing_a_process_mid_stream_frees_its_slot_within_the_lease_time(
    http: httpx.Client, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    with gateways(tmp_path, redis_url, redis_prefix) as (_, processes, (first, second)):
        headers = {"authorization": f"Bearer {SLOTS_KEY}"}
        body = {"model": "hang", "messages": CHAT["messages"], "stream": True}
        slots = poster(http, SLOTS_KEY)
        with (
            http.stream("POST", f"{first}/v1/chat/completions", json=body, headers=headers) as stream,
        ):
            assert stream.status_code == 200
            chunks = stream.iter_bytes()  # kept: a discarded iterator would close the response
            next(chunks)  # the stream is running; it holds the key's one slot
            assert slots(second).status_code == 429
            time.sleep(3 * LEASE)  # only renewal by the first process keeps the slot this long
            refused = slots(second)
            assert refused.status_code == 429
            assert refused.json()["error"]["type"] == "concurrency"

            processes[0].send_signal(signal.SIGKILL)
            processes[0].wait(timeout=10)
            # Within the lease time (plus the checks' own latency), not the default lease's 60 s.
            wait_until(lambda: slots(second).status_code == 200, timeout=LEASE + 3, what="the slot")


def test_redis_stopped_mid_run_with_on_error_open_loses_no_request(
    http: httpx.Client, tmp_path: Path, own_redis: RedisServer, redis_prefix: str
) -> None:
    with gateways(tmp_path, own_redis.url, redis_prefix) as (upstream, _, urls):
        before = spread(urls, 20, poster(http, OPEN_KEY))
        own_redis.stop()
        during = spread(urls, 40, poster(http, OPEN_KEY))
        own_redis.start()
        after = spread(urls, 20, poster(http, OPEN_KEY))
    assert [a.status_code for a in before + during + after] == [200] * 80
    assert upstream.answered == 80
