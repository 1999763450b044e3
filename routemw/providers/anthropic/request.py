"""OpenAI chat request -> Anthropic Messages body; pure, no I/O.

Deliberate decisions, each with its reason:

- `system` and `developer` messages, wherever they stand, are hoisted into the top-level `system`
  (Anthropic has no system role in `messages`): a plain string when there is one text, else a list
  of text blocks, which keeps each message's boundary. A system message in mid-conversation has no
  exact equivalent; hoisting is what Anthropic's own OpenAI layer does.
- Every turn is a list of blocks, and consecutive turns with the same role are merged, because
  Bedrock, older models and Anthropic-compatible servers require alternation. `tool` messages
  become `tool_result` blocks in a user turn; in a merged user turn every `tool_result` comes
  before any other block, as Anthropic requires (T2).
- Empty text is never sent (T3): `""` or null content beside tool calls is absent, empty text parts
  are skipped, and a message left with nothing to say is left out (T4). The final assistant turn
  (a prefill) loses trailing whitespace, which Anthropic refuses there.
- Tool call ids that break Anthropic's charset `^[a-zA-Z0-9_-]+$` are rewritten by `tool_id`, a
  pure function, so `tool_use.id` and `tool_result.tool_use_id` get the same new id without any
  state (T1). Ids that fit are kept; the ids Anthropic mints in answers already fit.
- `max_tokens` is required upstream (P7): the client's `max_completion_tokens`, else its
  `max_tokens`, else the route's `params`, else the caller's default (per model family, see
  `routemw.providers.anthropic`). Route params fill only fields the client did not send; an
  explicit null counts as not sent, because for this adapter null and absent mean the same.
- P5: families that refuse `temperature` and `top_p` together declare the pair exclusive in their
  profile; the capability check settles it by the parameter policy (refuse, or drop one and
  disclose it) before this module sees the request, which therefore forwards both as given.
- `response_format` json_object and json_schema go through a tool named `JSON_TOOL` whose input
  schema is the requested schema (json_object: any object). With no client tools, or with
  `tool_choice` "none", that tool is forced; beside client tools under "auto" the choice becomes
  `any`, so the model answers either with a real tool call or with the JSON. A forced tool choice
  ("required" or a named function) leaves no text answer to shape, so there the json tool is not
  added. The adapter turns the tool's input back into `message.content`.
- `stop` entries that are only whitespace are left out (Anthropic rejects them).
- `parallel_tool_calls: false` becomes `disable_parallel_tool_use` on the tool choice (`auto`
  when the client gave none), never beside `none` (T13).
- Unsupported content (audio, legacy `function` messages, non-function tools) is a 400 naming the
  field; the capability check normally refuses such requests before they get here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ...chat import ChatRequest
from ...errors import InvalidRequestError, echo
from ..base import Target

__all__ = ["JSON_OBJECT_SCHEMA", "JSON_TOOL", "anthropic_body", "effective_body", "tool_id", "uses_json_tool"]

JSON_TOOL: Final = "json_output"
# The input schema of the json tool for `response_format: json_object`: any object at all.
JSON_OBJECT_SCHEMA: Final[Mapping[str, Any]] = {"type": "object", "additionalProperties": True}

_OUTPUT_LIMITS: Final = ("max_completion_tokens", "max_tokens")
_TOOL_ID: Final = re.compile(r"[a-zA-Z0-9_-]+")
_NOT_TOOL_ID_CHAR: Final = re.compile(r"[^a-zA-Z0-9_-]")
_CHOICES: Final = {"auto": "auto", "none": "none", "required": "any"}
_JSON_FORMATS: Final = ("json_object", "json_schema")


def effective_body(request: ChatRequest, target: Target) -> dict[str, Any]:
    """The client's fields as this target takes them: drops, clamps and route defaults applied."""
    body = {k: v for k, v in request.body.items() if v is not None and k not in target.drop}
    body.update(target.clamp)
    for key, value in target.params.items():
        if key in body or value is None:
            continue
        if key in _OUTPUT_LIMITS and any(k in body for k in _OUTPUT_LIMITS):
            continue  # the client's limit, under either spelling, beats the route's
        body[key] = value
    return body


def uses_json_tool(body: Mapping[str, Any]) -> bool:
    """Whether `body` is answered through `JSON_TOOL` (a JSON response format, tool choice free)."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict) or response_format.get("type") not in _JSON_FORMATS:
        return False
    return body.get("tool_choice") in (None, "auto", "none")


def tool_id(raw: str) -> str:
    """`raw` when Anthropic accepts it as a tool id, else a deterministic id that it accepts."""
    if _TOOL_ID.fullmatch(raw):
        return raw
    # The digest keeps two ids that differ only in rejected characters apart.
    digest = hashlib.sha256(raw.encode()).hexdigest()[:12]
    cleaned = _NOT_TOOL_ID_CHAR.sub("_", raw)
    return f"{cleaned}_{digest}" if cleaned else f"call_{digest}"


def anthropic_body(body: Mapping[str, Any], *, model: str, default_max_tokens: int) -> dict[str, Any]:
    """The Messages API body for `body` (an `effective_body`)."""
    system, turns = _conversation(body["messages"])
    out: dict[str, Any] = {"model": model, "max_tokens": _max_tokens(body, default_max_tokens)}
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    out["messages"] = turns
    tools, choice = _tools_and_choice(body)
    if tools:
        out["tools"] = tools
    if choice is not None:
        out["tool_choice"] = choice
    stop = _stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    out.update(_sampling(body))
    user = body.get("user")
    if isinstance(user, str):  # "" included: a value the client sent is forwarded, not judged
        out["metadata"] = {"user_id": user}
    if body.get("stream") is True:
        out["stream"] = True
    return out


# -- messages -----------------------------------------------------------------------------------


def _conversation(messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        path = f"messages[{i}]"
        if role in ("system", "developer"):
            system += _text_blocks(message.get("content"), f"{path}.content")
        elif role == "user":
            _add(turns, "user", _text_blocks(message.get("content"), f"{path}.content", images=True))
        elif role == "assistant":
            _add(turns, "assistant", _assistant_blocks(message, path))
        elif role == "tool":
            _add(turns, "user", [_tool_result(message, path)])
        else:
            raise InvalidRequestError(
                f"Legacy `{role}` messages cannot be sent to Anthropic; use `tool` messages.",
                param=f"{path}.role",
                code="unsupported_value",
            )
    for turn in turns:
        if turn["role"] == "user":
            # Anthropic wants a turn's tool results first; sorted() is stable, so order is kept.
            turn["content"] = sorted(turn["content"], key=lambda block: block["type"] != "tool_result")
    _trim_prefill(turns)
    if not turns:
        raise InvalidRequestError(
            "Anthropic needs at least one user or assistant message with content.", param="messages"
        )
    return system, turns


def _add(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return  # nothing to say: Anthropic refuses empty messages (T4)
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _trim_prefill(turns: list[dict[str, Any]]) -> None:
    if not turns or turns[-1]["role"] != "assistant":
        return
    blocks = turns[-1]["content"]
    if blocks[-1]["type"] == "text":
        text = blocks[-1]["text"].rstrip()
        if text:
            blocks[-1] = {**blocks[-1], "text": text}
        else:
            blocks.pop()
    if not blocks:
        turns.pop()


def _text_blocks(content: Any, path: str, *, images: bool = False) -> list[dict[str, Any]]:
    """The non-empty text parts of `content` as blocks, and its images when `images` is set."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if images and part["type"] == "image_url":
            blocks.append(_image(part.get("image_url"), f"{path}[{j}]"))
            continue
        text = _part_text(part, f"{path}[{j}]")
        if text:
            blocks.append({"type": "text", "text": text})
    return blocks


def _part_text(part: Mapping[str, Any], path: str) -> str:
    kind = part["type"]
    key = "refusal" if kind == "refusal" else "text"  # an assistant's refusal part is its text
    if kind not in ("text", "refusal"):
        raise _unsupported_part(kind, path)
    text = part.get(key)
    if not isinstance(text, str):
        raise InvalidRequestError(f"Missing required parameter: '{path}.{key}'.", param=f"{path}.{key}")
    return text


def _unsupported_part(kind: str, path: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Content parts of type '{echo(kind)}' cannot be sent to Anthropic.",
        param=f"{path}.type",
        code="unsupported_value",
    )


def _image(image_url: Any, path: str) -> dict[str, Any]:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise InvalidRequestError(f"Missing required parameter: '{path}.image_url.url'.", param=f"{path}.image_url")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not comma or encoding != "base64" or not media_type:
            raise InvalidRequestError(
                "Image data URLs must look like `data:<media type>;base64,<data>`.", param=f"{path}.image_url"
            )
        source = {"type": "base64", "media_type": media_type, "data": data}
        # A PDF sent as an image part is a document to Anthropic (Portkey does the same).
        return {"type": "document" if media_type == "application/pdf" else "image", "source": source}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequestError("Image URLs must be http(s) or data: URLs.", param=f"{path}.image_url")


def _assistant_blocks(message: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    blocks = _text_blocks(message.get("content"), f"{path}.content")
    calls = message.get("tool_calls") or []
    for j, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{path}.tool_calls[{j}]"))
    return blocks


def _tool_use(call: Any, path: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    call_id = call.get("id") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequestError(f"Missing required parameter: '{path}.function.name'.", param=f"{path}.function")
    if not isinstance(call_id, str):
        raise InvalidRequestError(f"Missing required parameter: '{path}.id'.", param=f"{path}.id")
    return {"type": "tool_use", "id": tool_id(call_id), "name": function["name"], "input": _arguments(function, path)}


def _arguments(function: Mapping[str, Any], path: str) -> dict[str, Any]:
    arguments = function.get("arguments")
    if isinstance(arguments, dict):
        return arguments  # not OpenAI's type, but its meaning is unambiguous
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}  # a call without arguments
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "Tool call arguments must be a JSON object; Anthropic takes them as one.",
            param=f"{path}.function.arguments",
            code="invalid_value",
        )
    return value


def _tool_result(message: Mapping[str, Any], path: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id(message["tool_call_id"])}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        texts = _text_blocks(content, f"{path}.content")
        if texts:
            block["content"] = texts
    return block  # an empty result has no `content` at all: an empty text block would be refused


# -- tools --------------------------------------------------------------------------------------


def _tools_and_choice(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    tools = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(body.get("tools") or [])]
    choice = _choice(body.get("tool_choice"))
    if uses_json_tool(body):
        if any(tool["name"] == JSON_TOOL for tool in tools):
            raise InvalidRequestError(
                f"A tool named `{JSON_TOOL}` cannot be combined with a JSON response_format on Anthropic.",
                param="response_format",
            )
        # Beside client tools under "auto" the model may call them or answer with the JSON.
        free = tools and (choice is None or choice["type"] == "auto")
        choice = {"type": "any"} if free else {"type": "tool", "name": JSON_TOOL}
        tools.append(_json_tool(body["response_format"]))
    if not tools:
        if choice is not None and choice["type"] in ("any", "tool"):
            raise InvalidRequestError("`tool_choice` forces a tool call, but no tools were given.", param="tool_choice")
        return [], None
    if body.get("parallel_tool_calls") is False:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice = {**choice, "disable_parallel_tool_use": True}
    return tools, choice


def _tool(tool: Any, path: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise InvalidRequestError("Only `function` tools can be sent to Anthropic.", param=f"{path}.type")
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequestError(f"Missing required parameter: '{path}.function.name'.", param=f"{path}.function")
    out: dict[str, Any] = {"name": function["name"]}
    description = function.get("description")
    if isinstance(description, str) and description:
        out["description"] = description
    parameters = function.get("parameters")
    # No parameters means no arguments; Anthropic insists on an object schema all the same.
    schema = dict(parameters) if isinstance(parameters, dict) else {}
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    out["input_schema"] = schema
    return out


def _choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _CHOICES:
        return {"type": _CHOICES[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return {"type": "tool", "name": function["name"]}
    raise InvalidRequestError(
        "`tool_choice` must be auto, none, required or a named function for Anthropic.", param="tool_choice"
    )


def _json_tool(response_format: Mapping[str, Any]) -> dict[str, Any]:
    if response_format["type"] == "json_object":
        return {
            "name": JSON_TOOL,
            "description": "Answer with a JSON object.",
            "input_schema": dict(JSON_OBJECT_SCHEMA),
        }
    spec = response_format.get("json_schema")
    spec = spec if isinstance(spec, dict) else {}
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        schema = dict(JSON_OBJECT_SCHEMA)
    elif schema.get("type", "object") != "object":
        raise InvalidRequestError(
            "Anthropic can only answer with a JSON object: the schema's root must be an object.",
            param="response_format.json_schema.schema",
        )
    name = spec.get("name") or "response"
    description = spec.get("description") or f"Answer with JSON that matches the `{name}` schema."
    return {"name": JSON_TOOL, "description": description, "input_schema": {"type": "object", **schema}}


# -- scalars ------------------------------------------------------------------------------------


def _max_tokens(body: Mapping[str, Any], default: int) -> int:
    for key in _OUTPUT_LIMITS:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default


def _stop_sequences(stop: Any) -> list[str]:
    sequences = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    return [s for s in sequences if isinstance(s, str) and s.strip()]


def _sampling(body: Mapping[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in ("temperature", "top_p", "top_k") if key in body}
