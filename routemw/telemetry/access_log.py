"""The access log: one line per finished request on the `routemw.access` logger.

Each line is made from the request's usage record (plus method, path and fallbacks), never from
the request itself, so it cannot carry a key or message content. On the event loop a line costs
a dict of the fields and a `LogRecord`; nothing is formatted there. The record's message is an
`AccessLine`, which renders itself (`key=value ...`) only when a handler asks for it, and the
fields ride along as `record.access` for JSON.

`configure_logging` is what `routemw serve` uses: the access logger hands its records to a
`QueueHandler`, and a `QueueListener` thread formats and writes them, flushing once the queue is
empty, so a burst of lines costs one flush and the event loop never waits on a write. A host
that mounts the gateway attaches its own handlers to `routemw.access` instead (a `QueueHandler`
too, ideally: a plain `StreamHandler` writes on the event loop).
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from collections.abc import Mapping
from typing import IO, Any, Final, Literal

import orjson

from ..usage import UsageRecord

__all__ = ["ACCESS_FIELDS", "ACCESS_LOGGER", "AccessLine", "AccessLog", "JsonFormatter", "configure_logging"]

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


class _HandOff(logging.handlers.QueueHandler):
    """A `QueueHandler` that hands records over as they are: the listener thread formats them.

    The stock `prepare` formats the message on the caller's thread (to make records picklable for
    a multiprocessing queue); this queue stays in the process.
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


class _LineWriter(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each line, and flushes only when no more are waiting."""

    def __init__(self, stream: IO[str], pending: queue.SimpleQueue[Any]) -> None:
        super().__init__(stream)
        self._pending = pending

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if self._pending.empty():
                self.stream.flush()
        except Exception:
            self.handleError(record)


_listener: logging.handlers.QueueListener | None = None


def configure_logging(
    log_format: LogFormat = "text", level: str = "info", *, access: bool = True, stream: IO[str] | None = None
) -> None:
    """Logging for a process routemw owns (`routemw serve`, its workers).

    The access log goes to `stream` (stdout by default) through a background thread, in JSON
    or `key=value` text; everything else routemw logs goes to stderr in the same format. The
    access lines are INFO, so a `level` above that, or `access=False`, turns them off.
    """
    global _listener
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
    if _listener is not None:
        _listener.stop()
        _listener = None
    if not access:
        access_logger.setLevel(logging.CRITICAL + 1)
        return
    access_logger.setLevel(numeric)
    pending: queue.SimpleQueue[Any] = queue.SimpleQueue()
    writer = _LineWriter(stream if stream is not None else sys.stdout, pending)
    writer.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter("%(message)s"))
    access_logger.addHandler(_HandOff(pending))
    _listener = logging.handlers.QueueListener(pending, writer)
    _listener.start()
    atexit.register(_stop_listener)


def _stop_listener() -> None:
    """Write out what is queued (at exit)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None
