"""Finding a duplicated object key in a JSON body, exactly, at almost no cost when there is none.

Why it matters: orjson keeps the last of two equal keys, so every check routemw makes (account,
allow-list, capabilities, limits) sees the last `model`, while a passthrough forwards the
client's bytes with both, and an upstream that keeps the first would serve a model nobody
checked. So a body with a duplicate key, at any depth, is refused.

orjson cannot report duplicates, and parsing again with `json.loads(object_pairs_hook=...)`
costs about five times orjson's parse. So that exact check runs only when neither of two
cheaper tests can rule duplicates out. Both compare the client's bytes `raw` with `canon`, orjson's
compact re-encoding of what it parsed (a fraction of the parse's cost):

1. `raw == canon`: the client sent canonical compact JSON (httpx, the OpenAI SDKs,
   `JSON.stringify`), which has no duplicates since `canon` cannot. One memcmp.
2. `weight(raw) == weight(canon)`, where `weight` counts the bytes `:` and `u`. Proof that
   equality means no duplicate: drop from `raw` every member orjson discarded; what is left
   encodes exactly the parsed value, as `canon` does. Both have one `:` per member, and the same
   `true`/`null` literals (their `u`s); whitespace and numbers have neither byte (orjson refuses
   numbers it would write as `null`). Inside strings, a character written as itself counts the
   same in both (orjson escapes only `"`, `\\` and controls); a short escape (`\\n`) counts 0 in
   both; a `\\uXXXX` escape counts one `u` in `raw`, and in `canon` one for `:` or `u` (written
   as themselves) or a control (orjson's own `\\u00XX`), else 0. So what is left weighs at least
   `canon`, and each discarded member adds its own `:`: duplicates make `weight(raw)` strictly
   larger. Escapes other than for `:`, `u` and controls (`\\u00e9` from an ASCII-only encoder)
   make it larger too, and only send that body to the exact check.

Measured on a 2-core shared machine (`parse_chat_request` with and without the check, best of
several runs): a 2 KB body gains about 1 us when canonical, 5 us otherwise, 20 us when it has
`\\u` escapes of non-ASCII text; a 200 KB body about 35 us, 350 us and 800 us (its parse alone
is about 200 us). The OpenAI SDK (through httpx) sends canonical bodies.

`tests/test_duplicate_keys.py` pins the orjson behaviour the proof relies on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson

from .errors import echo

__all__ = ["first_duplicate_key"]


class _Members(list[tuple[str, Any]]):
    """An object's members in document order, duplicates kept (the exact check's view)."""


def first_duplicate_key(raw: bytes, parsed: Any) -> str | None:
    """The path of the first repeated key in `raw` (`messages[0].role`), or None when there is none.

    `parsed` is orjson's reading of `raw`. Raises `RecursionError` only for a body nested deeper
    than Python's own parser goes, and only when the cheap tests could not rule duplicates out.
    """
    try:
        canon = orjson.dumps(parsed)
    except orjson.JSONEncodeError:
        canon = b""  # cannot happen for what orjson itself parsed; the exact check decides then
    if raw == canon:
        return None
    if raw.count(b":") + raw.count(b"u") == canon.count(b":") + canon.count(b"u"):
        return None
    try:
        json.loads(raw, object_pairs_hook=_unique)
    except _Repeated:
        # There is one: parse again keeping every member, to name the first in the text.
        return _find(json.loads(raw, object_pairs_hook=_Members))
    return None


class _Repeated(Exception):
    """An object repeats a key (raised from inside `json.loads`, to stop at the first)."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # `json`'s own object building plus one length comparison: the exact check costs little
    # more than the parse, and walking the document is left to bodies that have a repeat.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _Repeated
    return members


def _find(document: Any) -> str | None:
    # Depth first in document order (a member's value is searched before the next member's key),
    # so the repeat named is the first one in the text. An explicit stack rather than recursion:
    # the body may be nested as deep as the parser allowed.
    stack: list[tuple[str, Iterator[tuple[str | int, Any]], set[str] | None]] = []

    def enter(path: str, value: Any) -> None:
        if isinstance(value, _Members):
            stack.append((path, iter(value), set()))
        elif isinstance(value, list):
            stack.append((path, enumerate(value), None))

    enter("", document)
    while stack:
        path, members, seen = stack[-1]
        item = next(members, None)
        if item is None:
            stack.pop()
            continue
        name, child = item
        if seen is None:
            child_path = f"{path}[{name}]"
        else:
            key = str(name)
            child_path = f"{path}.{echo(key)}" if path else echo(key)
            if key in seen:
                return child_path
            seen.add(key)
        enter(child_path, child)
    return None
