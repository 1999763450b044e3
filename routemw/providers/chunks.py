"""Building OpenAI chunks and completions, for adapters that translate another wire format.

Every translated stream has the same shape as OpenAI's own: a role chunk, content and tool-call
deltas (a call's first delta carries its `index`, `id`, `type` and `name` with empty arguments,
later ones only argument fragments), one finish chunk with an empty delta, then, only when the
client asked, a `choices: []` chunk with the usage. One `ChunkWriter` per stream keeps the id,
`created` and model constant across chunks.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from ..reply import Chunk

__all__ = ["ChunkWriter", "completion", "usage"]


def usage(prompt: int, completion_tokens: int, **details: Any) -> dict[str, Any]:
    """An OpenAI usage object; `details` are `prompt_tokens_details` / `completion_tokens_details`."""
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }
    out.update({k: v for k, v in details.items() if v})
    return out


def completion(
    *,
    id: str,
    model: str,
    content: str | None,
    tool_calls: list[dict[str, Any]] | None,
    finish_reason: str | None,
    usage: dict[str, Any] | None,
    created: int | None = None,
    refusal: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    if tool_calls:
        message["tool_calls"] = tool_calls
    out: dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": created if created is not None else int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        out["usage"] = usage
    return out


class ChunkWriter:
    """Makes the chunks of one stream, for choice 0."""

    __slots__ = ("_base", "_include_usage", "_role_sent")

    def __init__(self, model: str, *, id: str | None = None, include_usage: bool = False) -> None:
        self._base = {
            "id": id or f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self._include_usage = include_usage
        self._role_sent = False

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> Chunk:
        if not self._role_sent:
            delta = {"role": "assistant", **delta}
            self._role_sent = True
        data: dict[str, Any] = {
            **self._base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self._include_usage:
            data["usage"] = None  # OpenAI marks every chunk but the last when usage was asked for
        return Chunk(data)

    def role(self) -> Chunk:
        return self._chunk({"content": ""})

    def content(self, text: str) -> Chunk:
        return self._chunk({"content": text})

    def reasoning(self, text: str) -> Chunk:
        # Not an OpenAI field; the name DeepSeek and vLLM use, which many clients understand.
        return self._chunk({"reasoning_content": text})

    def tool_call_start(self, index: int, call_id: str, name: str, arguments: str = "") -> Chunk:
        call = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        return self._chunk({"content": None, "tool_calls": [call]} if not self._role_sent else {"tool_calls": [call]})

    def tool_call_arguments(self, index: int, fragment: str) -> Chunk:
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})

    def finish(self, reason: str) -> Chunk:
        return self._chunk({}, reason)

    def usage(self, usage: dict[str, Any]) -> Chunk | None:
        """The trailing usage chunk, or None when the client did not ask for usage."""
        if not self._include_usage:
            return None
        return Chunk({**self._base, "choices": [], "usage": usage})
