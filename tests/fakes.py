"""Test doubles: a fake OpenAI upstream for `httpx.MockTransport`, and a raw ASGI driver.

`FakeOpenAI` speaks OpenAI's chat completions wire format and refuses what OpenAI refuses (a
missing or wrong Bearer key, a body that is not JSON, no `model` or `messages`, an unknown model,
`parallel_tool_calls` without `tools`, more than four `stop` sequences), with OpenAI's error
envelope. Every request it gets is recorded. Answers are scripted per request with `Step`s built
by `answer_json`, `answer_sse`, `answer_error` and `stall`; without a script it answers with the
genuine recordings `completion-text.json` or `stream-text.sse`.

Stream bodies are real async byte streams (`FakeByteStream`), delivered in pieces cut at awkward
byte offsets that ignore event boundaries, and they record whether they were cancelled or closed,
so a test can see the gateway let go of its upstream.

`AsgiDriver` calls an ASGI app with scripted `receive` messages and records every message the app
sends with its time, because in-process HTTP clients buffer whole bodies and cannot show when a
stream commits or what a disconnect does.
"""

from __future__ import annotations

import itertools
import re
import struct
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import httpx
import orjson
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from routemw.reply import Chunk

__all__ = [
    "API_KEY",
    "AWKWARD_SIZES",
    "BACKUP_KEY",
    "KNOWN_MODELS",
    "RECORDINGS",
    "AsgiDriver",
    "Fail",
    "FakeByteStream",
    "FakeOpenAI",
    "Pause",
    "RecordedRequest",
    "RecordingTransport",
    "Sent",
    "Stall",
    "Step",
    "answer_error",
    "answer_json",
    "answer_sse",
    "awkward_pieces",
    "data_payloads",
    "drive",
    "gzip_bomb",
    "openai_error",
    "recording",
    "route_hosts",
    "split_events",
    "sse_from_jsonl",
    "stall",
    "stream_parts",
    "wait_for",
]

REPO_ROOT: Final = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
RECORDINGS: Final = Path(__file__).resolve().parent / "recordings"

API_KEY: Final = "sk-test-secret-123456"
BACKUP_KEY: Final = "sk-backup-secret-654321"
KNOWN_MODELS: Final = frozenset({"gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini", "o1-mini", "gpt-5"})
# Piece sizes for delivering a body: they cut `data:`, JSON tokens, multi-byte characters and the
# blank line between events wherever they happen to fall.
AWKWARD_SIZES: Final = (1, 5, 2, 17, 3, 64, 7, 1, 1, 250, 11, 2)


# -- recordings and SSE helpers ---------------------------------------------------------------


def recording(name: str) -> bytes:
    """The bytes of a genuine recording, `name` relative to the recordings folder."""
    return (RECORDINGS / name).read_bytes()


def sse_from_jsonl(name: str) -> bytes:
    """A one-payload-per-line fixture (vercel/ai format) framed as an OpenAI SSE body with [DONE]."""
    lines = [line for line in recording(name).splitlines() if line.strip()]
    return b"".join(b"data: " + line + b"\n\n" for line in lines) + b"data: [DONE]\n\n"


def gzip_bomb(mebibytes: int) -> bytes:
    """One valid gzip member inflating to `mebibytes` MiB of zeros, about 1/1000 of that on the wire.

    Built from one compressed MiB repeated (a full flush makes every block the same bytes), so a
    300 MiB bomb takes milliseconds to make instead of seconds of compressing.
    """
    zeros = bytes(1 << 20)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + block * mebibytes + deflate.flush() + struct.pack("<II", crc, (mebibytes << 20) & 0xFFFFFFFF)


def split_events(body: bytes) -> list[bytes]:
    """The SSE body cut after each blank line; each event keeps its own terminator."""
    events: list[bytes] = []
    start = 0
    for match in re.finditer(rb"\r\n\r\n|\n\n|\r\r", body):
        events.append(body[start : match.end()])
        start = match.end()
    if start < len(body):
        events.append(body[start:])
    return events


def data_payloads(body: bytes) -> list[bytes]:
    """The `data` of each event in an SSE body; comments and other fields are skipped."""
    payloads: list[bytes] = []
    for event in split_events(body):
        lines = [line for line in re.split(rb"\r\n|\n|\r", event) if line.startswith(b"data:")]
        if lines:
            payloads.append(b"\n".join(line[6:] if line[5:6] == b" " else line[5:] for line in lines))
    return payloads


def awkward_pieces(data: bytes, sizes: Sequence[int] = AWKWARD_SIZES) -> list[bytes]:
    pieces: list[bytes] = []
    start = 0
    for size in itertools.cycle(sizes):
        if start >= len(data):
            break
        pieces.append(data[start : start + size])
        start += size
    return pieces


async def wait_for(predicate: Callable[[], bool], seconds: float = 5.0, interval: float = 0.005) -> None:
    """Poll until `predicate()` holds; fail the test after `seconds`.

    Polling rather than events: the states waited for are set deep inside the code under test.
    """
    with anyio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(interval)


# -- fake upstream stream ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pause:
    """In a stream script: wait this long before the next piece."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Stall:
    """In a stream script: never send another byte."""


@dataclass(frozen=True, slots=True)
class Fail:
    """In a stream script: the connection breaks with `error` (an `httpx.TransportError`, say)."""

    error: Exception


StreamPart = bytes | Pause | Stall | Fail


class FakeByteStream(httpx.AsyncByteStream):
    """An upstream response body that arrives piece by piece and reports what happened to it."""

    def __init__(self, parts: Iterable[StreamPart]) -> None:
        self.parts = list(parts)
        self.sent: list[bytes] = []
        self.started = False
        self.stalled = False
        self.finished = False  # every part was delivered
        self.cancelled = False  # a cancellation hit the stream while it waited
        self.abandoned = False  # the iterator was closed before it finished
        self.close_calls = 0
        self.closed_at: float | None = None

    @property
    def closed(self) -> bool:
        return self.close_calls > 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        try:
            for part in self.parts:
                if isinstance(part, Pause):
                    await anyio.sleep(part.seconds)
                elif isinstance(part, Stall):
                    self.stalled = True
                    await anyio.sleep_forever()
                elif isinstance(part, Fail):
                    raise part.error
                else:
                    self.sent.append(part)
                    yield part
            self.finished = True
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        except GeneratorExit:
            self.abandoned = True
            raise

    async def aclose(self) -> None:
        self.close_calls += 1
        if self.closed_at is None:
            self.closed_at = time.monotonic()


def stream_parts(
    body: bytes,
    *,
    sizes: Sequence[int] | None = AWKWARD_SIZES,
    cut_after: int | None = None,
    stall_after: int | None = None,
    error_after: int | None = None,
    error: Mapping[str, Any] | None = None,
    pause: float = 0.0,
    pause_after: Mapping[int, float] | None = None,
    fail_after: int | None = None,
    failure: Exception | None = None,
) -> list[StreamPart]:
    """Script a stream from an SSE body; every count is in events, [DONE] included.

    `cut_after`: end cleanly after that many events. `stall_after`: go silent for good.
    `error_after`: send an in-band `data: {"error": ...}` event and end. `fail_after`: break the
    connection (`failure`, by default a `RemoteProtocolError` like a dropped chunked body).
    `pause` waits between every two events, `pause_after` before the event at that index.
    """
    events = split_events(body)
    if cut_after is not None:
        events = events[:cut_after]
    if fail_after is not None:
        events = events[:fail_after]
    if error_after is not None:
        payload = {"error": error if error is not None else {"message": "upstream failure", "code": "server_error"}}
        events = [*events[:error_after], b"data: " + orjson.dumps(payload) + b"\n\n"]
    markers: dict[int, list[StreamPart]] = {}
    for index in range(1, len(events)):
        if pause:
            markers.setdefault(index, []).append(Pause(pause))
    for index, seconds in (pause_after or {}).items():
        markers.setdefault(index, []).append(Pause(seconds))
    if stall_after is not None:
        markers.setdefault(stall_after, []).append(Stall())
    if fail_after is not None:
        broken = failure or httpx.RemoteProtocolError("peer closed connection without sending complete message body")
        markers.setdefault(len(events), []).append(Fail(broken))
    parts: list[StreamPart] = []
    run = b""
    for index in range(len(events) + 1):
        if index in markers:
            parts += _pieces(run, sizes)
            run = b""
            parts += markers[index]
        if index < len(events):
            run += events[index]
    parts += _pieces(run, sizes)
    return parts


def _pieces(run: bytes, sizes: Sequence[int] | None) -> list[StreamPart]:
    if not run:
        return []
    return list(awkward_pieces(run, sizes)) if sizes else [run]


# -- scripted answers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One scripted answer of the fake upstream."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    parts: tuple[StreamPart, ...] | None = None  # a stream body
    stall: bool = False  # never answer (not even the status line)
    delay: float = 0.0  # wait before answering


def answer_json(
    body: bytes | Mapping[str, Any], *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Step:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Step(status=status, headers={"content-type": "application/json", **(headers or {})}, body=raw)


def answer_sse(
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    delay: float = 0.0,
    sizes: Sequence[int] | None = AWKWARD_SIZES,
    cut_after: int | None = None,
    stall_after: int | None = None,
    error_after: int | None = None,
    error: Mapping[str, Any] | None = None,
    pause: float = 0.0,
    pause_after: Mapping[int, float] | None = None,
    fail_after: int | None = None,
    failure: Exception | None = None,
) -> Step:
    """A 200 event stream replaying `body`; see `stream_parts` for the fault options."""
    parts = stream_parts(
        body,
        sizes=sizes,
        cut_after=cut_after,
        stall_after=stall_after,
        error_after=error_after,
        error=error,
        pause=pause,
        pause_after=pause_after,
        fail_after=fail_after,
        failure=failure,
    )
    all_headers = {"content-type": "text/event-stream; charset=utf-8", **(headers or {})}
    return Step(status=200, headers=all_headers, parts=tuple(parts), delay=delay)


def openai_error(
    message: str, *, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def answer_error(
    status: int,
    error: Mapping[str, Any] | bytes | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    message: str | None = None,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
) -> Step:
    if error is None:
        default_type = "server_error" if status >= 500 else "invalid_request_error"
        error = openai_error(message or f"HTTP {status}", type=type or default_type, param=param, code=code)
    return answer_json(error, status=status, headers=headers)


def stall() -> Step:
    return Step(stall=True)


# -- the fake upstream ------------------------------------------------------------------------


@dataclass(eq=False)
class RecordedRequest:
    """One request as the fake upstream received it."""

    method: str
    url: str
    headers: httpx.Headers
    raw: bytes
    body: Any  # the parsed JSON, or None when it was not JSON
    received_at: float = field(default_factory=time.monotonic)
    stalled: bool = False
    cancelled: bool = False  # cancelled while the fake was still deciding or stalling
    response_status: int | None = None
    stream: FakeByteStream | None = None


class FakeOpenAI:
    """An OpenAI chat completions server for `httpx.MockTransport`, strict like the real one."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        models: Iterable[str] = KNOWN_MODELS,
        steps: Iterable[Step] = (),
    ) -> None:
        self.api_key = api_key
        self.models = set(models)
        self.script: deque[Step] = deque(steps)
        self.requests: list[RecordedRequest] = []

    def queue(self, *steps: Step) -> FakeOpenAI:
        self.script.extend(steps)
        return self

    @property
    def streams(self) -> list[FakeByteStream]:
        return [r.stream for r in self.requests if r.stream is not None]

    def transport(self) -> RecordingTransport:
        return RecordingTransport(self)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        raw = await request.aread()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        record = RecordedRequest(request.method, str(request.url), httpx.Headers(request.headers), raw, body)
        self.requests.append(record)
        try:
            response = self._reject(request, record) or await self._answer(record)
        except anyio.get_cancelled_exc_class():
            record.cancelled = True
            raise
        record.response_status = response.status_code
        return response

    def _reject(self, request: httpx.Request, record: RecordedRequest) -> httpx.Response | None:
        if request.method != "POST" or request.url.path != "/v1/chat/completions":
            return _error(404, f"Invalid URL ({request.method} {request.url.path})")
        authorization = request.headers.get("authorization")
        if authorization is None:
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code="invalid_api_key",
            )
        if authorization != f"Bearer {self.api_key}":
            presented = authorization.removeprefix("Bearer ")
            masked = f"{presented[:8]}***{presented[-4:]}" if len(presented) > 12 else "***"
            return _error(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        body = record.body
        if not isinstance(body, dict):
            return _error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
                "JSON.)",
            )
        if "model" not in body:
            return _error(400, "you must provide a model parameter")
        if "messages" not in body:
            return _error(
                400, "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
            )
        if "parallel_tool_calls" in body and not body.get("tools"):
            return _error(
                400,
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are "
                "specified.",
                param="parallel_tool_calls",
            )
        stop = body.get("stop")
        if isinstance(stop, list) and len(stop) > 4:
            return _error(
                400,
                "Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with "
                f"length {len(stop)} instead.",
                param="stop",
                code="array_above_max_length",
            )
        if body["model"] not in self.models:
            return _error(
                404,
                f"The model `{body['model']}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return None

    async def _answer(self, record: RecordedRequest) -> httpx.Response:
        if self.script:
            step = self.script.popleft()
        elif record.body.get("stream") is True:
            step = answer_sse(recording("openai/stream-text.sse"))
        else:
            step = answer_json(recording("openai/completion-text.json"))
        if step.stall:
            record.stalled = True
            await anyio.sleep_forever()
        if step.delay:
            await anyio.sleep(step.delay)
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}", **step.headers}
        if step.parts is None:
            return httpx.Response(step.status, headers=headers, content=step.body)
        record.stream = FakeByteStream(step.parts)
        return httpx.Response(step.status, headers=headers, stream=record.stream)


def _error(status: int, message: str, *, param: str | None = None, code: str | None = None) -> httpx.Response:
    body = openai_error(message, param=param, code=code)
    headers = {"content-type": "application/json", "x-request-id": f"req_{uuid.uuid4().hex}"}
    return httpx.Response(status, headers=headers, content=orjson.dumps(body))


Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]


def route_hosts(upstreams: Mapping[str, Handler]) -> Handler:
    """One MockTransport handler for several fake upstreams, chosen by host; others do not resolve."""

    async def handler(request: httpx.Request) -> httpx.Response:
        upstream = upstreams.get(request.url.host)
        if upstream is None:
            raise httpx.ConnectError(f"[Errno -2] Name or service not known: {request.url.host}", request=request)
        return await upstream(request)

    return handler


class RecordingTransport(httpx.MockTransport):
    """A MockTransport that remembers being closed."""

    def __init__(self, handler: Handler) -> None:
        super().__init__(handler)
        self.close_calls = 0

    async def aclose(self) -> None:
        self.close_calls += 1


# -- raw ASGI driver --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the app sent, and when (seconds since the driver started)."""

    message: Mapping[str, Any]
    at: float


class AsgiDriver:
    """Runs one HTTP request through an ASGI app at the message level and records the answer."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        *,
        method: str = "POST",
        path: str = "/v1/chat/completions",
        body: bytes | Sequence[bytes] = b"",
        headers: Iterable[tuple[str | bytes, str | bytes]] = (),
        root_path: str = "",
        query_string: bytes = b"",
        on_send: Callable[[AsgiDriver, Mapping[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.on_send = on_send  # awaited inside send(), before the message is recorded
        raw_headers = [(_b(k).lower(), _b(v)) for k, v in headers]
        if isinstance(body, bytes):
            chunks = [body]
            if body and not any(name == b"content-length" for name, _ in raw_headers):
                raw_headers.append((b"content-length", str(len(body)).encode()))
        else:
            chunks = list(body) or [b""]
        self.chunks = chunks
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query_string,
            "root_path": root_path,
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.messages: list[Sent] = []
        self.receives = 0  # messages the app took from receive()
        self.disconnected_at: float | None = None
        self.finished_at: float | None = None
        self._next_chunk = 0
        self._disconnect_requested = False
        self._wake: anyio.Event | None = None
        self._start = time.monotonic()

    # -- driving

    def disconnect(self) -> None:
        """The client goes away: a pending or later `receive()` returns `http.disconnect`."""
        self._disconnect_requested = True
        if self._wake is not None:
            self._wake.set()

    async def run(self, seconds: float = 10.0) -> AsgiDriver:
        """Call the app; fail the test if it has not returned after `seconds`."""
        self._start = time.monotonic()
        self._wake = anyio.Event()
        if self._disconnect_requested:
            self._wake.set()
        with anyio.fail_after(seconds):
            await self.app(self.scope, self._receive, self._send)
        self.finished_at = self.now()
        return self

    def now(self) -> float:
        return time.monotonic() - self._start

    async def _receive(self) -> dict[str, Any]:
        if self._next_chunk < len(self.chunks) and not self._disconnect_requested:
            index = self._next_chunk
            self._next_chunk += 1
            self.receives += 1
            return {"type": "http.request", "body": self.chunks[index], "more_body": index + 1 < len(self.chunks)}
        assert self._wake is not None
        await self._wake.wait()
        self.receives += 1
        if self.disconnected_at is None:
            self.disconnected_at = self.now()
        return {"type": "http.disconnect"}

    async def _send(self, message: Mapping[str, Any]) -> None:
        if self.on_send is not None:
            await self.on_send(self, message)
        self.messages.append(Sent(dict(message), self.now()))
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            # The response is complete: like a server, answer a later receive() with a disconnect.
            assert self._wake is not None
            self._wake.set()

    # -- reading the answer

    @property
    def started(self) -> bool:
        return any(s.message["type"] == "http.response.start" for s in self.messages)

    @property
    def start(self) -> Mapping[str, Any]:
        starts = [s.message for s in self.messages if s.message["type"] == "http.response.start"]
        assert len(starts) == 1, f"expected one http.response.start, got {self.messages!r}"
        return starts[0]

    @property
    def status(self) -> int:
        status: int = self.start["status"]
        return status

    @property
    def header_list(self) -> list[tuple[str, str]]:
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.start["headers"]]

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.header_list if k.lower() == name.lower()]
        assert len(values) <= 1, f"header {name} sent {len(values)} times"
        return values[0] if values else None

    @property
    def body_messages(self) -> list[Sent]:
        return [s for s in self.messages if s.message["type"] == "http.response.body"]

    @property
    def bodies(self) -> list[bytes]:
        return [bytes(s.message.get("body", b"")) for s in self.body_messages]

    @property
    def body(self) -> bytes:
        return b"".join(self.bodies)

    @property
    def complete(self) -> bool:
        """The app ended the body with `more_body: False`."""
        bodies = self.body_messages
        return bool(bodies) and not bodies[-1].message.get("more_body", False)

    def json(self) -> Any:
        return orjson.loads(self.body)

    def payloads(self) -> list[bytes]:
        return data_payloads(self.body)

    def raw_output(self) -> bytes:
        """Everything the client could see: header names and values, and the body."""
        head = b"".join(k + b": " + v + b"\n" for k, v in self.start["headers"]) if self.started else b""
        return head + self.body


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


async def drive(
    app: Callable[..., Awaitable[None]],
    *,
    method: str = "POST",
    path: str = "/v1/chat/completions",
    body: bytes | Sequence[bytes] = b"",
    json: Any = None,
    headers: Iterable[tuple[str | bytes, str | bytes]] = (),
    root_path: str = "",
    seconds: float = 10.0,
) -> AsgiDriver:
    """Run one request to completion and return the driver with everything the app sent."""
    if json is not None:
        body = orjson.dumps(json)
        headers = [("content-type", "application/json"), *headers]
    driver = AsgiDriver(app, method=method, path=path, body=body, headers=headers, root_path=root_path)
    return await driver.run(seconds)


# -- reading translated streams ----------------------------------------------------------------


def deltas(chunks: list[Chunk]) -> list[dict[str, Any]]:
    """Each chunk's delta for choice 0, skipping the usage chunk."""
    return [c.data["choices"][0]["delta"] for c in chunks if c.data["choices"]]


def finishes(chunks: list[Chunk]) -> list[str]:
    return [
        c.data["choices"][0]["finish_reason"]
        for c in chunks
        if c.data["choices"] and c.data["choices"][0]["finish_reason"]
    ]


def sdk_completion(chunks: list[Chunk]) -> dict[str, Any]:
    """The completion the official SDK's stream helper assembles from the chunks."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk.data))
    final: dict[str, Any] = state.get_final_completion().model_dump()
    return final
