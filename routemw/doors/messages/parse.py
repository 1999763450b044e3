"""An Anthropic Messages request: checked as Anthropic checks it, then read into OpenAI terms.

`parse_messages_request` returns the canonical `ChatRequest` the pipeline carries, with the
client's own request on `native` (see `routemw.native`). An Anthropic route sends that native
request untouched; every other route gets the canonical body, through the same adapters an
OpenAI client's request goes through. Decisions:

- Validation covers the shape the gateway relies on and the JSON types of the known fields,
  with Anthropic's wording (`max_tokens: Field required`) and the dotted path in `param`; the
  finer rules (alternating roles, tool results in the next turn, ranges) are the upstream's to
  enforce, since an Anthropic route would and an OpenAI route does not need them.
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

import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ...chat import ChatRequest
from ...duplicate_keys import first_duplicate_key
from ...errors import InvalidRequestError
from ...native import NativeRequest
from .ids import to_openai

__all__ = [
    "FORWARDED_HEADERS",
    "PROTOCOL",
    "check",
    "check_count",
    "decode",
    "parse_messages_request",
    "reasoning_effort",
]

PROTOCOL: Final = "anthropic"
_INDEX: Final = re.compile(r"\[(\d+)\]")
FORWARDED_HEADERS: Final = ("anthropic-version", "anthropic-beta")

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
_CHOICES: Final = frozenset({"auto", "any", "tool", "none"})
_THINKING: Final = frozenset({"enabled", "disabled", "adaptive"})
_EFFORTS: Final = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def decode(raw: bytes) -> dict[str, Any]:
    """The JSON object of a request body, refused when it is not one or repeats a key."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"There was an error parsing the body of your request: {exc}.", code="invalid_json"
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    # The checks below read the last of two equal keys, while an Anthropic route is sent the
    # client's bytes with both: what was checked and what the upstream reads could differ.
    try:
        path = first_duplicate_key(raw, body)
    except RecursionError:
        raise InvalidRequestError("The JSON body of your request is nested too deeply.", code="invalid_json") from None
    if path is not None:
        param = _INDEX.sub(r".\1", path)  # `messages[0].role` as this door names fields: `messages.0.role`
        raise InvalidRequestError(f"{param}: Duplicate key; send each key once.", param=param, code="duplicate_key")
    return body


def parse_messages_request(raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
    """Decode, check and translate a `/v1/messages` body; `InvalidRequestError` names the field."""
    body = decode(raw)
    check(body)
    reader = _Reader()
    canonical = reader.request(body)
    forwarded = {name: headers[name] for name in FORWARDED_HEADERS if name in headers}
    native = NativeRequest(
        PROTOCOL,
        body,
        raw,
        forwarded,
        untranslatable=tuple(reader.untranslatable),
        lossy=tuple(dict.fromkeys(reader.lossy)),
    )
    return ChatRequest(body=canonical, native=native)


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


# -- validation ---------------------------------------------------------------------------------


def _invalid(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: {message}", param=param)


def _require(body: Mapping[str, Any], key: str, path: str = "") -> Any:
    if key not in body:
        raise _invalid(path + key, "Field required")
    return body[key]


def _expect(value: Any, kinds: type | tuple[type, ...], param: str, what: str) -> None:
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise _invalid(param, f"Input should be {what}")
    if not isinstance(value, kinds):
        raise _invalid(param, f"Input should be {what}")


def check(body: Mapping[str, Any]) -> None:
    """Raise `InvalidRequestError` for a body Anthropic would refuse for its shape."""
    max_tokens = _require(body, "max_tokens")
    _expect(max_tokens, int, "max_tokens", "a valid integer")
    if max_tokens < 0:
        raise _invalid("max_tokens", "Input should be greater than or equal to 0")
    check_count(body)


def check_count(body: Mapping[str, Any]) -> None:
    """The same for a `count_tokens` body, which has everything but `max_tokens`."""
    model = _require(body, "model")
    _expect(model, str, "model", "a valid string")
    if not model:
        raise _invalid("model", "String should have at least 1 character")
    messages = _require(body, "messages")
    _expect(messages, list, "messages", "a valid list")
    for i, message in enumerate(messages):
        _check_message(message, f"messages.{i}")
    _check_system(body.get("system"))
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            _expect(body[key], (int, float), key, "a valid number")
    if body.get("top_k") is not None:
        _expect(body["top_k"], int, "top_k", "a valid integer")
    if "stream" in body:
        _expect(body["stream"], bool, "stream", "a valid boolean")
    stop = body.get("stop_sequences")
    if stop is not None:
        _expect(stop, list, "stop_sequences", "a valid list")
        for j, sequence in enumerate(stop):
            _expect(sequence, str, f"stop_sequences.{j}", "a valid string")
    _check_tools(body.get("tools"), body.get("tool_choice"))
    for key in ("metadata", "thinking", "output_config"):
        if body.get(key) is not None:
            _expect(body[key], dict, key, "a valid dictionary")
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        kind = _require(thinking, "type", "thinking.")
        if kind not in _THINKING:
            raise _invalid("thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'")
        if kind == "enabled":
            _expect(_require(thinking, "budget_tokens", "thinking."), int, "thinking.budget_tokens", "a valid integer")


def _check_message(message: Any, path: str) -> None:
    _expect(message, dict, path, "a valid dictionary")
    role = _require(message, "role", path + ".")
    if role not in ("user", "assistant"):
        raise _invalid(f"{path}.role", "Input should be 'user' or 'assistant'")
    content = _require(message, "content", path + ".")
    if isinstance(content, str):
        return
    _expect(content, list, f"{path}.content", "a valid string or list")
    for j, block in enumerate(content):
        _check_block(block, f"{path}.content.{j}")


def _check_block(block: Any, path: str) -> None:
    _expect(block, dict, path, "a valid dictionary")
    kind = _require(block, "type", path + ".")
    _expect(kind, str, f"{path}.type", "a valid string")
    if kind == "text":
        _expect(_require(block, "text", path + "."), str, f"{path}.text", "a valid string")
    elif kind in ("image", "document"):
        _expect(_require(block, "source", path + "."), dict, f"{path}.source", "a valid dictionary")
    elif kind == "tool_use":
        _expect(_require(block, "id", path + "."), str, f"{path}.id", "a valid string")
        _expect(_require(block, "name", path + "."), str, f"{path}.name", "a valid string")
        _expect(_require(block, "input", path + "."), dict, f"{path}.input", "a valid dictionary")
    elif kind == "tool_result":
        _expect(_require(block, "tool_use_id", path + "."), str, f"{path}.tool_use_id", "a valid string")
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            _expect(content, list, f"{path}.content", "a valid string or list")
            for k, part in enumerate(content):
                _check_block(part, f"{path}.content.{k}")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    _expect(system, list, "system", "a valid string or list")
    for j, block in enumerate(system):
        _expect(block, dict, f"system.{j}", "a valid dictionary")
        if block.get("type") != "text":
            raise _invalid(f"system.{j}.type", "Input should be 'text'")
        _expect(_require(block, "text", f"system.{j}."), str, f"system.{j}.text", "a valid string")


def _check_tools(tools: Any, choice: Any) -> None:
    if tools is not None:
        _expect(tools, list, "tools", "a valid list")
        for i, tool in enumerate(tools):
            _expect(tool, dict, f"tools.{i}", "a valid dictionary")
            _expect(_require(tool, "name", f"tools.{i}."), str, f"tools.{i}.name", "a valid string")
            schema = tool.get("input_schema")
            if schema is not None:
                _expect(schema, dict, f"tools.{i}.input_schema", "a valid dictionary")
    if choice is None:
        return
    _expect(choice, dict, "tool_choice", "a valid dictionary")
    kind = _require(choice, "type", "tool_choice.")
    if kind not in _CHOICES:
        raise _invalid(
            "tool_choice.type", "Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'"
        )
    if kind == "tool":
        _expect(_require(choice, "name", "tool_choice."), str, "tool_choice.name", "a valid string")


# -- translation --------------------------------------------------------------------------------


class _Reader:
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
