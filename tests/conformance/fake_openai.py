"""OpenAI and Azure OpenAI fakes for the conformance suite.

They validate what the real services validate for chat completions (credentials, required
fields, `parallel_tool_calls` without `tools`, at most 4 `stop` sequences, tool messages that
answer a preceding assistant's tool calls) and answer `Answer`s in the exact wire format:
`chat.completion` JSON, or SSE with a role chunk, fragmented content and tool-call deltas, a
finish chunk, a usage chunk only when asked, and `data: [DONE]`. The Azure flavour lives at
`/openai/deployments/{deployment}/chat/completions?api-version=...`, wants `api-key`, opens its
streams with the `choices: []` prompt-filter preamble, and sends its own error shape.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import httpx
import orjson
from conformance.model import Answer, CanonicalMessage, CanonicalRequest, CanonicalToolCall, ErrorAnswer

_ERRORS: dict[str, tuple[int, str, str | None, dict[str, str]]] = {
    "invalid_request": (400, "invalid_request_error", None, {}),
    "auth": (401, "invalid_request_error", "invalid_api_key", {}),
    "not_found": (404, "invalid_request_error", "model_not_found", {}),
    "rate_limit": (429, "requests", "rate_limit_exceeded", {"retry-after": "1"}),
    "quota": (429, "insufficient_quota", "insufficient_quota", {}),
    "overloaded": (503, "service_unavailable_error", "server_is_overloaded", {}),
    "server": (500, "server_error", None, {}),
}


def _error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return httpx.Response(status, json=body, headers=headers or {})


class FakeOpenAI:
    """`FakeOpenAI(api_key)` for `type: openai`; `FakeOpenAI(api_key, azure=True)` for `type: azure`."""

    def __init__(self, api_key: str, *, azure: bool = False) -> None:
        self.api_key = api_key
        self.azure = azure
        self.requests: list[dict[str, Any]] = []
        self.urls: list[httpx.URL] = []
        self._script: deque[Answer] = deque()

    @property
    def provider_config(self) -> dict[str, Any]:
        if self.azure:
            return {"type": "azure", "base_url": "https://resource.openai.azure.test", "api_key": self.api_key}
        return {"type": "openai", "base_url": "https://openai.test/v1", "api_key": self.api_key}

    def script(self, *answers: Answer) -> None:
        self._script.extend(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        problem = self._check_transport(request)
        if problem is not None:
            return problem
        try:
            body = orjson.loads(request.content)
        except orjson.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        self.requests.append(body)
        self.urls.append(request.url)
        problem = _check_body(body)
        if problem is not None:
            return problem
        answer = self._script.popleft() if self._script else Answer(text="ok")
        if answer.error is not None:
            return self._fail(answer.error)
        model = str(body["model"])
        if body.get("stream") is True:
            options = body.get("stream_options") or {}
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream", "x-request-id": "req_fake"},
                content=self._sse(answer, model, bool(options.get("include_usage"))),
            )
        return httpx.Response(200, json=_completion(answer, model), headers={"x-request-id": "req_fake"})

    def _check_transport(self, request: httpx.Request) -> httpx.Response | None:
        if self.azure:
            if request.headers.get("api-key") != self.api_key:
                return httpx.Response(
                    401, json={"error": {"code": "401", "message": "Access denied due to invalid subscription key."}}
                )
            path = request.url.path
            if not (path.startswith("/openai/deployments/") and path.endswith("/chat/completions")):
                return httpx.Response(404, json={"error": {"code": "404", "message": "Resource not found"}})
            if not request.url.params.get("api-version"):
                return httpx.Response(404, json={"error": {"code": "404", "message": "Resource not found"}})
            return None
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", code="invalid_api_key")
        if request.url.path != "/v1/chat/completions":
            return _error(404, f"Invalid URL (POST {request.url.path})")
        return None

    def _fail(self, error: ErrorAnswer) -> httpx.Response:
        status, type_, code, headers = _ERRORS[error.kind]
        if self.azure and error.kind == "not_found":
            body = {"error": {"code": "DeploymentNotFound", "message": error.message}}
            return httpx.Response(404, json=body)
        return _error(status, error.message, type_=type_, code=code, headers=headers)

    def _sse(self, answer: Answer, model: str, include_usage: bool) -> bytes:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
        events: list[dict[str, Any]] = []
        if self.azure:
            events.append(
                {
                    "choices": [],
                    "created": 0,
                    "id": "",
                    "model": "",
                    "object": "",
                    "prompt_filter_results": [
                        {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}
                    ],
                }
            )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            event = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                event["usage"] = None
            return event

        events.append(chunk({"role": "assistant", "content": "" if not answer.tool_calls or answer.text else None}))
        for piece in _pieces(answer.text, answer.fragment):
            events.append(chunk({"content": piece}))
        for index, call in enumerate(answer.tool_calls):
            arguments = orjson.dumps(call.arguments).decode()
            first = {
                "index": index,
                "id": f"call_{index}abc",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append(chunk({"tool_calls": [first]}))
            for piece in _pieces(arguments, answer.fragment):
                events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        events.append(chunk({}, answer.finish))
        if include_usage:
            events.append({**base, "choices": [], "usage": _usage(answer)})
        return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"

    def canonical(self, index: int = -1) -> CanonicalRequest:
        body = self.requests[index]
        system: list[str] = []
        messages: list[CanonicalMessage] = []
        for message in body["messages"]:
            role, content = message["role"], message.get("content")
            text = _text(content)
            if role in ("system", "developer"):
                system.append(text or "")
            elif role == "tool":
                messages.append(CanonicalMessage("tool", tool_call_id=message["tool_call_id"], tool_result=text))
            else:
                calls = tuple(
                    CanonicalToolCall(c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"] or "{}"))
                    for c in message.get("tool_calls") or ()
                )
                images = sum(1 for p in content if p.get("type") == "image_url") if isinstance(content, list) else 0
                messages.append(CanonicalMessage(role, text=text, images=images, tool_calls=calls))
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            choice = ("function", choice["function"]["name"])
        stop = body.get("stop")
        response_format = (body.get("response_format") or {}).get("type")
        return CanonicalRequest(
            model=self.urls[index].path.split("/")[3] if self.azure else body["model"],
            stream=body.get("stream") is True,
            system="\n".join(system) if system else None,
            messages=tuple(messages),
            tools=tuple(t["function"]["name"] for t in body.get("tools") or ()),
            tool_choice=choice,
            parallel_tool_calls=body.get("parallel_tool_calls"),
            temperature=body.get("temperature"),
            top_p=body.get("top_p"),
            max_tokens=body.get("max_completion_tokens", body.get("max_tokens")),
            stop=(stop,) if isinstance(stop, str) else tuple(stop) if stop else None,
            seed=body.get("seed"),
            response_format=response_format if response_format in ("json_object", "json_schema") else None,
            user=body.get("user"),
        )


def _check_body(body: Any) -> httpx.Response | None:
    if not isinstance(body, dict) or "model" not in body:
        return _error(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "'messages' must contain at least one message", param="messages")
    if "parallel_tool_calls" in body and not body.get("tools"):
        return _error(
            400, "'parallel_tool_calls' is only allowed when 'tools' are specified.", param="parallel_tool_calls"
        )
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > 4:
        return _error(400, "'$.stop' is invalid: array too long, expected a maximum length of 4", param="stop")
    open_calls: set[str] = set()
    for i, message in enumerate(messages):
        if message.get("role") == "assistant":
            open_calls = {c["id"] for c in message.get("tool_calls") or ()}
        elif message.get("role") == "tool":
            if message.get("tool_call_id") not in open_calls:
                return _error(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
        else:
            open_calls = set()
    return None


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content or None
    if isinstance(content, list):
        texts = [p["text"] for p in content if p.get("type") == "text"]
        return "\n".join(texts) if texts else None
    return None


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _usage(answer: Answer) -> dict[str, int]:
    total = answer.prompt_tokens + answer.completion_tokens
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens, "total_tokens": total}


def _completion(answer: Answer, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}abc",
                "type": "function",
                "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()},
            }
            for i, c in enumerate(answer.tool_calls)
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish}],
        "usage": _usage(answer),
    }
