"""What echo answers for one request: a pure function of the request body and the script step.

Echo's tokens are whitespace-delimited words: each token is a run of non-whitespace characters
together with the whitespace before it, so the tokens of a text join back to it exactly (bar
trailing whitespace, which is no token and is sent after the last one). A stream carries one
token per chunk, `max_tokens` / `max_completion_tokens` keep that many tokens (then
`finish_reason` is `length`), and usage counts the same tokens: `prompt_tokens` are the words
of every message's text, `completion_tokens` the words of every choice's content or tool-call
arguments, summed over the `n` choices as OpenAI does.

What the answer is, first rule that applies:
1. a tool call, when the step asks for one (`tool_call`) or `tool_choice` forces one
   (`"required"`: the first tool; a named function; `allowed_tools` in `required` mode: the first
   allowed); its arguments are the step's `arguments`, else the user's last message if that is a
   JSON object valid against the tool's `parameters`, else the smallest valid instance of them;
2. the step's `text`;
3. in a JSON mode, the user's last message if it is a JSON object (valid against the schema for
   `json_schema`), else the smallest valid instance of the schema (`{}` for `json_object`);
4. the user's last message.
A `tool_choice` without `tools` is refused with a 400 naming `tool_choice`, as OpenAI refuses it.
Then `stop` sequences cut the content before the first of them (not tool arguments: OpenAI
does not apply them there), and the token limit applies. Every choice of `n` is the same:
echo is deterministic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from .schema import conforms, minimal_instance
from .script import EchoStep

__all__ = ["MAX_CHOICES", "Answer", "BadRequest", "Choice", "answer", "tokens"]

MAX_CHOICES: Final = 128  # OpenAI's bound for `n`; also keeps a huge `n` from costing memory
_TOKEN: Final = re.compile(r"\s*\S+")
_CHOICE_WITHOUT_TOOLS: Final = (
    "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
)


class BadRequest(Exception):
    """A request OpenAI would refuse with a 400; echo refuses it the same way."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice: its pieces (one token each) and how it ended."""

    pieces: tuple[str, ...]  # content, or the tool call's arguments when `tool` is set
    finish_reason: str
    tool: str | None = None  # the called function's name

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True, slots=True)
class Answer:
    choices: tuple[Choice, ...]
    usage: dict[str, int]


def tokens(text: str) -> list[str]:
    """Echo's tokens of `text`; trailing whitespace is left out (see the module docstring)."""
    return _TOKEN.findall(text)


def answer(body: Mapping[str, Any], step: EchoStep) -> Answer:
    """The answer to `body`; raises `BadRequest` for what OpenAI would refuse."""
    n = _choice_count(body)
    limit = _token_limit(body)
    user_text = _last_user_text(body.get("messages"))
    tool = _forced_tool(body, step)
    if tool is not None:
        name, parameters = tool
        arguments = _dumps(step.arguments) if step.arguments is not None else _json_answer(parameters, user_text)
        choice = _limited(arguments, limit, "tool_calls", name)
    else:
        if step.text is not None:
            text = step.text
        else:
            schema = _json_mode_schema(body.get("response_format"))
            text = user_text if schema is None else _json_answer(schema, user_text)
        choice = _limited(_before_stop(text, body.get("stop")), limit, "stop", None)
    prompt = sum(len(text.split()) for text in _message_texts(body.get("messages")))
    completion = len(choice.text.split()) * n
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return Answer((choice,) * n, usage)


def _choice_count(body: Mapping[str, Any]) -> int:
    if body.get("n") is None:
        return 1
    n = _integer(body["n"])
    if n is None or not 1 <= n <= MAX_CHOICES:
        raise BadRequest(f"Invalid 'n': expected an integer from 1 to {MAX_CHOICES}.", "n")
    return n


def _token_limit(body: Mapping[str, Any]) -> int | None:
    # Both sent: the newer spelling wins, as it does at OpenAI.
    for key in ("max_completion_tokens", "max_tokens"):
        if body.get(key) is None:
            continue
        value = _integer(body[key])
        if value is None or value < 0:
            raise BadRequest(f"Invalid '{key}': expected an integer >= 0.", key)
        return value
    return None


def _integer(value: Any) -> int | None:
    """`value` as an int if JSON would call it an integer (2 or 2.0), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if float(value).is_integer() else None


def _limited(text: str, limit: int | None, finish_reason: str, tool: str | None) -> Choice:
    pieces = tokens(text)
    if limit is not None and len(pieces) > limit:
        return Choice(tuple(pieces[:limit]), "length", tool)
    rest = text[sum(map(len, pieces)) :]
    if rest:
        pieces.append(rest)  # trailing whitespace: sent, never counted
    return Choice(tuple(pieces), finish_reason, tool)


def _before_stop(text: str, stop: Any) -> str:
    sequences = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    cuts = [cut for cut in (text.find(s) for s in sequences if isinstance(s, str) and s) if cut >= 0]
    return text[: min(cuts)] if cuts else text


def _forced_tool(body: Mapping[str, Any], step: EchoStep) -> tuple[str, Any] | None:
    """The function to call and its parameters schema, or None for a text answer."""
    if body.get("tool_choice") is not None and not body.get("tools"):
        # OpenAI refuses any `tool_choice` without `tools`, before the model runs, and whatever
        # the value: a forced choice has nothing to call, and even `auto` or `none` is refused.
        raise BadRequest(_CHOICE_WITHOUT_TOOLS, "tool_choice")
    tools = dict(_function_tools(body.get("tools")))
    if step.tool_call:
        if step.tool_call is True:
            if not tools:
                raise BadRequest("echo: the script asks for a tool call, but the request has no tools.", "tools")
            return next(iter(tools.items()))
        # A name the request does not offer is called anyway: models do that, and tests need it.
        return step.tool_call, tools.get(step.tool_call, {})
    choice = body.get("tool_choice")
    if choice == "required":
        # `tools` holds no function (only tools of other types): nothing echo can call.
        return next(iter(tools.items())) if tools else None
    if not isinstance(choice, dict):
        return None
    if choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or name not in tools:
            raise BadRequest(f"Invalid 'tool_choice': no function named {name!r} in 'tools'.", "tool_choice")
        return name, tools[name]
    if choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools")
        if isinstance(spec, dict) and spec.get("mode") == "required":
            for name, _ in _function_tools(spec.get("tools")):
                if name in tools:
                    return name, tools[name]
    return None


def _function_tools(tools: Any) -> Iterator[tuple[str, Any]]:
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            yield function["name"], function.get("parameters", {})


def _json_mode_schema(response_format: Any) -> Any:
    """The schema a JSON mode asks for (any object for `json_object`), or None outside JSON modes."""
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return {"type": "object"}
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema")
        return spec.get("schema", {}) if isinstance(spec, dict) else {}
    return None


def _json_answer(schema: Any, user_text: str) -> str:
    """The user's message when it is a JSON object valid against `schema`, else a minimal instance."""
    try:
        value = orjson.loads(user_text)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict) and conforms(value, schema):
        return user_text
    return _dumps(minimal_instance(schema))


def _dumps(value: Any) -> str:
    # Spaced separators, so a JSON answer has several tokens and streams in several chunks.
    return json.dumps(value, ensure_ascii=False)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _last_user_text(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _message_texts(messages: Any) -> Iterator[str]:
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict):
            yield _text(message.get("content"))
