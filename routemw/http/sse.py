"""Server-sent events: an I/O-free incremental decoder and the encoder for our own output.

The decoder follows the WHATWG event-stream algorithm: lines end at CRLF, LF or CR and nowhere
else (so a raw U+2028 inside JSON, which `str.splitlines()` would split, survives), `:` lines are
comments, several `data:` lines join with LF, a blank line dispatches. Input may be cut at any
byte, including between the CR and LF of one line ending.

One deliberate divergence: at end of input a pending event with data is dispatched even without
its closing blank line. Browsers drop it; for a gateway the last event of an upstream that
forgot the final newline (Azure has been recorded ending `data: [DONE]` bare) is worth keeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["SSEDecoder", "ServerSentEvent", "encode_comment", "encode_data"]

_BOM: Final = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    data: bytes
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events completed so far."""

    __slots__ = ("_buffer", "_data", "_event", "_has_data", "_id", "_retry", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._skip_lf = False  # the previous feed ended in CR: a leading LF belongs to it
        self._started = False
        self._data: list[bytes] = []
        self._has_data = False
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if not chunk:
            return []  # an empty read must not forget a CR still waiting for its LF
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._started and buffer:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                self._buffer = buffer
                return []
            self._started = True
            if buffer.startswith(_BOM):
                buffer = buffer[len(_BOM) :]
        events: list[ServerSentEvent] = []
        start = 0
        length = len(buffer)
        while start < length:
            lf = buffer.find(b"\n", start)
            cr = buffer.find(b"\r", start, lf if lf != -1 else length)
            if cr != -1:
                end, next_start = cr, cr + 1
                if next_start < length:
                    if buffer[next_start] == 0x0A:
                        next_start += 1
                else:
                    self._skip_lf = True
            elif lf != -1:
                end, next_start = lf, lf + 1
            else:
                break
            event = self._line(buffer[start:end])
            if event is not None:
                events.append(event)
            start = next_start
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of input: the last unterminated line, and an undispatched event with data."""
        events: list[ServerSentEvent] = []
        if self._buffer:
            line, self._buffer = self._buffer, b""
            event = self._line(line)
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ":" starts a comment
            return None
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
            self._has_data = True
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._has_data:
            self._event = ""
            return None
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        event = ServerSentEvent(data=data, event=self._event or "message", id=self._id, retry=self._retry)
        self._data = []
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
