"""`FakeAnthropic`: Anthropic's Messages API for `httpx.MockTransport`, as strict as the real one.

It refuses what Anthropic refuses, with Anthropic's error body (`{"type": "error", "error":
{"type", "message"}, "request_id"}`) and a `request-id` header: a missing or wrong `x-api-key`
(401 authentication_error), a missing `anthropic-version`, unknown top-level fields, a missing
`max_tokens`, `temperature` or `top_p` outside 0..1 (and both together on the families that
refuse that, P5), a `system` role inside `messages`, a first message that is not `user`,
consecutive turns with the same role, empty messages and empty text blocks, tool ids outside
`^[a-zA-Z0-9_-]+$`, `tool_use` blocks whose results are not all in the very next user turn,
`tool_result` blocks that answer no `tool_use` of the previous turn or come after other blocks,
whitespace-only stop sequences, and a few more. Messages quote Anthropic's where known; two
(tool results placed after text, and a forced choice naming an unknown tool) are paraphrased.

Being stricter than today's API in one place is deliberate: Anthropic now merges consecutive
same-role turns itself, but Bedrock, older models and compatible servers refuse them, so the
adapter must not send them.

It answers scripted `Answer`s (tests/conformance/model.py) in Anthropic's wire format: a JSON
`message`, or an event stream framed like the recordings (`event:` and `data:` lines, a `ping`
after the first block start, text and `input_json_delta` fragments of `answer.fragment`
characters, the first `input_json_delta` empty, `message_delta` with cumulative usage,
`message_stop`), delivered in pieces cut at awkward offsets. Under a forced tool choice the
model cannot answer with free text: when the json response-format tool is forced (by name, or
by `any` beside it), a text-only answer is given as a call of that tool with the text parsed as
its input, as the real model would; other scripted answers are sent as scripted.

`ErrorAnswer` kinds map to Anthropic's statuses: invalid_request 400, auth 401, not_found 404,
rate_limit 429 (with `retry-after`), quota 400 invalid_request_error "Your credit balance is too
low..." (what Anthropic really sends), overloaded 529 overloaded_error, server 500 api_error.
In a stream, an error answer that also has text sends that text and then an `event: error`
(an error after HTTP 200); otherwise an error is the HTTP answer.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, Final

import httpx
import orjson
from conformance.model import (
    Answer,
    CanonicalMessage,
    CanonicalRequest,
    CanonicalToolCall,
    ErrorAnswer,
    ErrorKind,
)
from fakes import FakeByteStream, awkward_pieces

from routemw.providers.anthropic.request import JSON_OBJECT_SCHEMA, JSON_TOOL

__all__ = ["CREDIT_MESSAGE", "FakeAnthropic", "Rejected"]

BASE_URL: Final = "https://anthropic.test"
CREDIT_MESSAGE: Final = (
    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or "
    "purchase credits."
)
_FIELDS: Final = frozenset(
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
        "service_tier",
        "container",
    }
)
_SINGLE_SAMPLING: Final = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-opus-4-5")
_MEDIA_TYPES: Final = ("image/jpeg", "image/png", "image/gif", "image/webp")
_ID: Final = re.compile(r"[a-zA-Z0-9_-]+")
_TOOL_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,128}")
_ERRORS: Final[Mapping[ErrorKind, tuple[int, str]]] = {
    "invalid_request": (400, "invalid_request_error"),
    "auth": (401, "authentication_error"),
    "not_found": (404, "not_found_error"),
    "rate_limit": (429, "rate_limit_error"),
    "quota": (400, "invalid_request_error"),
    "overloaded": (529, "overloaded_error"),
    "server": (500, "api_error"),
}
_STOP_REASONS: Final = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


class Rejected(Exception):
    """A request the real API would refuse."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


class FakeAnthropic:
    """Anthropic's Messages API for `httpx.MockTransport`; `fake(request)` answers one request."""

    def __init__(self, api_key: str, *, retry_after: str = "0") -> None:
        self.api_key = api_key
        self.retry_after = retry_after  # sent with 429 and 529; "0" keeps suites that honour it fast
        self.answers: deque[Answer] = deque()
        self.requests: list[dict[str, Any]] = []  # native bodies received (accepted or not)
        self.headers: list[httpx.Headers] = []
        self.rejections: list[Rejected] = []
        self.streams: list[FakeByteStream] = []
        self._ids = itertools.count(1)

    @property
    def provider_config(self) -> dict[str, Any]:
        return {"type": "anthropic", "base_url": BASE_URL, "api_key": self.api_key}

    def script(self, *answers: Answer) -> FakeAnthropic:
        self.answers.extend(answers)
        return self

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        raw = request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            self.requests.append(body)
        self.headers.append(request.headers)
        try:
            _check_request(request, body, self.api_key)
        except Rejected as rejection:
            self.rejections.append(rejection)
            return self._error(rejection.status, rejection.error_type, rejection.message)
        if self.answers:
            answer = self.answers.popleft()
        else:  # echo-like; under a forced json tool the model can only answer with an object
            answer = Answer(text='{"answer": "ok"}' if _forced_tool(body) else "ok")
        return self._answer(body, answer)

    def canonical(self, index: int = -1) -> CanonicalRequest:
        """What the native request at `index` means, in OpenAI terms."""
        return canonical_request(self.requests[index])

    # -- answers --------------------------------------------------------------------------------

    def _answer(self, body: dict[str, Any], answer: Answer) -> httpx.Response:
        error = answer.error
        streaming = body.get("stream") is True
        if error is not None and not (streaming and answer.text):
            return self._failure(error, body["model"])
        message = self._message(body, answer)
        if not streaming:
            return httpx.Response(200, headers=self._headers("application/json"), content=orjson.dumps(message))
        events = list(_events(message, answer.fragment))
        if error is not None:
            events = [e for e in events if e[0] not in ("message_delta", "message_stop")]
            events.append(
                ("error", {"type": "error", "error": {"type": _ERRORS[error.kind][1], "message": error.message}})
            )
        stream = FakeByteStream(awkward_pieces(b"".join(_frame(name, data) for name, data in events)))
        self.streams.append(stream)
        return httpx.Response(200, headers=self._headers("text/event-stream; charset=utf-8"), stream=stream)

    def _message(self, body: dict[str, Any], answer: Answer) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        calls = [(call.name, call.arguments) for call in answer.tool_calls]
        forced = _forced_tool(body)
        if forced is not None and not calls and answer.text:
            calls, text = [(forced, _json_object(answer.text))], ""  # no free text under a forced choice
        else:
            text = answer.text
        if text:
            content.append({"type": "text", "text": text})
        for name, arguments in calls:
            content.append(
                {"type": "tool_use", "id": f"toolu_fake{next(self._ids):06d}", "name": name, "input": arguments}
            )
        stop = "max_tokens" if answer.finish == "length" else "tool_use" if calls else _STOP_REASONS[answer.finish]
        return {
            "id": f"msg_fake{next(self._ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": _usage(answer.prompt_tokens, answer.completion_tokens),
        }

    def _failure(self, error: ErrorAnswer, model: str) -> httpx.Response:
        status, error_type = _ERRORS[error.kind]
        message = {"quota": CREDIT_MESSAGE, "not_found": f"model: {model}"}.get(error.kind, error.message)
        return self._error(status, error_type, message)

    def _error(self, status: int, error_type: str, message: str) -> httpx.Response:
        request_id = self._request_id()
        body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
        headers = self._headers("application/json", request_id)
        headers["x-should-retry"] = "true" if status in (429, 500, 529) else "false"
        if status in (429, 529):
            headers["retry-after"] = self.retry_after
        return httpx.Response(status, headers=headers, content=orjson.dumps(body))

    def _headers(self, content_type: str, request_id: str | None = None) -> dict[str, str]:
        return {"content-type": content_type, "request-id": request_id or self._request_id()}

    def _request_id(self) -> str:
        return f"req_fake{next(self._ids):06d}"


def _usage(prompt: int, output: int) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output,
        "service_tier": "standard",
    }


def _forced_tool(body: Mapping[str, Any]) -> str | None:
    """The json response-format tool, when the tool choice leaves the model no free text."""
    choice = body.get("tool_choice") or {}
    names = [tool.get("name") for tool in body.get("tools") or []]
    if JSON_TOOL not in names:
        return None
    forced = choice.get("type") == "any" or (choice.get("type") == "tool" and choice.get("name") == JSON_TOOL)
    return JSON_TOOL if forced else None


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"a forced tool call needs a JSON object answer, not {text!r}")
    return value


# -- the event stream ---------------------------------------------------------------------------


def _events(message: dict[str, Any], size: int) -> Iterator[tuple[str, dict[str, Any]]]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"], size)]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            # Anthropic's own formatting of the input, and an empty first fragment, as recorded.
            arguments = json.dumps(block["input"], ensure_ascii=False) if block["input"] else ""
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *_pieces(arguments, size)]]
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": opening}
        if index == 0:
            yield "ping", {"type": "ping"}
        for delta in deltas:
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    final_usage = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield (
        "message_delta",
        {"type": "message_delta", "delta": delta, "usage": {**final_usage, "output_tokens": usage["output_tokens"]}},
    )
    yield "message_stop", {"type": "message_stop"}


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(size, 1))]


def _frame(name: str, data: Mapping[str, Any]) -> bytes:
    # The recordings write the ping as `{"type": "ping"}`, with a space, unlike every other event.
    payload = b'{"type": "ping"}' if name == "ping" else orjson.dumps(data)
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


# -- validation ---------------------------------------------------------------------------------


def _check_request(request: httpx.Request, body: Any, api_key: str) -> None:
    if request.method != "POST" or request.url.path != "/v1/messages":
        raise Rejected(404, "not_found_error", "Not Found")
    key = request.headers.get("x-api-key")
    if key is None:
        raise Rejected(401, "authentication_error", "x-api-key header is required")
    if key != api_key:
        raise Rejected(401, "authentication_error", "invalid x-api-key")
    if "anthropic-version" not in request.headers:
        raise Rejected(400, "invalid_request_error", "anthropic-version: header is required")
    if not isinstance(body, dict):
        raise _invalid("There was an error parsing the body of your request. The body is not valid JSON.")
    _check_fields(body)
    _check_sampling(body)
    _check_system(body.get("system"))
    _check_messages(body["messages"])
    _check_tools(body)
    stop = body.get("stop_sequences")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) and s.strip() for s in stop)):
        raise _invalid("stop_sequences: each stop sequence must contain non-whitespace characters")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or set(metadata) - {"user_id"}):
        raise _invalid("metadata: Extra inputs are not permitted")
    if not str(body["model"]).startswith("claude-"):
        raise Rejected(404, "not_found_error", f"model: {body['model']}")


def _invalid(message: str) -> Rejected:
    return Rejected(400, "invalid_request_error", message)


def _check_fields(body: Mapping[str, Any]) -> None:
    for key in body:
        if key not in _FIELDS:
            raise _invalid(f"{key}: Extra inputs are not permitted")
    for key in ("model", "messages", "max_tokens"):
        if key not in body:
            raise _invalid(f"{key}: Field required")
    max_tokens = body["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise _invalid("max_tokens: Input should be a valid integer greater than or equal to 0")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _invalid("stream: Input should be a valid boolean")


def _check_sampling(body: Mapping[str, Any]) -> None:
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(f"{key}: Input should be a valid number")
        if value > 1:
            raise _invalid(f"{key}: Input should be less than or equal to 1")
        if value < 0:
            raise _invalid(f"{key}: Input should be greater than or equal to 0")
    if "temperature" in body and "top_p" in body and str(body["model"]).startswith(_SINGLE_SAMPLING):
        raise _invalid("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _invalid("system: Input should be a valid string or list")
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _invalid(f"system.{j}: Input should be a text block")
        if not block.get("text"):
            raise _invalid("system: text content blocks must be non-empty")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _invalid("messages: at least one message is required")
    previous_calls: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise _invalid('messages: first message must use the "user" role')
        if i > 0 and messages[i - 1]["role"] == role:
            raise _invalid(
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
        blocks = _blocks(message.get("content"), i, final=i == len(messages) - 1 and role == "assistant")
        if role == "user":
            _check_results(blocks, i, previous_calls)
            previous_calls = []
        else:
            previous_calls = _check_calls(blocks, i)
    _check_unique_ids(messages)


def _blocks(content: Any, i: int, *, final: bool) -> list[dict[str, Any]]:
    if isinstance(content, str):
        content = [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid(f"messages.{i}.content: Input should be a valid string or list")
    blocks: list[dict[str, Any]] = content
    if not blocks and not final:
        raise _invalid(
            f"messages.{i}: all messages must have non-empty content except for the optional final assistant message"
        )
    for j, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise _invalid(f"messages.{i}.content.{j}: Input should be an object")
        kind = block.get("type")
        if kind == "text" and not block.get("text"):
            raise _invalid(f"messages.{i}.content.{j}: text content blocks must be non-empty")
        if kind in ("image", "document"):
            _check_source(block, f"messages.{i}.content.{j}")
    if final and blocks and blocks[-1].get("type") == "text" and blocks[-1]["text"] != blocks[-1]["text"].rstrip():
        raise _invalid("messages: final assistant content cannot end with trailing whitespace")
    return blocks


def _check_source(block: Mapping[str, Any], path: str) -> None:
    source = block.get("source") or {}
    if source.get("type") == "url" and str(source.get("url", "")).startswith(("http://", "https://")):
        return
    if source.get("type") != "base64" or not source.get("data"):
        raise _invalid(f"{path}.source: Input tag does not match any of the expected tags: 'base64', 'url'")
    allowed = ("application/pdf",) if block["type"] == "document" else _MEDIA_TYPES
    if source.get("media_type") not in allowed:
        raise _invalid(f"{path}.source.media_type: Input should be {', '.join(repr(m) for m in allowed)}")


def _check_calls(blocks: list[dict[str, Any]], i: int) -> list[str]:
    ids: list[str] = []
    for j, block in enumerate(blocks):
        if block.get("type") == "tool_result":
            raise _invalid(f"messages.{i}.content.{j}: tool_result blocks can only be in user messages")
        if block.get("type") == "tool_use":
            if not isinstance(block.get("id"), str) or not _ID.fullmatch(block["id"]):
                raise _invalid(f"messages.{i}.content.{j}.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
            if not isinstance(block.get("input"), dict):
                raise _invalid(f"messages.{i}.content.{j}.input: Input should be a valid dictionary")
            ids.append(block["id"])
    return ids


def _check_results(blocks: list[dict[str, Any]], i: int, expected: list[str]) -> None:
    seen_other = False
    answered: set[str] = set()
    for j, block in enumerate(blocks):
        if block.get("type") == "tool_use":
            raise _invalid(f"messages.{i}.content.{j}: tool_use blocks can only be in assistant messages")
        if block.get("type") != "tool_result":
            seen_other = True
            continue
        if seen_other:
            raise _invalid(
                f"messages.{i}.content.{j}: tool_result blocks must come before any other content in a message"
            )
        use_id = block.get("tool_use_id")
        if not isinstance(use_id, str) or not _ID.fullmatch(use_id):
            raise _invalid(f"messages.{i}.content.{j}.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if use_id not in expected:
            raise _invalid(
                f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: {use_id}. Each "
                "`tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
        if block.get("content") == "" or block.get("content") == []:
            raise _invalid(f"messages.{i}.content.{j}.content: tool_result content must be non-empty when given")
        answered.add(use_id)
    missing = [use_id for use_id in expected if use_id not in answered]
    if missing:
        raise _invalid(
            f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
            "next message."
        )


def _check_unique_ids(messages: list[dict[str, Any]]) -> None:
    ids = [
        b["id"] for m in messages if isinstance(m["content"], list) for b in m["content"] if b.get("type") == "tool_use"
    ]
    if len(ids) != len(set(ids)):
        raise _invalid("messages: `tool_use` ids must be unique")


def _check_tools(body: Mapping[str, Any]) -> None:
    tools = body.get("tools") or []
    names = []
    for i, tool in enumerate(tools):
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
            raise _invalid(f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise _invalid(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
        if set(tool) - {"name", "description", "input_schema", "cache_control", "type", "strict"}:
            raise _invalid(f"tools.{i}.custom: Extra inputs are not permitted")
        names.append(name)
    if len(names) != len(set(names)):
        raise _invalid("tools: Tool names must be unique.")
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise _invalid("tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', 'tool', 'none'")
    if kind == "tool" and choice.get("name") not in names:
        raise _invalid(f"tool_choice.name: no tool named {choice.get('name')!r} was given in tools")
    if kind == "none" and "disable_parallel_tool_use" in choice:
        raise _invalid("tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted")


# -- the native request, read back ----------------------------------------------------------------


def canonical_request(body: Mapping[str, Any]) -> CanonicalRequest:
    tools = body.get("tools") or []
    json_tool = next((t for t in tools if t.get("name") == JSON_TOOL), None)
    choice = body.get("tool_choice")
    stop = body.get("stop_sequences")
    extra = {key: body[key] for key in ("top_k", "thinking", "tool_choice") if key in body}
    return CanonicalRequest(
        model=body["model"],
        stream=body.get("stream") is True,
        system=_system_text(body.get("system")),
        messages=tuple(m for message in body["messages"] for m in _canonical_messages(message)),
        tools=tuple(t["name"] for t in tools if t is not json_tool),
        tool_choice=_canonical_choice(choice, json_tool is not None),
        parallel_tool_calls=False if isinstance(choice, dict) and choice.get("disable_parallel_tool_use") else None,
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=body.get("max_tokens"),
        stop=tuple(stop) if stop is not None else None,
        response_format=_canonical_format(json_tool),
        user=(body.get("metadata") or {}).get("user_id"),
        extra=extra,
    )


def _system_text(system: Any) -> str | None:
    if system is None:
        return None
    return system if isinstance(system, str) else "\n".join(block["text"] for block in system)


def _canonical_messages(message: Mapping[str, Any]) -> Iterator[CanonicalMessage]:
    content = message["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    for block in blocks:
        if block["type"] == "tool_result":
            yield CanonicalMessage(role="tool", tool_call_id=block["tool_use_id"], tool_result=_result_text(block))
    texts = [block["text"] for block in blocks if block["type"] == "text"]
    images = sum(1 for block in blocks if block["type"] in ("image", "document"))
    calls = tuple(
        CanonicalToolCall(id=b["id"], name=b["name"], arguments=b["input"]) for b in blocks if b["type"] == "tool_use"
    )
    if texts or images or calls:
        yield CanonicalMessage(
            role=message["role"], text="\n".join(texts) if texts else None, images=images, tool_calls=calls
        )


def _result_text(block: Mapping[str, Any]) -> str:
    content = block.get("content", "")
    return content if isinstance(content, str) else "\n".join(part.get("text", "") for part in content)


def _canonical_choice(choice: Any, json_mode: bool) -> str | tuple[str, str] | None:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if json_mode and (kind == "any" or (kind == "tool" and choice.get("name") == JSON_TOOL)):
        return None if kind == "tool" else "auto"  # the json tool's doing, not the client's choice
    if kind == "tool":
        return ("function", str(choice["name"]))
    return {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))


def _canonical_format(json_tool: Mapping[str, Any] | None) -> Any:
    if json_tool is None:
        return None
    return "json_object" if json_tool["input_schema"] == dict(JSON_OBJECT_SCHEMA) else "json_schema"
