"""`routemw serve` as a process, on each server (`--server`) and with one or two workers: stopping
it with signals, and failing to start.

In the main test the upstream answers a stream with its first content event and then goes
silent, and never answers a plain request, so both requests are still in flight when SIGTERM
arrives. The drain deadline comes from `--shutdown-timeout`, which must win over the much longer
one in the file. What each request state gets at the deadline is tested at the ASGI level in
`test_shutdown.py`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from fakes import recording, split_events
from servers import ENGINES, LiveServer, free_port, serve, wait_until

SHUTDOWN_TIMEOUT = 1.5
SLACK = 4.0  # start-up of the drain, the last writes, the lifespan and the interpreter's exit
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": "What's the weather like in SF?"}]}
# The role chunk and the first content chunk: enough for the gateway to commit the response.
FIRST_EVENTS = b"".join(split_events(recording("openai/stream-text.sse"))[:2])


class Stalling:
    """A fake OpenAI upstream that stalls: one content event for a stream, nothing for the rest."""

    def __init__(self) -> None:
        self.streaming = threading.Event()  # a stream has had its first events
        self.waiting = threading.Event()  # a plain request is being held
        self._lock = threading.Lock()
        self.released = 0  # requests whose client (the gateway) went away

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        streaming = bool(orjson.loads(body).get("stream"))
        if streaming:
            headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": FIRST_EVENTS, "more_body": True})
            self.streaming.set()
        else:
            self.waiting.set()
        while (await receive())["type"] != "http.disconnect":
            pass
        with self._lock:
            self.released += 1
        if streaming:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


@dataclass
class Client:
    """One request from its own thread, with when each line of the answer arrived."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    status: int | None = None
    failure: BaseException | None = None

    def __post_init__(self) -> None:
        self.finished = threading.Event()

    def stream(self, url: str) -> None:
        try:
            with httpx.Client(timeout=30.0) as http, http.stream("POST", url, json={**CHAT, "stream": True}) as answer:
                self.status = answer.status_code
                for line in answer.iter_lines():
                    self.lines.append((time.monotonic(), line))
        except BaseException as exc:
            self.failure = exc
        finally:
            self.finished.set()

    def post(self, url: str) -> None:
        try:
            with httpx.Client(timeout=30.0) as http:
                answer = http.post(url, json=CHAT)
                self.status = answer.status_code
                self.lines.append((time.monotonic(), answer.text))
        except BaseException as exc:
            self.failure = exc
        finally:
            self.finished.set()

    def payloads(self) -> list[str]:
        return [line.removeprefix("data: ") for _, line in self.lines if line.startswith("data: ")]


@pytest.fixture
def upstream() -> Iterator[tuple[Stalling, LiveServer]]:
    fake = Stalling()
    with serve(fake, lifespan="off") as live:
        yield fake, live


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True


def _wait_for_models(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30.0
    with httpx.Client(timeout=1.0) as http:
        while True:
            if process.poll() is not None:
                pytest.fail(f"routemw serve exited with {process.returncode}:\n{log.read_text()}")
            try:
                if http.get(url + "/v1/models").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"routemw serve did not answer within 30s:\n{log.read_text()}")
            time.sleep(0.05)


def _workers(pid: int) -> list[int]:
    """The child processes of `pid` that serve (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp_path / "serve.log"
    env = {key: value for key, value in os.environ.items() if key not in ("ROUTEMW_CONFIG", "OPENAI_API_KEY")}
    with log.open("wb") as output:
        command = [sys.executable, "-m", "routemw", "serve", "--log-level", "warning", *args]
        return subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT), log


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("engine", ENGINES)
def test_sigterm_drains_then_ends_open_requests_with_an_error(
    upstream: tuple[Stalling, LiveServer], tmp_path: Path, engine: str, workers: int
) -> None:
    fake, live = upstream
    config = {
        "server": {"shutdown_timeout": 600},  # the flag below must win
        "providers": {"up": {"type": "openai", "base_url": live.url + "/v1", "api_key": "sk-up", "timeout": 600}},
        "models": {"gpt-4o": {"routes": [{"provider": "up", "model": "gpt-4o"}]}},
        "retry": {"attempts": 1, "timeout": 600},
    }
    path = tmp_path / "routemw.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    timeout = str(SHUTDOWN_TIMEOUT)
    args = ("-c", str(path), "--port", str(port), "--shutdown-timeout", timeout, "--server", engine)
    process, log = _start(tmp_path, *args, "--workers", str(workers))
    stream, plain = Client(), Client()
    try:
        _wait_for_models(process, url, log)
        if workers > 1:
            assert len(_workers(process.pid)) == workers
        threading.Thread(target=stream.stream, args=(url + "/v1/chat/completions",), daemon=True).start()
        threading.Thread(target=plain.post, args=(url + "/v1/chat/completions",), daemon=True).start()
        wait_until(lambda: fake.waiting.is_set() and len(stream.payloads()) >= 2, timeout=10.0, what="requests")

        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_until(lambda: _refused(port), timeout=SHUTDOWN_TIMEOUT, what="new connections refused")
        assert not stream.finished.is_set()  # refused at once, while the stream is still draining
        process.wait(timeout=SHUTDOWN_TIMEOUT + SLACK)
        exited = time.monotonic()
        assert stream.finished.wait(5.0) and plain.finished.wait(5.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10.0)

    assert stream.failure is None and plain.failure is None  # both ended cleanly, nothing was cut
    assert stream.status == 200
    *content, last = stream.payloads()
    assert len(content) == 2 and "[DONE]" not in content
    error = orjson.loads(last)["error"]
    assert error["code"] == "server_shutting_down" and error["type"] == "server_error"
    assert plain.status == 503
    assert orjson.loads(plain.lines[0][1])["error"]["code"] == "server_shutting_down"
    # The drain waited for its deadline before ending them, and not much longer.
    ended = stream.lines[-1][0]
    # (less a few ms: uvloop reads its clock once per loop iteration, so a deadline set in the
    # middle of one counts from a moment slightly in the past)
    assert ended - signalled >= SHUTDOWN_TIMEOUT - 0.05
    assert exited - signalled < SHUTDOWN_TIMEOUT + SLACK
    wait_until(lambda: fake.released == 2, timeout=5.0, what="upstream requests released")
    text = log.read_text()
    assert "Traceback" not in text
    assert "Exception in ASGI application" not in text
    assert "running task(s)" not in text  # uvicorn's own cut-off never had to act
    assert "refused to gracefully stop" not in text  # nor granian's
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn ends by raising the signal it handled again


@pytest.mark.parametrize("engine", ENGINES)
def test_ctrl_c_stops_it_quietly(tmp_path: Path, engine: str) -> None:
    port = free_port()
    process, log = _start(tmp_path, "--port", str(port), "--server", engine)
    try:
        _wait_for_models(process, f"http://127.0.0.1:{port}", log)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=SLACK)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10.0)

    assert "Traceback" not in log.read_text()  # no KeyboardInterrupt escaping after the shutdown
    assert process.returncode == 0


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_port_in_use_exits_3(tmp_path: Path, engine: str, workers: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        process, log = _start(tmp_path, "--port", port, "--server", engine, "--workers", str(workers))
        try:
            process.wait(timeout=30.0)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10.0)

    assert process.returncode == 3
    assert "address already in use" in log.read_text().lower()
