"""An accepted Anthropic Messages request read into OpenAI terms, for a route that is not Anthropic.

Apart from the shape check (`check`), which every request passes first: by the time this runs
the fields it reads are known to have their types, so it only maps, and it records what a
translating target cannot carry instead of refusing it. Decisions:

- `system` (a string, or text blocks joined with a blank line) becomes one system message.
  Tool results become `tool` messages placed before the rest of their user turn; an image
  inside a tool result, which a `tool` message cannot carry, follows in a user message right
  after the results. Text blocks of an assistant turn are joined as they are (they are pieces
  of one text), `tool_use` blocks become `tool_calls` with the input as JSON arguments.
- Tool-use ids are mapped reversibly (`ids`): `toolu_X` goes out as `call_X`.
- `stop_sequences` is `stop`, `metadata.user_id` is `user`, `temperature`, `top_p`, `top_k` and
  `max_tokens` keep their names. A stream asks for usage (`stream_options.include_usage`),
  because the event stream reports it in `message_delta`.
- `thinking` asks for reasoning: `enabled` maps its budget to `reasoning_effort` (under 4096
  tokens low, under 16384 medium, else high), `adaptive` to medium, `output_config.effort`
  (winning over both) to the nearest of low, medium and high. A target without reasoning
  then follows the parameter policy like any OpenAI request that sent `reasoning_effort`.
  `output_config.format` is a `json_schema` response format.
- What a translating target cannot express but the request makes sense without is left out
  and disclosed in `x-routemw-dropped-params` when such a target answers (`lossy`):
  `cache_control`, thinking blocks of earlier turns (OpenAI-shaped upstreams refuse them, and
  their signatures mean nothing there), `is_error` on tool results, `service_tier`, and any
  top-level field this door does not know. What changes the answer and cannot be expressed
  (server tools, documents by URL or file id, `container`, `mcp_servers`, unknown block types)
  is `untranslatable`: only an Anthropic route may serve such a request.
- Base64 PDF documents are OpenAI `file` parts; plain-text documents are text parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from .ids import to_openai

__all__ = ["Reader", "reasoning_effort"]

_KNOWN: Final = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "output_config",
    }
)
_ONLY_NATIVE: Final = frozenset({"container", "mcp_servers"})
_EFFORTS: Final = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def reasoning_effort(body: Mapping[str, Any]) -> str | None:
    """The OpenAI reasoning effort that `thinking` / `output_config.effort` ask for, if any."""
    config = body.get("output_config")
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(effort, str) and effort in _EFFORTS:
        return _EFFORTS[effort]
    thinking = body.get("thinking")
    if not isinstance(thinking, dict):
        return None
    if thinking.get("type") == "adaptive":
        return "medium"
    if thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    budget = budget if isinstance(budget, int) else 0
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


class Reader:
    """One request's translation; collects what could not be carried as it goes."""

    def __init__(self) -> None:
        self.untranslatable: list[str] = []
        self.lossy: list[str] = []

    def request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"model": body["model"]}
        messages: list[dict[str, Any]] = []
        system = self._system(body.get("system"))
        if system:
            messages.append({"role": "system", "content": system})
        for i, message in enumerate(body["messages"]):
            messages += self._message(message, f"messages.{i}")
        out["messages"] = messages
        out["max_tokens"] = body["max_tokens"]
        for key in ("temperature", "top_p", "top_k"):
            if body.get(key) is not None:
                out[key] = body[key]
        if body.get("stop_sequences"):
            out["stop"] = list(body["stop_sequences"])
        self._tools(body, out)
        metadata = body.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
            out["user"] = metadata["user_id"]
        effort = reasoning_effort(body)
        if effort is not None:
            out["reasoning_effort"] = effort
        config = body.get("output_config")
        output_format = config.get("format") if isinstance(config, dict) else None
        if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
            schema = output_format.get("schema")
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema if isinstance(schema, dict) else {}},
            }
        if body.get("stream") is True:
            out["stream"] = True
            out["stream_options"] = {"include_usage": True}
        for key in body:
            if key in _ONLY_NATIVE:
                self.untranslatable.append(key)
            elif key not in _KNOWN:
                self.lossy.append(key)
        return out

    def _system(self, system: Any) -> str:
        if system is None or isinstance(system, str):
            return system or ""
        texts = []
        for block in system:
            self._cache_control(block)
            if block["text"]:
                texts.append(block["text"])
        return "\n\n".join(texts)

    def _cache_control(self, block: Mapping[str, Any]) -> None:
        if "cache_control" in block:
            self.lossy.append("cache_control")

    # -- messages

    def _message(self, message: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
        role = message["role"]
        content = message["content"]
        if isinstance(content, str):
            return [{"role": role, "content": content}]
        if role == "assistant":
            return self._assistant(content, path)
        return self._user(content, path)

    def _user(self, blocks: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        carried: list[dict[str, Any]] = []  # images from tool results, which `tool` messages cannot hold
        parts: list[dict[str, Any]] = []
        for j, block in enumerate(blocks):
            where = f"{path}.content.{j}"
            self._cache_control(block)
            if block["type"] == "tool_result":
                results.append(self._tool_result(block, where, carried))
            elif block["type"] in ("thinking", "redacted_thinking"):
                self.lossy.append("thinking")
            else:
                part = self._part(block, where)
                if part is not None:
                    parts.append(part)
        out = results
        if carried or parts:
            out.append({"role": "user", "content": carried + parts})
        return out

    def _assistant(self, blocks: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for j, block in enumerate(blocks):
            self._cache_control(block)
            kind = block["type"]
            if kind == "text":
                texts.append(block["text"])
            elif kind == "tool_use":
                arguments = orjson.dumps(block["input"]).decode()
                function = {"name": block["name"], "arguments": arguments}
                calls.append({"id": to_openai(block["id"]), "type": "function", "function": function})
            elif kind in ("thinking", "redacted_thinking"):
                self.lossy.append("thinking")
            else:
                self.untranslatable.append(f"{path}.content.{j}")
        text = "".join(texts)
        if not text and not calls:
            return []  # only thinking: nothing an OpenAI-shaped upstream can be shown
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        return [message]

    def _tool_result(self, block: Mapping[str, Any], path: str, carried: list[dict[str, Any]]) -> dict[str, Any]:
        if block.get("is_error"):
            self.lossy.append("is_error")
        content = block.get("content")
        texts: list[str] = []
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for k, part in enumerate(content):
                self._cache_control(part)
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    translated = self._part(part, f"{path}.content.{k}")
                    if translated is not None:
                        carried.append(translated)
        return {"role": "tool", "tool_call_id": to_openai(block["tool_use_id"]), "content": "\n".join(texts)}

    def _part(self, block: Mapping[str, Any], path: str) -> dict[str, Any] | None:
        kind = block["type"]
        if kind == "text":
            return {"type": "text", "text": block["text"]}
        source = block.get("source")
        source = source if isinstance(source, dict) else {}
        if kind == "image":
            if source.get("type") == "base64":
                url = f"data:{source.get('media_type')};base64,{source.get('data')}"
                return {"type": "image_url", "image_url": {"url": url}}
            if source.get("type") == "url" and isinstance(source.get("url"), str):
                return {"type": "image_url", "image_url": {"url": source["url"]}}
        elif kind == "document":
            if source.get("type") == "base64" and source.get("media_type") == "application/pdf":
                title = block.get("title")
                name = f"{title}.pdf" if isinstance(title, str) and title else "document.pdf"
                data = f"data:application/pdf;base64,{source.get('data')}"
                return {"type": "file", "file": {"filename": name, "file_data": data}}
            if source.get("type") == "text" and isinstance(source.get("data"), str):
                title = block.get("title")
                prefix = f"{title}\n\n" if isinstance(title, str) and title else ""
                return {"type": "text", "text": prefix + source["data"]}
        self.untranslatable.append(path)
        return None

    # -- tools

    def _tools(self, body: Mapping[str, Any], out: dict[str, Any]) -> None:
        tools: list[dict[str, Any]] = []
        for i, tool in enumerate(body.get("tools") or []):
            self._cache_control(tool)
            if tool.get("type") not in (None, "custom"):
                self.untranslatable.append(f"tools.{i}")  # a server tool: web search, code execution...
                continue
            schema = tool.get("input_schema")
            function: dict[str, Any] = {"name": tool["name"]}
            if isinstance(tool.get("description"), str):
                function["description"] = tool["description"]
            function["parameters"] = schema if isinstance(schema, dict) else {"type": "object", "properties": {}}
            if isinstance(tool.get("strict"), bool):
                function["strict"] = tool["strict"]
            tools.append({"type": "function", "function": function})
        if tools:
            out["tools"] = tools
        choice = body.get("tool_choice")
        if not isinstance(choice, dict) or not tools:
            return  # OpenAI refuses a tool choice without tools; with none there is nothing to choose
        kind = choice["type"]
        if kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        else:
            out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
        if choice.get("disable_parallel_tool_use") is True and tools and kind != "none":
            out["parallel_tool_calls"] = False
