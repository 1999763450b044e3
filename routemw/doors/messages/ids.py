"""Tool-use ids across the protocol line, mapped reversibly.

Anthropic mints `toolu_...` ids and refuses any outside `^[a-zA-Z0-9_-]+$`; OpenAI mints
`call_...` and takes any string. An Anthropic id going to a translating target becomes
`call_` + the same tail, and an OpenAI id coming back becomes `toolu_` + its tail, so an id
survives any number of round trips in either direction and a conversation can move between an
Anthropic route and an OpenAI one mid-way (the history carries each id in its own spelling).
Ids with neither prefix go out as they are; coming back, an id outside Anthropic's charset is
made to fit deterministically (its rejected characters replaced, plus a digest so two such ids
never collide), which the next turn sends on unchanged and consistently on both sides.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["to_anthropic", "to_openai"]

_ANTHROPIC: Final = "toolu_"
_OPENAI: Final = "call_"
_ALLOWED: Final = re.compile(r"[a-zA-Z0-9_-]+")
_REJECTED: Final = re.compile(r"[^a-zA-Z0-9_-]")


def to_openai(tool_use_id: str) -> str:
    """The id a translating target sees for an Anthropic `tool_use` / `tool_result` id."""
    if tool_use_id.startswith(_ANTHROPIC) and len(tool_use_id) > len(_ANTHROPIC):
        return _OPENAI + tool_use_id[len(_ANTHROPIC) :]
    return tool_use_id


def to_anthropic(call_id: str) -> str:
    """The `tool_use` id an Anthropic client sees for an OpenAI tool call id."""
    if call_id.startswith(_OPENAI) and len(call_id) > len(_OPENAI) and _ALLOWED.fullmatch(call_id):
        return _ANTHROPIC + call_id[len(_OPENAI) :]
    if _ALLOWED.fullmatch(call_id):
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:12]
    return f"{_ANTHROPIC}{_REJECTED.sub('_', call_id)}_{digest}"
