"""Script steps: what the echo upstream does for one request instead of its plain answer.

A step is read from config (`providers.NAME.script[i]`), so every key is checked there and a
typo is a startup error naming its path, never a step that quietly does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from ...errors import ConfigError

__all__ = ["EchoStep"]


@dataclass(frozen=True, slots=True)
class EchoStep:
    """What the echo upstream does for one request."""

    status: int = 200
    message: str | None = None
    code: str | None = None
    type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stall: bool = False
    text: str | None = None
    cut_after: int | None = None
    # Answer with a call of this tool (`True`: the request's first tool), whatever `tool_choice` says.
    tool_call: str | bool | None = None
    # The call's arguments; by default a valid instance of the tool's parameters schema.
    arguments: Mapping[str, Any] | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], path: str) -> EchoStep:
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ConfigError([f"{path}.{key}: unknown key" for key in unknown])
        problems = []
        if "tool_call" in data and not isinstance(data["tool_call"], (str, bool)):
            problems.append(f"{path}.tool_call: expected a tool name or true")
        if "arguments" in data and not isinstance(data["arguments"], Mapping):
            problems.append(f"{path}.arguments: expected a mapping (the call's arguments)")
        elif "arguments" in data and not data.get("tool_call"):
            problems.append(f"{path}.arguments: only goes with `tool_call`")
        if problems:
            raise ConfigError(problems)
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ConfigError([f"{path}: {exc}"]) from exc


_KEYS: Final = frozenset(f.name for f in fields(EchoStep))
