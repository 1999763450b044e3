"""The SSE decoder and encoder: line endings, chunk boundaries, fields, and real provider recordings."""

from __future__ import annotations

import itertools
import random
import tracemalloc
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakes import RECORDINGS, awkward_pieces
from hypothesis import given, settings
from hypothesis import strategies as st

from routemw.http.sse import EventTooLargeError, ServerSentEvent, SSEDecoder, encode_comment, encode_data


def decode(chunks: Iterable[bytes]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def split_at(data: bytes, offsets: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(offsets), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def random_splits(data: bytes, seed: int, rounds: int = 25) -> list[list[bytes]]:
    """Cuttings of `data` into non-empty chunks at seeded random offsets."""
    rng = random.Random(seed)
    cuttings = []
    for _ in range(rounds):
        count = rng.randint(1, min(40, max(1, len(data) - 1)))
        offsets = rng.sample(range(1, len(data)), min(count, len(data) - 1))
        cuttings.append(split_at(data, offsets))
    return cuttings


# --- line endings and fields ------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_each_line_ending_frames_events(eol: bytes) -> None:
    stream = b"data: one" + eol + eol + b"data: two" + eol + b"data: three" + eol + eol
    assert decode([stream]) == [ServerSentEvent(data=b"one"), ServerSentEvent(data=b"two\nthree")]


def test_mixed_line_endings_in_one_stream() -> None:
    stream = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r"
    assert decode([stream]) == [ServerSentEvent(data=b"a\nb\nc"), ServerSentEvent(data=b"d")]


def test_cr_followed_by_lf_is_one_line_ending_not_a_blank_line() -> None:
    # If CRLF counted as two endings, "a" and "b" would be dispatched separately.
    assert decode([b"data: a\r\ndata: b\r\n\r\n"]) == [ServerSentEvent(data=b"a\nb")]


def test_comments_are_ignored() -> None:
    stream = b": keep-alive\n:\ndata: x\n: between\ndata: y\n\n:only a comment\n\n"
    assert decode([stream]) == [ServerSentEvent(data=b"x\ny")]


def test_multiline_data_is_joined_with_lf() -> None:
    assert decode([b'data: {\ndata:   "a": 1\ndata: }\n\n']) == [ServerSentEvent(data=b'{\n  "a": 1\n}')]


def test_data_with_and_without_the_space() -> None:
    events = decode([b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\n\ndata: \n\n"])
    # Exactly one leading space is removed; a second one belongs to the value.
    assert [e.data for e in events] == [b"x", b"x", b" x", b"", b""]


def test_field_without_colon_is_a_field_with_an_empty_value() -> None:
    events = decode([b"data\ndata\n\nevent: e\nevent\ndata: x\n\n"])
    assert events == [ServerSentEvent(data=b"\n"), ServerSentEvent(data=b"x", event="message")]


def test_event_id_and_retry_fields() -> None:
    stream = b"event: content_block_delta\nid: 42\nretry: 1500\ndata: {}\n\n"
    assert decode([stream]) == [ServerSentEvent(data=b"{}", event="content_block_delta", id="42", retry=1500)]


def test_event_name_resets_after_each_dispatch_but_id_persists() -> None:
    events = decode([b"event: ping\nid: 7\ndata: 1\n\ndata: 2\n\n"])
    assert events == [ServerSentEvent(data=b"1", event="ping", id="7"), ServerSentEvent(data=b"2", id="7")]


def test_event_name_without_data_does_not_leak_into_the_next_event() -> None:
    assert decode([b"event: lost\n\ndata: x\n\n"]) == [ServerSentEvent(data=b"x", event="message")]


def test_invalid_retry_and_id_with_nul_are_ignored() -> None:
    events = decode([b"retry: soon\nretry: -5\nid: a\x00b\ndata: x\n\n"])
    assert events == [ServerSentEvent(data=b"x", id=None, retry=None)]


def test_unknown_fields_are_ignored() -> None:
    assert decode([b"foo: bar\ndata: x\nbaz\n\n"]) == [ServerSentEvent(data=b"x")]


def test_blank_lines_without_data_dispatch_nothing() -> None:
    assert decode([b"\n\n\r\n\r\r\n"]) == []
    assert decode([b"id: 1\nevent: e\nretry: 5\n\n\n"]) == []


def test_close_flushes_a_final_event_without_trailing_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: first\n\ndata: last") == [ServerSentEvent(data=b"first")]
    assert decoder.close() == [ServerSentEvent(data=b"last")]


def test_close_flushes_a_terminated_line_without_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: done\ndata: [DONE]\n") == []
    assert decoder.close() == [ServerSentEvent(data=b"[DONE]", event="done")]


def test_close_with_nothing_pending_returns_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\n: trailing comment") == [ServerSentEvent(data=b"x")]
    assert decoder.close() == []


# --- BOM and Unicode --------------------------------------------------------------------------

BOM = "\ufeff".encode()


def test_leading_bom_is_stripped() -> None:
    assert decode([BOM + b"data: x\n\n"]) == [ServerSentEvent(data=b"x")]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_leading_bom_split_across_feeds(cut: int) -> None:
    stream = BOM + b"data: x\n\n"
    assert decode([stream[:cut], stream[cut:]]) == [ServerSentEvent(data=b"x")]
    assert decode([bytes([b]) for b in stream]) == [ServerSentEvent(data=b"x")]


def test_only_one_bom_is_stripped() -> None:
    # A second BOM is part of the first field name, so that line is an unknown field.
    assert decode([BOM + BOM + b"data: x\n\ndata: y\n\n"]) == [ServerSentEvent(data=b"y")]


def test_bom_later_in_the_stream_is_kept() -> None:
    assert decode([b"data: " + BOM + b"x\n\n"]) == [ServerSentEvent(data=BOM + b"x")]


def test_bytes_that_merely_start_like_a_bom_are_kept() -> None:
    assert decode([b"\xef", b"\xbbdata: x\n\ndata: y\n\n"]) == [ServerSentEvent(data=b"y")]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"], ids=["U+2028", "U+2029", "NEL"])
def test_unicode_line_separators_in_json_do_not_split_lines(separator: str) -> None:
    payload = orjson.dumps({"text": f"before{separator}after"})
    assert separator.encode() in payload  # orjson writes these raw, as JSON allows
    line = "data: " + payload.decode()
    assert len(line.splitlines()) == 2  # what a splitlines()-based reader would do
    events = decode([line.encode() + b"\n\n"])
    assert events == [ServerSentEvent(data=payload)]
    assert orjson.loads(events[0].data) == {"text": f"before{separator}after"}


def test_other_splitlines_separators_do_not_split_lines() -> None:
    data = b"v\x0bf\x0cg\x1cr\x1dr\x1eu"
    assert len(data.decode().splitlines()) == 6
    assert decode([b"data: " + data + b"\n\n"]) == [ServerSentEvent(data=data)]


# --- chunk boundaries -------------------------------------------------------------------------

TRICKY = (
    BOM
    + b": comment\r\n"
    + b"event: first\r\nid: 1\r\ndata: a\r\ndata:b\r\n\r\n"
    + b"data: " + orjson.dumps({"t": "x\u2028y\u2029z"}) + b"\r\r"
    + b"retry: 300\ndata\n\n"
    + b"event: last\rdata: end\r\n"
)  # fmt: skip
TRICKY_EVENTS = [
    ServerSentEvent(data=b"a\nb", event="first", id="1"),
    ServerSentEvent(data=orjson.dumps({"t": "x\u2028y\u2029z"}), id="1"),
    ServerSentEvent(data=b"", id="1", retry=300),
    ServerSentEvent(data=b"end", event="last", id="1", retry=300),
]


def test_tricky_stream_whole() -> None:
    assert decode([TRICKY]) == TRICKY_EVENTS


@pytest.mark.parametrize("offset", range(len(TRICKY) + 1))
def test_tricky_stream_cut_at_every_offset(offset: int) -> None:
    assert decode([TRICKY[:offset], TRICKY[offset:]]) == TRICKY_EVENTS


def test_tricky_stream_cut_at_every_pair_of_offsets() -> None:
    for i in range(1, len(TRICKY)):
        for j in range(i + 1, len(TRICKY)):
            assert decode([TRICKY[:i], TRICKY[i:j], TRICKY[j:]]) == TRICKY_EVENTS, (i, j)


def test_tricky_stream_one_byte_at_a_time() -> None:
    assert decode([bytes([b]) for b in TRICKY]) == TRICKY_EVENTS


def test_cut_between_cr_and_lf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [ServerSentEvent(data=b"a\nb")]
    assert decoder.feed(b"\n") == []  # the LF of the dispatching CRLF, not another blank line
    assert decoder.close() == []


def test_feed_returns_events_as_soon_as_they_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n\ndata: 2\n") == [ServerSentEvent(data=b"1")]
    assert decoder.feed(b"\n") == [ServerSentEvent(data=b"2")]


def test_empty_chunk_between_cr_and_lf_changes_nothing() -> None:
    stream = b"data: a\r\ndata: b\r\n\r\n"
    assert decode([b"data: a\r", b"", b"\ndata: b\r\n\r\n"]) == decode([stream]) == [ServerSentEvent(data=b"a\nb")]


def test_empty_chunks_elsewhere_change_nothing() -> None:
    assert decode([b"", b"data: a\n", b"", b"\n", b""]) == [ServerSentEvent(data=b"a")]


_line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30)
_multiline_text = st.lists(_line_text, min_size=2, max_size=4).map("\n".join)


# --- linear work, bounded memory ----------------------------------------------------------------


class Scanned(bytes):
    """Bytes that count how far `find` looks, so a test can see the decoder's scanning work.

    A count of work, not a timing: the decoder may call `find` on the piece it was fed (a slice or
    a join is plain bytes and is not counted), and what is counted is how many bytes each search
    covered, up to its match or to where it stopped.
    """

    covered = 0

    def find(self, sub: Any, start: Any = None, end: Any = None) -> int:
        index = super().find(sub, start, end)
        begin = 0 if start is None else start
        stop = index + 1 if index >= 0 else (len(self) if end is None else end)
        Scanned.covered += max(stop - begin, 0)
        return index


def scanned_work(pieces: Iterable[bytes]) -> tuple[list[ServerSentEvent], int]:
    Scanned.covered = 0
    events = decode(Scanned(piece) for piece in pieces)
    return events, Scanned.covered


def test_a_long_line_fed_in_small_pieces_is_scanned_once() -> None:
    # The quadratic case: a line that does not end for many reads. Each piece is searched for a
    # line ending once (a CR and an LF search each), never the whole line again per read.
    line = b"data: " + b"x" * 200_000
    pieces = [b"data: ok\n\n", *awkward_pieces(line, [1, 7, 64, 3, 500]), b"\n\n"]
    events, covered = scanned_work(pieces)

    assert events == [ServerSentEvent(data=b"ok"), ServerSentEvent(data=line[6:])]
    total = sum(map(len, pieces))
    assert total <= covered <= 2 * total + 2 * len(pieces)


def test_many_cr_ended_lines_in_one_piece_are_scanned_once() -> None:
    # With no LF anywhere, looking for "the next LF" per line would cover the rest of the piece
    # each time; the decoder remembers that there is none.
    piece = b"data: x\r\r" * 20_000
    events, covered = scanned_work([piece])

    assert events == [ServerSentEvent(data=b"x")] * 20_000
    assert covered <= 2 * len(piece) + 2


def test_an_unfinished_line_is_held_as_the_pieces_it_came_in() -> None:
    # The other half of the quadratic case: re-copying the growing line on every read. The pieces
    # are kept alive here, so a decoder that holds them by reference adds almost nothing; one
    # that copies them into a buffer holds the whole line again.
    pieces = awkward_pieces(b"data: " + b"y" * (2 * 1024 * 1024), [2048])
    decoder = SSEDecoder()
    tracemalloc.start()
    try:
        for piece in pieces:
            assert decoder.feed(piece) == []
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 256 * 1024
    assert decoder.feed(b"\n\n") == [ServerSentEvent(data=b"y" * (2 * 1024 * 1024))]


LIMIT = 64


def test_a_line_past_the_limit_is_refused_before_it_ends() -> None:
    decoder = SSEDecoder(max_event_bytes=LIMIT)
    assert decoder.feed(b"data: " + b"a" * (LIMIT - 6)) == []  # exactly the limit: still fine
    with pytest.raises(EventTooLargeError) as caught:
        decoder.feed(b"a")  # no line ending yet: refused as soon as it is one byte too long

    assert caught.value.limit == LIMIT and caught.value.events == []
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"\n\n")  # a decoder that refused takes nothing more
    with pytest.raises(EventTooLargeError):
        decoder.close()


def test_an_event_whose_lines_together_pass_the_limit_is_refused() -> None:
    decoder = SSEDecoder(max_event_bytes=LIMIT)
    line = b"data: " + b"b" * 40 + b"\n"
    assert decoder.feed(b"data: ok\n\n") == [ServerSentEvent(data=b"ok")]
    with pytest.raises(EventTooLargeError):
        decoder.feed(line + line)


def test_events_completed_before_the_oversized_line_travel_with_the_refusal() -> None:
    decoder = SSEDecoder(max_event_bytes=LIMIT)
    with pytest.raises(EventTooLargeError) as caught:
        decoder.feed(b"data: 1\n\ndata: 2\n\ndata: " + b"c" * LIMIT)

    assert caught.value.events == [ServerSentEvent(data=b"1"), ServerSentEvent(data=b"2")]


def test_a_comment_or_unknown_field_is_bounded_too() -> None:
    for line in (b":" + b"k" * LIMIT, b"x-padding: " + b"k" * LIMIT):
        with pytest.raises(EventTooLargeError):
            decode_bounded([line + b"\n", b"data: x\n\n"], LIMIT)


def decode_bounded(chunks: Iterable[bytes], limit: int) -> list[ServerSentEvent]:
    decoder = SSEDecoder(max_event_bytes=limit)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


@settings(max_examples=300, database=None, deadline=None)
@given(
    payloads=st.lists(st.one_of(_line_text, _multiline_text), max_size=6),
    cuts=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), max_size=12),
    limit=st.integers(min_value=1, max_value=48),
)
def test_the_limit_refuses_exactly_the_streams_with_a_long_line_or_event(
    payloads: list[str], cuts: list[float], limit: int
) -> None:
    stream = b"".join(encode_data(p.encode()) for p in payloads)
    offsets = sorted({int(c * len(stream)) for c in cuts})
    unbounded = decode([stream])
    longest_line = max((len(line) for line in stream.replace(b"\r", b"\n").split(b"\n")), default=0)
    too_long = longest_line > limit or any(len(e.data) > limit for e in unbounded)
    if too_long:
        with pytest.raises(EventTooLargeError):
            decode_bounded(split_at(stream, offsets), limit)
    else:
        assert decode_bounded(split_at(stream, offsets), limit) == unbounded


# --- encoder ----------------------------------------------------------------------------------


def test_encode_data_single_line() -> None:
    assert encode_data(b'{"a":1}') == b'data: {"a":1}\n\n'


def test_encode_data_with_newlines_becomes_several_data_lines() -> None:
    encoded = encode_data(b"one\ntwo\n\nfour")
    assert encoded == b"data: one\ndata: two\ndata: \ndata: four\n\n"
    assert decode([encoded]) == [ServerSentEvent(data=b"one\ntwo\n\nfour")]


@pytest.mark.parametrize("payload", [b"", b"\n", b"x\n", b"\nx", b" leading space", b": looks like a comment"])
def test_encode_data_round_trips_edge_payloads(payload: bytes) -> None:
    assert decode([encode_data(payload)]) == [ServerSentEvent(data=payload)]


def test_encode_data_normalises_cr_and_crlf_to_lf() -> None:
    # SSE cannot carry a CR inside data: every line ending decodes as LF.
    encoded = encode_data(b"a\r\nb\rc")
    assert encoded == b"data: a\ndata: b\ndata: c\n\n"
    assert decode([encoded]) == [ServerSentEvent(data=b"a\nb\nc")]


def test_encode_comment() -> None:
    assert encode_comment() == b":\n"
    assert encode_comment("keep-alive") == b": keep-alive\n"
    stream = encode_comment() + encode_data(b"x") + encode_comment("ping") + encode_data(b"y") + encode_comment()
    assert decode([stream]) == [ServerSentEvent(data=b"x"), ServerSentEvent(data=b"y")]


def test_comment_between_data_lines_does_not_dispatch() -> None:
    # encode_comment() ends without a blank line, so it cannot end an event in progress.
    stream = b"data: a\n" + encode_comment("ping") + b"data: b\n\n"
    assert decode([stream]) == [ServerSentEvent(data=b"a\nb")]


@settings(max_examples=300, database=None, deadline=None)
@given(
    payloads=st.lists(st.one_of(_line_text, _multiline_text), max_size=8),
    cuts=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), max_size=12),
    comments=st.booleans(),
)
def test_encode_then_decode_round_trip(payloads: list[str], cuts: list[float], comments: bool) -> None:
    separator = encode_comment("ka") if comments else b""
    stream = BOM + separator + b"".join(encode_data(p.encode()) + separator for p in payloads)
    offsets = sorted({int(c * len(stream)) for c in cuts})
    events = decode(split_at(stream, offsets))
    assert [e.data.decode() for e in events] == payloads
    assert all(e.event == "message" for e in events)


# --- genuine provider recordings --------------------------------------------------------------


def _recordings(pattern: str) -> list[Path]:
    return sorted(RECORDINGS.glob(pattern)) if RECORDINGS.is_dir() else []


SSE_FILES = [*_recordings("openai/*.sse"), *_recordings("anthropic/*.sse"), *_recordings("gemini/*.sse")]
SSE_FILES += _recordings("azure/*.sse")


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_recordings_are_present() -> None:
    names = {_id(p) for p in SSE_FILES}
    assert {"openai/stream-text.sse", "anthropic/stream-thinking.sse", "gemini/stream-text.sse"} <= names
    assert "azure/stream-async-filter.sse" in names


@pytest.mark.parametrize("path", SSE_FILES, ids=_id)
def test_recording_decodes_identically_however_it_is_cut(path: Path) -> None:
    raw = path.read_bytes()
    whole = decode([raw])
    assert whole, "a recording must yield events"
    assert len(whole) == raw.count(b"data:")  # every recorded event has a single data line
    assert decode([bytes([b]) for b in raw]) == whole
    for seed in range(4):
        for chunks in random_splits(raw, seed=sum(path.name.encode()) * 10 + seed):
            assert b"".join(chunks) == raw
            assert decode(chunks) == whole


@pytest.mark.parametrize("path", [p for p in SSE_FILES if p.stat().st_size <= 4096], ids=_id)
def test_small_recording_cut_at_every_offset(path: Path) -> None:
    raw = path.read_bytes()
    whole = decode([raw])
    for offset in range(1, len(raw)):
        assert decode([raw[:offset], raw[offset:]]) == whole, offset


@pytest.mark.parametrize("path", _recordings("openai/*.sse"), ids=_id)
def test_openai_recording_payloads_are_json_then_done(path: Path) -> None:
    events = decode([path.read_bytes()])
    assert events[-1].data == b"[DONE]"
    chunks = [orjson.loads(e.data) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(e.event == "message" and e.id is None for e in events)
    assert any(c["choices"] and c["choices"][0]["finish_reason"] for c in chunks)
    assert chunks[-1]["choices"] == [] and "usage" in chunks[-1]


def test_openai_text_recording_content() -> None:
    events = decode([(RECORDINGS / "openai" / "stream-text.sse").read_bytes()])
    chunks = [orjson.loads(e.data) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}


@pytest.mark.parametrize("path", _recordings("anthropic/*.sse"), ids=_id)
def test_anthropic_recording_event_names_match_payload_types(path: Path) -> None:
    events = decode([path.read_bytes()])
    names = [e.event for e in events]
    assert names[0] == "message_start"
    assert names[-1] == "message_stop"
    assert "ping" in names and "content_block_delta" in names
    for event in events:
        assert orjson.loads(event.data)["type"] == event.event


@pytest.mark.parametrize(
    ("name", "count"),
    [("stream-text.sse", 3), ("stream-thinking.sse", 23), ("stream-function-call-thought-signature.sse", 2)],
)
def test_gemini_recordings_use_crlf_and_yield_the_expected_events(name: str, count: int) -> None:
    raw = (RECORDINGS / "gemini" / name).read_bytes()
    assert b"\r\n\r\n" in raw and raw.count(b"\r") == raw.count(b"\n")
    events = decode([raw])
    assert len(events) == count
    payloads = [orjson.loads(e.data) for e in events]
    assert all("candidates" in p and "usageMetadata" in p for p in payloads)
    assert all(b"\r" not in e.data for e in events)


def test_gemini_text_recording_prompt_token_counts() -> None:
    events = decode([(RECORDINGS / "gemini" / "stream-text.sse").read_bytes()])
    counts = [orjson.loads(e.data)["usageMetadata"]["promptTokenCount"] for e in events]
    assert counts == [15, 15, 13]


def test_azure_final_done_without_newline_is_delivered_by_close() -> None:
    raw = (RECORDINGS / "azure" / "stream-async-filter.sse").read_bytes()
    assert raw.endswith(b"data: [DONE]")
    decoder = SSEDecoder()
    fed = decoder.feed(raw)
    assert all(e.data != b"[DONE]" for e in fed)
    assert decoder.close() == [ServerSentEvent(data=b"[DONE]")]
    chunks = [orjson.loads(e.data) for e in fed]
    assert "prompt_filter_results" in chunks[0]
    assert any("content_filter_offsets" in choice for c in chunks for choice in c["choices"])
