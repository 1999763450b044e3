"""The access log: one line per finished request on the `routemw.access` logger.

Each line is made from the request's usage record (plus method, path and fallbacks), never from
the request itself, so it cannot carry a key or message content. On the event loop a line costs
a dict of the fields and a `LogRecord`; nothing is formatted there. The record's message is an
`AccessLine`, which renders itself (`key=value ...`) only when a handler asks for it, and the
fields ride along as `record.access` for JSON.

`configure_logging` is what `routemw serve` uses: the access logger gets an `AccessWriter`, a
handler that only puts what it is given on a queue; a thread formats and writes what gathered,
at most `interval` seconds after it arrived, in one write and one flush, so the event loop never
waits on a write and a busy server makes a few writes a second, not one per request. When that
writer is the logger's only handler, `AccessLog` hands it the fields directly and no `LogRecord`
is made at all (measured: making and routing one cost more than the rest of the line). A host
that mounts the gateway attaches its own handlers to `routemw.access` instead and gets ordinary
records (a `QueueHandler` is best there too: a plain `StreamHandler` writes on the event loop).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any, Final, Literal

import orjson

from ..usage import UsageRecord

__all__ = [
    "ACCESS_FIELDS",
    "ACCESS_LOGGER",
    "AccessLine",
    "AccessLog",
    "AccessWriter",
    "JsonFormatter",
    "configure_logging",
    "stop_access_log",
]

ACCESS_LOGGER: Final = "routemw.access"
# The names of a line, in order; README "Observability" documents each.
ACCESS_FIELDS: Final = (
    "time",
    "request_id",
    "method",
    "path",
    "status",
    "error_code",
    "account",
    "model",
    "provider",
    "upstream_model",
    "attempts",
    "fallbacks",
    "stream",
    "prompt_tokens",
    "cached_tokens",
    "completion_tokens",
    "cost_usd",
    "ttft_ms",
    "latency_ms",
)
LogFormat = Literal["json", "text"]


class AccessLine:
    """A log message that becomes `key=value ...` text only when something formats it."""

    __slots__ = ("fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return " ".join(f"{name}={_text(value)}" for name, value in self.fields.items())


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # Names come from config or clients (an unknown model): quote anything that would
        # make the line ambiguous to split.
        if not value or any(c in value for c in ' ="\\\n\r\t'):
            return orjson.dumps(value).decode()
        return value
    return str(value)


class AccessLog:
    """Writes one access line per usage record, when its logger is enabled for INFO."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger if logger is not None else logging.getLogger(ACCESS_LOGGER)

    def emit(self, record: UsageRecord) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):
            return
        fields = {
            "time": record.time,
            "request_id": record.request_id,
            "method": record.method,
            "path": record.path,
            "status": record.status,
            "error_code": record.error_code,
            "account": record.account,
            "model": record.model,
            "provider": record.provider,
            "upstream_model": record.upstream_model,
            "attempts": record.attempts,
            "fallbacks": record.fallbacks,
            "stream": record.stream,
            "prompt_tokens": record.prompt_tokens,
            "cached_tokens": record.cached_tokens,
            "completion_tokens": record.completion_tokens,
            "cost_usd": record.cost_usd,
            "ttft_ms": record.ttft_ms,
            "latency_ms": record.latency_ms,
        }
        handlers = logger.handlers
        if len(handlers) == 1 and type(handlers[0]) is AccessWriter and not logger.filters:
            handlers[0].put(fields)  # `routemw serve`: straight to the writer thread
            return
        # `makeRecord` and `handle` rather than `logger.info`: the caller's file and line say
        # nothing here, and finding them walks the stack on every request.
        line = AccessLine(fields)
        entry = logger.makeRecord(logger.name, logging.INFO, "", 0, line, (), None, extra={"access": fields})
        logger.handle(entry)


class JsonFormatter(logging.Formatter):
    """An access record as its fields, exactly; any other record as time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "access", None)
        if fields is not None:
            return orjson.dumps(fields).decode()
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


_STOP: Final = object()


class AccessWriter(logging.Handler):
    """Writes access lines (and any other record sent to it) from a thread, in batches."""

    def __init__(self, stream: IO[str], *, json: bool, interval: float = 0.1) -> None:
        super().__init__()
        self.stream = stream
        self.json = json
        self.interval = interval
        self._start()

    def _start(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="routemw-access-log", daemon=True)
        self._thread.start()

    def restart(self) -> None:
        """A fresh queue and thread, in a forked child (granian's workers): no thread survives a fork.

        What the parent had queued is the parent's to write, so the child starts empty.
        """
        self._start()

    def put(self, fields: Mapping[str, Any]) -> None:
        self._queue.put(fields)

    def emit(self, record: logging.LogRecord) -> None:
        self._queue.put(record)

    def flush(self) -> None:
        """Return once everything queued so far is written (or after 5 s)."""
        if self._thread.is_alive():
            done = threading.Event()
            self._queue.put(done)
            done.wait(5.0)

    def close(self) -> None:
        """Write what is queued, and go on working.

        `logging.config.dictConfig` closes every handler it finds (uvicorn calls it as it
        starts) while leaving them attached to their loggers; stopping here would silence the
        access log for good. `stop()` ends the thread.
        """
        self.flush()
        super().close()

    def stop(self) -> None:
        """Write what is queued and end the thread; idempotent."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _line(self, item: Any) -> str:
        if isinstance(item, logging.LogRecord):
            return self.format(item)
        return orjson.dumps(item).decode() if self.json else str(AccessLine(item))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            lines: list[str] = []
            flushed: list[threading.Event] = []
            stop = False
            deadline = time.monotonic() + self.interval
            while True:
                if item is _STOP:
                    stop = True
                    break
                if isinstance(item, threading.Event):
                    flushed.append(item)
                else:
                    with contextlib.suppress(Exception):  # one bad line must not stop the log
                        lines.append(self._line(item))
                try:
                    item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
            if lines:
                try:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass  # stdout closed under us: nothing else to tell it to
            for event in flushed:
                event.set()
            if stop:
                return


_writer: AccessWriter | None = None


def configure_logging(
    log_format: LogFormat = "text", level: str = "info", *, access: bool = True, stream: IO[str] | None = None
) -> None:
    """Logging for a process routemw owns (`routemw serve`, its workers).

    The access log goes to `stream` (stdout by default) through a background thread, in JSON
    or `key=value` text; everything else routemw logs goes to stderr in the same format. The
    access lines are INFO, so a `level` above that, or `access=False`, turns them off.
    """
    global _writer
    numeric = logging.getLevelName(level.upper())
    handler = logging.StreamHandler(sys.stderr)
    plain = logging.Formatter("%(levelname)s:     %(message)s")
    handler.setFormatter(JsonFormatter() if log_format == "json" else plain)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    access_logger = logging.getLogger(ACCESS_LOGGER)
    access_logger.propagate = False
    access_logger.handlers.clear()
    stop_access_log()
    if not access:
        access_logger.setLevel(logging.CRITICAL + 1)
        return
    access_logger.setLevel(numeric)
    _writer = AccessWriter(stream if stream is not None else sys.stdout, json=log_format == "json")
    _writer.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter("%(message)s"))
    access_logger.addHandler(_writer)
    atexit.register(stop_access_log)


def stop_access_log() -> None:
    """Write out what is queued and end the writer thread (at exit, or as a worker process ends).

    A process forked by multiprocessing ends with `os._exit`, which runs no `atexit` handler, so
    the worker functions of `routemw serve` call this themselves.
    """
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None


def _after_fork() -> None:
    if _writer is not None:
        _writer.restart()


os.register_at_fork(after_in_child=_after_fork)
