"""A token count without a tokenizer, for `count_tokens` and stream headers on translated routes.

Only an Anthropic upstream can count Claude tokens exactly (the door asks it when the model has
an Anthropic route). Elsewhere the count is an estimate, deliberately simple and documented:
one token per four characters of text (rounded up) in the system prompt, every text block,
tool result, tool call input and tool definition (name, description and schema as JSON), plus
four tokens per message for its framing, and a flat 1,600 per image or document, which is what
Anthropic's own formula (width x height / 750) gives a typical 1,092 x 1,092 image. It is meant
for budgeting and context-window checks, not for billing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

__all__ = ["estimate_input_tokens", "estimate_text_tokens"]

_PER_MESSAGE: Final = 4
_PER_MEDIA: Final = 1600


def estimate_text_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def estimate_input_tokens(body: Mapping[str, Any]) -> int:
    """The estimated input tokens of a Messages request body (already checked)."""
    chars = 0
    media = 0
    system = body.get("system")
    if isinstance(system, str):
        chars += len(system)
    elif isinstance(system, list):
        chars += sum(len(b.get("text", "")) for b in system if isinstance(b, dict))
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        more_chars, more_media = _content(content)
        chars += more_chars
        media += more_media
    for tool in body.get("tools") or ():
        chars += len(orjson.dumps(tool))
    return (chars + 3) // 4 + _PER_MESSAGE * len(messages) + _PER_MEDIA * media


def _content(content: Any) -> tuple[int, int]:
    if isinstance(content, str):
        return len(content), 0
    chars = 0
    media = 0
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("image", "document"):
            media += 1
        elif kind == "text":
            chars += len(str(block.get("text", "")))
        elif kind == "tool_use":
            chars += len(str(block.get("name", ""))) + len(orjson.dumps(block.get("input")))
        elif kind == "tool_result":
            more_chars, more_media = _content(block.get("content"))
            chars += more_chars
            media += more_media
        elif kind == "thinking":
            chars += len(str(block.get("thinking", "")))
    return chars, media
