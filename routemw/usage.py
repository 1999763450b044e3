"""What each request used: the meter that reads it off the reply, the record, and its sinks.

A `Meter` rides on the call (`call.meter`) when something needs usage: limits (to reconcile
their reservations) or a usage subscriber. It reads `usage` off a completion, or off the chunks
of a stream as they pass, and notes when the first chunk went out and how a stream ended. The
gateway builds one `UsageRecord` from it per finished request, refusals included, and hands it
to every subscriber: `Gateway(on_usage=callable)` (sync or async) and `UsageSink` objects such
as the built-in `JsonlSink`. A subscriber that fails is logged and never fails the request.

`JsonlSink` writes from a background thread: the event loop only appends to a queue, and the
thread writes whatever has gathered and flushes, at most `interval` seconds after a record
arrived, so a record is in the file about a second after its reply ended.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from .errors import RouteMWError
from .prices import TokenCounts
from .reply import Chunk, Stream

__all__ = ["JsonlSink", "Meter", "UsageRecord", "UsageSink", "token_counts"]

logger = logging.getLogger("routemw")

UsageCallback = Callable[["UsageRecord"], "Awaitable[None] | None"]


def token_counts(usage: Any) -> TokenCounts | None:
    """An OpenAI `usage` object as normalized counts; None when it is not one.

    An embeddings `usage` has no `completion_tokens` (only `prompt_tokens` and `total_tokens`):
    its output counts as none.
    """
    if not isinstance(usage, Mapping):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0 if "total_tokens" in usage else None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, Mapping) else None
    reasoning = completion_details.get("reasoning_tokens") if isinstance(completion_details, Mapping) else None
    return TokenCounts(
        prompt=max(prompt, 0),
        cached=cached if isinstance(cached, int) and cached > 0 else 0,
        completion=max(completion, 0),
        reasoning=reasoning if isinstance(reasoning, int) and reasoning > 0 else 0,
    )


class Meter:
    """Usage as the reply reported it, and the moments a record needs."""

    __slots__ = ("counts", "error_code", "first_chunk", "watched")

    def __init__(self) -> None:
        self.counts: TokenCounts | None = None  # None until the upstream reports usage
        self.first_chunk: float | None = None  # monotonic time the first chunk was handed on
        self.error_code: str | None = None  # a stream that failed after it started
        self.watched = False  # a stream wrapper already reads the chunks

    def read(self, usage: Any) -> None:
        counts = token_counts(usage)
        if counts is not None:
            self.counts = counts

    def watch(self, stream: Stream, *, on_end: Callable[[], Awaitable[None]] | None = None) -> Stream:
        """`stream`, with its usage read as it passes; `on_end` runs once when it is closed."""
        self.watched = True
        source = stream.batches()

        async def batches() -> AsyncIterator[list[Chunk]]:
            try:
                async for batch in source:
                    if self.first_chunk is None:
                        self.first_chunk = time.monotonic()
                    for chunk in batch:
                        if "usage" in chunk.data:
                            self.read(chunk.data["usage"])
                    yield batch
            except RouteMWError as exc:
                self.error_code = exc.code or "upstream_error"
                raise

        closed = False

        async def aclose() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            try:
                close = getattr(source, "aclose", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        await close()
                await stream.aclose()
            finally:
                if on_end is not None:
                    await on_end()

        return Stream((), batches(), aclose=aclose, headers=stream.headers)


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One finished request. Token counts and cost are null when the upstream reported no usage."""

    request_id: str
    time: str  # when the request arrived, ISO 8601 UTC
    account: str | None
    model: str | None  # the public model asked for
    provider: str | None  # the provider of the route that answered (or was tried last)
    upstream_model: str | None
    prompt_tokens: int | None
    cached_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None
    status: int  # the HTTP status the client got
    error_code: str | None  # the error's code, also for a stream that failed after it started
    attempts: int  # upstream calls made
    latency_ms: float  # arrival to the end of the reply
    ttft_ms: float | None  # arrival to the first chunk of a stream
    stream: bool | None
    method: str | None = None  # the HTTP method and path the client used (mount prefix included)
    path: str | None = None
    fallbacks: int = 0  # candidates passed over before the one that answered (x-routemw-fallbacks)
    limit: str | None = None  # the gateway limit that refused it: requests, tokens, concurrency, budget, tokens_quota
    # `call.trace()` taken when the request ended (None before routing began). Computed only when
    # a subscriber of yours is registered; left out of `to_dict()`, which stays flat.
    trace: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The flat fields, without `trace`."""
        return {name: getattr(self, name) for name in _FLAT}


_FLAT: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord) if f.name != "trace")


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UsageSink(Protocol):
    """Something that takes usage records; `emit` must not block (queue the work)."""

    def emit(self, record: UsageRecord) -> None: ...

    def close(self) -> None: ...


async def deliver(record: UsageRecord, callbacks: tuple[UsageCallback, ...], sinks: tuple[UsageSink, ...]) -> None:
    """Hand `record` to every subscriber; a failing one is logged and the rest still get it."""
    for callback in callbacks:
        try:
            result = callback(record)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("routemw: a usage subscriber failed on request %s", record.request_id)
    for sink in sinks:
        try:
            sink.emit(record)
        except Exception:
            logger.exception("routemw: a usage sink failed on request %s", record.request_id)


_STOP = object()


class JsonlSink:
    """Appends one JSON object per record to `path`, from a background thread.

    The thread starts with the first record and stops at `close()` (after writing everything
    queued); a record emitted after that starts it again, so a gateway that goes on serving
    after its lifespan ended still loses nothing.
    """

    def __init__(self, path: str | os.PathLike[str], *, interval: float = 0.2) -> None:
        self.path = os.fspath(path)
        self.interval = interval
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def emit(self, record: UsageRecord) -> None:
        self._queue.put(record)
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="routemw-usage-jsonl", daemon=True)
                    self._thread.start()

    def close(self) -> None:
        """Write what is queued and stop the thread; idempotent."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()

    def _run(self) -> None:
        with open(self.path, "ab") as file:
            while True:
                item = self._queue.get()
                lines: list[bytes] = []
                stop = False
                # Gather whatever else arrives within `interval`, so a burst costs one write.
                deadline = time.monotonic() + self.interval
                while True:
                    if item is _STOP:
                        stop = True
                        break
                    lines.append(orjson.dumps(item.to_dict()) + b"\n")
                    try:
                        item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                    except queue.Empty:
                        break
                if lines:
                    try:
                        file.write(b"".join(lines))
                        file.flush()
                    except OSError:
                        logger.exception("routemw: cannot write usage records to %s", self.path)
                if stop:
                    return
