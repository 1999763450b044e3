"""Response header values built from data routemw does not control.

A header value must be visible ASCII (plus inner spaces): a character outside latin-1 makes the
ASGI server fail to encode the response start, and a CR or LF makes it refuse the response or
close the connection. Both would happen after the upstream was called and paid for. So every
value built from a request, an upstream answer or the configuration passes through here once,
where it is built (not per chunk, not per header write).

The rule is one and reversible: a character that is not visible ASCII, and `%` and `,`, are
percent-encoded as UTF-8 (RFC 3986), so `a€b` becomes `a%E2%82%ACb` and `urllib.parse.unquote`
gives the original back; `,` is encoded because the lists below are comma-separated, and `+`
because a list's last item may be `+N` (see `header_list`). Everything else is kept, so the
usual model names (`models/gemini-2.5-pro`, `llama3.1:8b`) read as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Final
from urllib.parse import quote

__all__ = ["MAX_LIST_CHARS", "config_header_value", "header_list", "header_value", "id_value"]

# Visible ASCII except `%` (the escape itself), `+` (the count) and `,` (the list separator).
_KEEP: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%+,")
_PLAIN: Final = re.compile(r"[\x21-\x24\x26-\x2a\x2d-\x7e]+")
# Proxies in front of a gateway refuse (nginx: 502) a response whose headers outgrow a few KB, so
# a list built from client data is cut to this length, with its tail counted instead of shown.
MAX_LIST_CHARS: Final = 1024
_MAX_ID_CHARS: Final = 256


def _encode(value: str) -> str:
    return value if _PLAIN.fullmatch(value) else quote(value, safe=_KEEP)


def header_value(value: str) -> str:
    """`value` fit for a header: as is when it is plain, otherwise percent-encoded."""
    return _encode(value)


# For names from the configuration (providers, route models), asked on every request: a cache
# hit costs a quarter of the check. The bound keeps names made up per request from growing it.
config_header_value = lru_cache(maxsize=1024)(header_value)


def id_value(value: str) -> str | None:
    """An upstream's request id fit for a header, or None when it is too long to be one."""
    encoded = _encode(value)
    return encoded if len(encoded) <= _MAX_ID_CHARS else None


def header_list(items: Iterable[str]) -> str:
    """`items` joined with `, `, each made plain; ends with `+N` when N more did not fit.

    No item can start with `+` once encoded, so the count cannot be mistaken for a name.
    """
    names = list(items)
    out: list[str] = []
    length = 0
    for index, item in enumerate(names):
        name = _encode(item)
        length += len(name) + 2
        if length > MAX_LIST_CHARS:
            out.append(f"+{len(names) - index}")
            break
        out.append(name)
    return ", ".join(out)
