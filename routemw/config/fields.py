"""Reading typed values out of a configuration document, collecting problems instead of stopping."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar

from ..capabilities import LIMITS, Capability
from . import keys as accepted
from .schema import UnsupportedPolicy

__all__ = ["FieldReader", "join", "kind"]

_CAPABILITIES: Final = frozenset(c.value for c in Capability)
_T = TypeVar("_T")


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, Mapping):
        return "mapping"
    return type(value).__name__


class FieldReader:
    """Typed readers for config values; each problem is recorded with its path, and reading goes on."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    # -- generic field readers -------------------------------------------------------------

    def mapping(self, value: Any, path: str, allowed: frozenset[str] | None = None) -> dict[str, Any] | None:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(path or "<root>", f"expected a mapping, got {kind(value)}")
            return None
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                self.problem(join(path, str(key)), "keys must be strings")
                continue
            if allowed is not None and key not in allowed:
                self.problem(join(path, key), "unknown key")
                continue
            out[key] = item
        return out

    def field(
        self, data: Mapping[str, Any], key: str, path: str, check: Callable[[Any, str], _T | None], default: _T
    ) -> _T:
        if key not in data:
            return default
        result = check(data[key], join(path, key))
        return default if result is None else result

    def string(self, value: Any, path: str) -> str | None:
        if isinstance(value, str) and value:
            return value
        self.problem(path, f"expected a non-empty string, got {kind(value)}")
        return None

    def number(self, value: Any, path: str, *, minimum: float = 0.0, integer: bool = False) -> Any:
        ok = isinstance(value, int) if integer else isinstance(value, (int, float)) and math.isfinite(value)
        if not ok or isinstance(value, bool):
            self.problem(path, f"expected {'an integer' if integer else 'a number'}, got {kind(value)}")
            return None
        if value < minimum:
            self.problem(path, f"must be at least {minimum:g}, got {value}")
            return None
        return value

    def positive(self, value: Any, path: str) -> float | None:
        result = self.number(value, path, minimum=0.0)
        if result is not None and result <= 0:
            self.problem(path, "must be greater than 0")
            return None
        return None if result is None else float(result)

    def non_negative(self, value: Any, path: str) -> float | None:
        result = self.number(value, path, minimum=0.0)
        return None if result is None else float(result)

    def integer(self, minimum: int) -> Callable[[Any, str], int | None]:
        def check(value: Any, path: str) -> int | None:
            result = self.number(value, path, minimum=minimum, integer=True)
            return None if result is None else int(result)

        return check

    def choice(self, *options: str) -> Callable[[Any, str], str | None]:
        def check(value: Any, path: str) -> str | None:
            if value in options:
                return str(value)
            self.problem(path, f"expected one of {', '.join(options)}, got {value!r}")
            return None

        return check

    def string_map(self, value: Any, path: str) -> Mapping[str, str] | None:
        data = self.mapping(value, path)
        if data is None:
            return None
        for key, item in data.items():
            if not isinstance(item, str):
                self.problem(join(path, key), f"expected a string, got {kind(item)}")
        return MappingProxyType({k: v for k, v in data.items() if isinstance(v, str)})

    def capabilities(self, value: Any, path: str) -> Mapping[str, bool | int] | None:
        data = self.mapping(value, path)
        if data is None:
            return None
        out: dict[str, bool | int] = {}
        for key, item in data.items():
            if key in LIMITS:
                if self.integer(1)(item, join(path, key)) is not None:
                    out[key] = item
            elif key not in _CAPABILITIES:
                known = ", ".join(sorted(_CAPABILITIES | set(LIMITS)))
                self.problem(join(path, key), f"unknown capability; known: {known}")
            elif not isinstance(item, bool):
                self.problem(join(path, key), f"expected true or false, got {kind(item)}")
            else:
                out[key] = item
        return MappingProxyType(out)

    def policy(self, value: Any, path: str) -> UnsupportedPolicy | None:
        data = self.mapping(value, path, accepted.POLICY.names)  # MODEL_POLICY and KEY_POLICY: the same names
        if not data or "unsupported" not in data:
            return None
        policy = self.choice("reject", "drop", "clamp")(data["unsupported"], join(path, "unsupported"))
        return "drop" if policy == "drop" else "clamp" if policy == "clamp" else "reject" if policy else None

    def free_map(self, value: Any, path: str) -> Mapping[str, Any] | None:
        data = self.mapping(value, path)
        return None if data is None else MappingProxyType(data)

    def string_list(self, value: Any, path: str) -> tuple[str, ...] | None:
        if not isinstance(value, list):
            self.problem(path, f"expected a list, got {kind(value)}")
            return None
        items = [self.string(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return tuple(item for item in items if item is not None)

    # -- sections --------------------------------------------------------------------------
