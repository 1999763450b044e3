"""`${VAR}` and `${VAR:-default}` in configuration strings, replaced from the environment.

Every `$` in a string is syntax: it starts `${NAME}` or `${NAME:-default}`, or it is doubled
(`$$`) to mean one literal `$`. Anything else (an unterminated `${VAR`, a shell-style `$VAR`, a
lone `$`) is an error naming the path, because a string that was meant to be a reference and
is kept literally would otherwise be sent upstream as, say, an API key. The messages never
quote the string: it may be a secret. A default is taken as written, up to the first `}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from .fields import join

__all__ = ["interpolate"]

# `$$`, a well-formed reference, or (the last, empty alternative) a `$` that is neither.
_TOKEN: Final = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|)")
_NAME_START: Final = re.compile(r"[A-Za-z_]")
_ESCAPE_HINT: Final = "write `$$` for a literal `$`"


def interpolate(value: Any, path: str, env: Mapping[str, str], problems: list[str]) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            return value
        where = path or "<root>"
        found: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            if match.group(1):
                return "$"
            name, default = match.group(2), match.group(3)
            if name is None:
                found.append(_malformed(value, match.end()))
                return ""
            # As in POSIX shells and Compose files: `${VAR:-x}` uses x when VAR is unset or empty.
            if default is not None:
                return env.get(name) or default
            if name in env:
                return env[name]
            found.append(f"environment variable {name} is not set and has no default")
            return ""

        result = _TOKEN.sub(substitute, value)
        # One line per kind of problem in a string is enough to find and fix it.
        problems.extend(f"{where}: {message}" for message in dict.fromkeys(found))
        return result
    if isinstance(value, Mapping):
        return {k: interpolate(v, join(path, str(k)), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]", env, problems) for i, v in enumerate(value)]
    return value


def _malformed(value: str, after: int) -> str:
    """What is wrong with the `$` that ends just before `after`, in words that quote nothing."""
    following = value[after : after + 1]
    if following == "{":
        return f"`${{` must be followed by a variable name and a closing `}}`; {_ESCAPE_HINT}"
    if _NAME_START.match(following):
        return f"a shell-style `$VAR` is not interpolated: write `${{VAR}}`, or {_ESCAPE_HINT}"
    return f"a `$` must start `${{VAR}}`; {_ESCAPE_HINT}"
