"""An Anthropic Messages request's shape, checked as Anthropic checks it.

Apart from the translation (`translate`) because the two answer different questions: this one
decides whether the gateway accepts the request at all, for every route (an Anthropic one too,
which is sent the client's own body), and `count_tokens` needs it without the translation; the
translation runs after it, on a request already accepted, and its result matters only to a
route that is not Anthropic.

Validation covers the shape the gateway relies on and the JSON types of the known fields, with
Anthropic's wording (`max_tokens: Field required`) and the dotted path in `param`; the finer
rules (alternating roles, tool results in the next turn, ranges) are the upstream's to enforce,
since an Anthropic route would and an OpenAI route does not need them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ...errors import InvalidRequestError

__all__ = ["check", "check_count"]

_CHOICES: Final = frozenset({"auto", "any", "tool", "none"})
_THINKING: Final = frozenset({"enabled", "disabled", "adaptive"})


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
