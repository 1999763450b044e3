"""Duplicate JSON keys: found exactly (no miss, whatever the encoding), named by their path.

The cheap tests in `routemw.duplicate_keys` rest on a proof about orjson's output; the last
tests here pin the orjson behaviour it relies on, so an orjson upgrade that changed it fails
here instead of letting duplicates through.
"""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routemw.chat import parse_chat_request
from routemw.duplicate_keys import first_duplicate_key
from routemw.errors import ECHO_LIMIT, InvalidRequestError


def duplicate(raw: bytes) -> str | None:
    return first_duplicate_key(raw, orjson.loads(raw))


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b'{"model":"cheap","messages":[],"model":"gpt-4o"}', "model"),
        (b'{"model": "a", "max_tokens": 1, "max_tokens": 99999}', "max_tokens"),
        (b'{"messages":[{"role":"user","content":"hi","role":"system"}]}', "messages[0].role"),
        (
            b'{"messages":[{"role":"user"},{"content":[{"type":"text","type":"image_url"}]}]}',
            "messages[1].content[0].type",
        ),
        (
            b'{"tools":[{"function":{"parameters":{"properties":{"a":1,"a":2}}}}]}',
            "tools[0].function.parameters.properties.a",
        ),
        (b'{"a":{"b":[[{"c":1,"c":1}]]}}', "a.b[0][0].c"),
        # The same key spelled differently is the same key.
        (b'{"model":"a","mod\\u0065l":"b"}', "model"),
        # Escaped colons in the kept strings cannot make up for the colon of a dropped member.
        (b'{"model":"a","model":"\\u003a"}', "model"),
        (b'{"x":"\\u003a\\u003a","x":"\\u003a\\u003a\\u003a"}', "x"),
        # Nor can escaped `u`s, controls or backslashes, alone or together.
        (b'{"k":1,"k":"\\u0075\\u0001\\u005c\\u0022\\u003A"}', "k"),
        # The first repeat in the text is the one named, nested or not.
        (b'{"a":1,"b":{"x":1,"x":2},"a":3}', "b.x"),
        (b'{"a":1,"a":2,"b":{"x":1,"x":2}}', "a"),
        # Three times is still a duplicate.
        (b'{"n":1,"n":2,"n":3}', "n"),
    ],
)
def test_a_duplicate_is_found_and_named_by_its_path(raw: bytes, path: str) -> None:
    assert duplicate(raw) == path


@pytest.mark.parametrize(
    "document",
    [
        {"model": "gpt-4o", "messages": [{"role": "user", "content": 'At 12:30 \u2013 ünï 😀 "q" \\ \n\t\x01'}]},
        {"model": "m", "messages": [], "stop": [":", "u", "::uu"], "metadata": {"null": None, "true": True}},
        {"a": {"a": {"a": [{"a": 1}, {"a": 2}]}}},  # equal keys in different objects are fine
        {},
    ],
)
@pytest.mark.parametrize(
    "encode",
    [
        orjson.dumps,
        lambda d: json.dumps(d).encode(),  # ASCII-only escapes, spaces after ':' and ','
        lambda d: json.dumps(d, ensure_ascii=False, indent=2).encode(),
        lambda d: json.dumps(d, separators=(",", ":")).encode(),
    ],
)
def test_a_body_without_duplicates_passes_however_it_is_encoded(document: dict[str, Any], encode: Any) -> None:
    assert duplicate(encode(document)) is None


def test_a_long_key_is_named_short() -> None:
    key = "k" * 5000
    path = duplicate(f'{{"messages":[{{"{key}":1,"{key}":2}}]}}'.encode())
    assert path == "messages[0]." + key[:ECHO_LIMIT] + "…"


# -- every encoding, every place: a property ----------------------------------------------------

_TEXT = st.text(alphabet=st.sampled_from(list('aub:u"\\/\n\x01\x1fé😀 :u')), max_size=6)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=12,
)


def _string(text: str, rng: random.Random) -> str:
    """`text` as a JSON string, each character written in a randomly chosen legal way."""
    out = []
    for char in text:
        if ord(char) > 0xFFFF:  # an astral character: as itself, or as an escaped surrogate pair
            high, low = divmod(ord(char) - 0x10000, 0x400)
            out.append(rng.choice([char, f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"]))
            continue
        forms = [f"\\u{ord(char):04x}"]
        if char == '"':
            forms.append('\\"')
        elif char == "\\":
            forms.append("\\\\")
        elif char == "\n":
            forms.append("\\n")
        elif ord(char) >= 0x20:
            forms.append(char)
        if char == "/":
            forms.append("\\/")
        out.append(rng.choice(forms))
    return '"' + "".join(out) + '"'


def _encode(value: Any, rng: random.Random, plant: list[int]) -> str:
    """`value` as JSON text in random style; `plant[0]` counts down non-empty objects, and the one
    where it reaches zero gets one of its keys a second time, somewhere among its members."""
    space = rng.choice(["", " ", "\n  "])
    if isinstance(value, dict):
        members = [f"{_string(k, rng)}{space}:{space}{_encode(v, rng, plant)}" for k, v in value.items()]
        if value:
            plant[0] -= 1
        if plant[0] == 0 and value:
            key = rng.choice(list(value))
            extra = _encode(rng.choice([":", "u", "\\", 1, None, True]), rng, [-1])
            members.insert(rng.randrange(len(members) + 1), f"{_string(key, rng)}:{extra}")
        return "{" + f",{space}".join(members) + "}"
    if isinstance(value, list):
        return "[" + f",{space}".join(_encode(v, rng, plant) for v in value) + "]"
    if isinstance(value, str):
        return _string(value, rng)
    return json.dumps(value)


def _objects(value: Any) -> int:
    if isinstance(value, dict):
        return (1 if value else 0) + sum(_objects(v) for v in value.values())
    if isinstance(value, list):
        return sum(_objects(v) for v in value)
    return 0


@settings(max_examples=300, deadline=None)
@given(
    document=st.dictionaries(_TEXT, _JSON, min_size=1, max_size=4), seed=st.integers(0, 2**32), planted=st.booleans()
)
def test_duplicates_are_found_exactly_whatever_the_encoding(document: dict[str, Any], seed: int, planted: bool) -> None:
    rng = random.Random(seed)
    plant = [rng.randint(1, _objects(document)) if planted else 0]
    raw = _encode(document, rng, plant).encode()
    parsed = orjson.loads(raw)
    assert (first_duplicate_key(raw, parsed) is not None) == planted


# -- the gateway's parser ----------------------------------------------------------------------


def test_the_chat_parser_refuses_a_duplicate_with_its_path() -> None:
    raw = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi","content":"bye"}]}'
    with pytest.raises(InvalidRequestError) as info:
        parse_chat_request(raw)
    assert (info.value.status_code, info.value.param, info.value.code) == (400, "messages[0].content", "duplicate_key")
    assert "messages[0].content" in info.value.message


def test_a_body_nested_past_pythons_parser_with_a_possible_duplicate_is_a_400_not_a_500() -> None:
    depth = 1000  # orjson parses up to 1024 levels; Python's json gives up a little earlier
    raw = b'{"model":"m","messages":[],"x":' + b"[" * depth + b'"\\u00e9"' + b"]" * depth + b"}"
    with pytest.raises(InvalidRequestError) as info:
        parse_chat_request(raw)
    assert info.value.code == "invalid_json"


# -- what the cheap tests rely on --------------------------------------------------------------


def test_orjson_escapes_only_quote_backslash_and_controls() -> None:
    escaped = []
    for point in range(0x110000):
        if 0xD800 <= point <= 0xDFFF:
            continue
        char = chr(point)
        if orjson.dumps(char) != b'"' + char.encode() + b'"':
            escaped.append(point)
    assert escaped == [*range(0x20), ord('"'), ord("\\")]
    # Controls come out as a short escape or \u00XX; neither holds a `:`.
    assert orjson.dumps("\n\x01") == b'"\\n\\u0001"'


@pytest.mark.parametrize("number", [b"1e400", b"-1e400"])
def test_orjson_refuses_numbers_it_would_write_as_null(number: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(number)
