"""`${VAR}` and `${VAR:-default}` in configuration strings, replaced from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from .fields import join

__all__ = ["interpolate"]

_VAR: Final = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def interpolate(value: Any, path: str, env: Mapping[str, str], problems: list[str]) -> Any:
    if isinstance(value, str):
        if "$" not in value:
            return value

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            # As in POSIX shells and Compose files: `${VAR:-x}` uses x when VAR is unset or empty.
            if default is not None:
                return env.get(name) or default
            if name in env:
                return env[name]
            problems.append(f"{path or '<root>'}: environment variable {name} is not set and has no default")
            return ""

        return _VAR.sub(substitute, value)
    if isinstance(value, Mapping):
        return {k: interpolate(v, join(path, str(k)), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]", env, problems) for i, v in enumerate(value)]
    return value
