"""Server-sent events: an I/O-free incremental decoder and the encoder for our own output.

The decoder follows the WHATWG event-stream algorithm: lines end at CRLF, LF or CR and nowhere
else (so a raw U+2028 inside JSON, which `str.splitlines()` would split, survives), `:` lines are
comments, several `data:` lines join with LF, a blank line dispatches. Input may be cut at any
byte, including between the CR and LF of one line ending.

It is linear in its input however the input is cut: each piece is scanned once, from where the
last line ended, and the remembered positions of the next CR and LF are reused until passed, so
a piece of many CR-ended lines is not rescanned for an LF per line. The unfinished line is kept
as the pieces it arrived in and joined once, when it ends; a line of N bytes in 1-byte reads
costs O(N), not the O(N^2) of re-copying a growing buffer on every read.

Its memory is bounded by `max_event_bytes`: a line, or an event's data, longer than that raises
`EventTooLargeError` as soon as it passes the limit, without waiting for the line to end.

One deliberate divergence: at end of input a pending event with data is dispatched even without
its closing blank line. Browsers drop it; for a gateway the last event of an upstream that
forgot the final newline (Azure has been recorded ending `data: [DONE]` bare) is worth keeping.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Final

__all__ = ["EventTooLargeError", "SSEDecoder", "ServerSentEvent", "encode_comment", "encode_data"]

_BOM: Final = b"\xef\xbb\xbf"
_CR: Final = 0x0D
_LF: Final = 0x0A


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: bytes
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class EventTooLargeError(ValueError):
    """A line or an event's data passed the decoder's limit.

    `events` are the events the same `feed` completed before it, which a caller may still pass
    on; the decoder refuses any further input.
    """

    def __init__(self, limit: int, events: list[ServerSentEvent]) -> None:
        super().__init__(f"an SSE line or event larger than {limit} bytes")
        self.limit = limit
        self.events = events


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events completed so far."""

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_failed",
        "_has_data",
        "_id",
        "_limit",
        "_pending",
        "_pending_size",
        "_retry",
        "_skip_lf",
        "_started",
    )

    def __init__(self, *, max_event_bytes: int | None = None) -> None:
        self._limit = sys.maxsize  # an int even when unbounded: one comparison per line, no None test
        self.max_event_bytes = max_event_bytes
        self._pending: list[bytes] = []  # the unfinished line, as the pieces it came in
        self._pending_size = 0
        self._skip_lf = False  # the previous feed ended in CR: a leading LF belongs to it
        self._started = False
        self._failed = False
        self._data: list[bytes] = []
        self._data_size = 0
        self._has_data = False
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    @property
    def max_event_bytes(self) -> int | None:
        """The longest line, and the most data one event may carry; None for no limit."""
        return None if self._limit == sys.maxsize else self._limit

    @max_event_bytes.setter
    def max_event_bytes(self, value: int | None) -> None:
        self._limit = sys.maxsize if value is None else value

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._failed:
            raise EventTooLargeError(self._limit, [])
        if not chunk:
            return []  # an empty read must not forget a CR still waiting for its LF
        start = 0
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == _LF:
                start = 1
        if not self._started:
            chunk = b"".join(self._pending) + chunk[start:]
            start = 0
            self._pending, self._pending_size = [], 0
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._pending, self._pending_size = [chunk], len(chunk)
                return []
            self._started = True
            if chunk.startswith(_BOM):
                start = len(_BOM)
        events: list[ServerSentEvent] = []
        length = len(chunk)
        lf = cr = -1  # the next LF and CR at or after `start`; `length` when there is none
        while True:
            if lf < start:
                lf = chunk.find(b"\n", start)
                if lf < 0:
                    lf = length
            if cr < start:
                cr = chunk.find(b"\r", start)
                if cr < 0:
                    cr = length
            end = cr if cr < lf else lf
            if end == length:
                break
            if self._pending:
                self._pending.append(chunk[start:end])
                line = b"".join(self._pending)
                self._pending, self._pending_size = [], 0
            else:
                line = chunk[start:end]
            start = end + 1
            if end == cr:
                if start < length:
                    if chunk[start] == _LF:
                        start += 1
                else:
                    self._skip_lf = True
            if not self._accept(line, events):
                raise self._fail(events)
        if start < length:
            rest = chunk[start:] if start else chunk
            self._pending.append(rest)
            self._pending_size += len(rest)
            if self._pending_size > self._limit:
                raise self._fail(events)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of input: the last unterminated line, and an undispatched event with data."""
        if self._failed:
            raise EventTooLargeError(self._limit, [])
        events: list[ServerSentEvent] = []
        if self._pending:
            line = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
            if not self._accept(line, events):
                raise self._fail(events)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _fail(self, events: list[ServerSentEvent]) -> EventTooLargeError:
        # Nothing more can be decoded sensibly, and what is held goes at once.
        self._failed = True
        self._pending, self._pending_size = [], 0
        self._data, self._data_size = [], 0
        return EventTooLargeError(self._limit, events)

    def _accept(self, line: bytes, events: list[ServerSentEvent]) -> bool:
        """Take one line (appending the event it dispatches); False when it breaks the limit."""
        if len(line) > self._limit:
            return False
        if not line:
            event = self._dispatch()
            if event is not None:
                events.append(event)
            return True
        if line[0] == 0x3A:  # ":" starts a comment
            return True
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._data_size += len(value) + 1
            self._has_data = True
            if self._data_size > self._limit + 1:
                return False
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        return True

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._has_data:
            self._event = ""
            return None
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = ServerSentEvent(data=data, event=self._event or "message", id=self._id, retry=self._retry)
        self._data = []
        self._data_size = 0
        self._has_data = False
        self._event = ""
        return event


def encode_data(data: bytes) -> bytes:
    """One SSE event carrying `data`; a payload with line breaks becomes several data lines."""
    if b"\n" in data or b"\r" in data:
        lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        return b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
    return b"data: " + data + b"\n\n"


def encode_comment(text: str = "") -> bytes:
    """A comment line for keep-alive. No blank line after it: some clients emit an empty event."""
    return b": " + text.encode() + b"\n" if text else b":\n"
