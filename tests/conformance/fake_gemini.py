"""A Gemini API fake for the conformance suite: strict like the real one, byte-faithful answers.

`FakeGemini(api_key)` is an `httpx.MockTransport` handler for `type: gemini` at
`https://gemini.test`. It serves only `POST /v1beta/models/{model}:generateContent` and
`:streamGenerateContent?alt=sse` (anything else is a 404; a stream request without `alt=sse`
would get a JSON array, which routemw must never ask for, so it is refused), wants the key in
`x-goog-api-key` (a missing or wrong one is the real 400 `API_KEY_INVALID`), and refuses bodies
the way the real API does (`gemini_checks`).

Answers follow the recordings in `recordings/gemini/`: `GenerateContentResponse` JSON with
`candidates`, `finishReason` (STOP even for function calls, as Gemini has no tool-call reason),
`usageMetadata`, `modelVersion` and `responseId`; streams as `data: {...}\r\n\r\n` events in
Gemini's `": "` spacing, text split into `answer.fragment`-sized pieces, each function call whole
in an event of its own, partial usage on every event and the full usage with the finish reason
on the last (after calls, a trailing event with an empty text part, as Gemini 3 does). The first
function call of an answer carries a thought signature. Stream bodies arrive in pieces cut at
awkward offsets, between the CR and LF of a line ending too. Scripted `ErrorAnswer`s become
Gemini's error bodies and statuses; on the streaming endpoint they are plain JSON under an
event-stream content type, as recorded.

`canonical()` reads a native request back into OpenAI terms. Gemini has no tool call ids, so the
canonical ids are positional (`gemini:<content>:<part>`), and a `functionResponse` answers the
call of the same name in the preceding model turn (the k-th response named X answers the k-th
call named X), which is how Gemini pairs them. Function responses of a user turn come out as
`tool` messages before that turn's own text.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Final

import httpx
import orjson
from conformance.gemini_checks import Rejection, check_request
from conformance.model import Answer, CanonicalMessage, CanonicalRequest, CanonicalToolCall, ErrorAnswer

__all__ = ["FakeGemini", "PieceStream", "gemini_json"]

BASE_URL: Final = "https://gemini.test"
_PATH: Final = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)$")
_RPC_FOR_STATUS: Final = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
_FINISH: Final = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}
# Piece sizes for stream bodies; with CRLF framing they also split "\r" from "\n".
_SIZES: Final = (7, 1, 13, 2, 64, 3, 1, 29)


def gemini_json(value: Any) -> bytes:
    """JSON spaced as Gemini's streams are: `": "` after keys, nothing after commas."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ": ")).encode()


def _error_body(status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message, "status": _RPC_FOR_STATUS.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


def _bad_request(message: str, field: str | None = None) -> dict[str, Any]:
    details = [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"description": message}]}]
    if field:
        details[0]["fieldViolations"][0]["field"] = field
    return _error_body(400, message, details)


def _api_key_invalid() -> dict[str, Any]:
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        },
        {
            "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
            "locale": "en-US",
            "message": "API key not valid.",
        },
    ]
    return _error_body(400, "API key not valid. Please pass a valid API key.", details)


def _quota(message: str, quota_id: str, delay: str) -> dict[str, Any]:
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {"quotaMetric": "generativelanguage.googleapis.com/generate_content_requests", "quotaId": quota_id}
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"url": "https://ai.google.dev/gemini-api/docs"}]},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
    ]
    return _error_body(429, message, details)


def _scripted_error(error: ErrorAnswer) -> tuple[int, dict[str, Any]]:
    kind, message = error.kind, error.message
    if kind == "auth":
        body = _api_key_invalid()
        body["error"]["message"] = message
        return 400, body
    if kind == "rate_limit":
        return 429, _quota(message, "GenerateRequestsPerMinutePerProjectPerModel", "1s")
    if kind == "quota":
        return 429, _quota(message, "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "23s")
    if kind == "overloaded":
        body = _error_body(503, message)
        body["error"]["status"] = "UNAVAILABLE"
        return 503, body
    status = {"server": 500, "not_found": 404}.get(kind, 400)
    return status, _error_body(status, message)


class PieceStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body delivered in pieces, to sync and async readers alike.

    Pieces follow `sizes`, and every event's closing blank line is also cut between its CR and
    LF, so a reader that splits lines per piece is caught on every event.
    """

    def __init__(self, body: bytes, sizes: tuple[int, ...] = _SIZES) -> None:
        cuts = {m.start() + 1 for m in re.finditer(rb"\r\n\r\n", body)}
        position, turn = 0, 0
        while position < len(body):
            position += sizes[turn % len(sizes)]
            turn += 1
            cuts.add(position)
        edges = [0, *sorted(c for c in cuts if 0 < c < len(body)), len(body)]
        self.pieces = [body[a:b] for a, b in itertools.pairwise(edges)]

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


class FakeGemini:
    """The Gemini API for one key, answering scripted `Answer`s (text "ok" when none is left)."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []  # native bodies that parsed as JSON, refused ones too
        self.urls: list[httpx.URL] = []
        self.refusals: list[str] = []  # the message of each request refused, in order
        self._script: deque[Answer] = deque()
        self._responses = 0

    @property
    def provider_config(self) -> dict[str, Any]:
        return {"type": "gemini", "base_url": BASE_URL, "api_key": self.api_key}

    def script(self, *answers: Answer) -> None:
        self._script.extend(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        match = _PATH.match(request.url.path)
        stream = match is not None and match.group(2) == "streamGenerateContent"
        if request.method != "POST" or match is None:
            return self._refuse(404, _error_body(404, f"Method not found: {request.method} {request.url.path}."))
        if request.headers.get("x-goog-api-key") != self.api_key:
            return self._refuse(400, _api_key_invalid(), stream)
        if stream and request.url.params.get("alt") != "sse":
            message = "streamGenerateContent without alt=sse answers a JSON array; routemw must ask for alt=sse."
            return self._refuse(400, _bad_request(message, "alt"), stream)
        try:
            body = orjson.loads(request.content)
        except orjson.JSONDecodeError:
            return self._refuse(400, _bad_request("Invalid JSON payload received. Unexpected token."), stream)
        self.requests.append(body)
        self.urls.append(request.url)
        model = match.group(1)
        if not model.startswith(("gemini-", "gemma-")):
            message = (
                f"models/{model} is not found for API version v1beta, or is not supported for generateContent. "
                "Call ModelService.ListModels to see the list of available models and their supported methods."
            )
            return self._refuse(404, _error_body(404, message), stream)
        try:
            check_request(body, model)
        except Rejection as rejection:
            return self._refuse(400, _bad_request(rejection.message, rejection.field), stream)
        answer = self._script.popleft() if self._script else Answer(text="ok")
        if answer.error is not None:
            status, error = _scripted_error(answer.error)
            return self._error_response(status, error, stream)
        self._responses += 1
        events = self._events(answer, model, f"fakeResp{self._responses:04d}")
        if stream:
            sse = b"".join(b"data: " + gemini_json(event) + b"\r\n\r\n" for event in events)
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=PieceStream(sse))
        return httpx.Response(200, json=_merge(events))

    def _refuse(self, status: int, body: dict[str, Any], stream: bool = False) -> httpx.Response:
        self.refusals.append(body["error"]["message"])
        return self._error_response(status, body, stream)

    @staticmethod
    def _error_response(status: int, body: dict[str, Any], stream: bool) -> httpx.Response:
        # On the streaming endpoint the error is plain indented JSON labelled as an event stream.
        content_type = "text/event-stream" if stream else "application/json; charset=UTF-8"
        content = json.dumps(body, indent=2).encode() + b"\n"
        return httpx.Response(status, headers={"content-type": content_type}, content=content)

    def _events(self, answer: Answer, model: str, response_id: str) -> list[dict[str, Any]]:
        """The answer as stream events; `_merge` makes the one-shot response from them."""
        parts: list[dict[str, Any]] = [{"text": piece} for piece in _pieces(answer.text, answer.fragment)]
        for index, call in enumerate(answer.tool_calls):
            part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.arguments}}
            if index == 0:
                part["thoughtSignature"] = base64.b64encode(f"fake-signature:{response_id}".encode()).decode()
            parts.append(part)
        if answer.tool_calls or not parts:
            parts.append({"text": ""})  # Gemini 3 ends a call turn with an empty text part and the finish
        prompt_only = {
            "promptTokenCount": answer.prompt_tokens,
            "totalTokenCount": answer.prompt_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": answer.prompt_tokens}],
        }
        events = []
        for position, part in enumerate(parts):
            candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
            usage: dict[str, Any] = dict(prompt_only)
            if position == len(parts) - 1:
                candidate["finishReason"] = _FINISH[answer.finish]
                usage["candidatesTokenCount"] = answer.completion_tokens
                usage["totalTokenCount"] = answer.prompt_tokens + answer.completion_tokens
            events.append(
                {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": response_id}
            )
        return events

    def canonical(self, index: int = -1) -> CanonicalRequest:
        body = self.requests[index]
        match = _PATH.match(self.urls[index].path)
        assert match is not None
        config = body.get("generationConfig") or {}
        system = [p["text"] for p in (body.get("systemInstruction") or {}).get("parts", ()) if "text" in p]
        stops = config.get("stopSequences")
        extra = {k: v for k, v in config.items() if k in ("candidateCount", "presencePenalty", "frequencyPenalty")}
        extra["thought_signatures"] = [
            p["thoughtSignature"] for c in body["contents"] for p in c["parts"] if "thoughtSignature" in p
        ]
        return CanonicalRequest(
            model=match.group(1),
            stream=match.group(2) == "streamGenerateContent",
            system="\n".join(system) if system else None,
            messages=tuple(_canonical_messages(body["contents"])),
            tools=tuple(d["name"] for t in body.get("tools") or () for d in t.get("functionDeclarations") or ()),
            tool_choice=_canonical_choice(body.get("toolConfig")),
            temperature=config.get("temperature"),
            top_p=config.get("topP"),
            max_tokens=config.get("maxOutputTokens"),
            stop=tuple(stops) if stops else None,
            seed=config.get("seed"),
            response_format=_canonical_format(config),
            extra=extra,
        )


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(size, 1))]


def _merge(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streaming response: every event's parts in one candidate, the last event's rest."""
    last = events[-1]
    parts = [p for e in events for p in e["candidates"][0]["content"]["parts"] if p.get("text") != ""]
    candidate = {**last["candidates"][0], "content": {"parts": parts, "role": "model"}}
    if not parts:
        del candidate["content"]  # a blocked or empty answer has no content at all
    if any("functionCall" in p for p in parts):
        candidate["finishMessage"] = "Model generated function call(s)."
    return {**last, "candidates": [candidate]}


def _canonical_messages(contents: list[dict[str, Any]]) -> Iterator[CanonicalMessage]:
    calls: list[CanonicalToolCall] = []  # the calls of the latest model turn, for pairing responses
    for i, content in enumerate(contents):
        parts = content["parts"]
        texts = [p["text"] for p in parts if "text" in p and not p.get("thought")]
        images = sum(1 for p in parts if "inlineData" in p or "fileData" in p)
        text = "\n".join(texts) if texts else None
        if content.get("role") == "model":
            calls = [
                CanonicalToolCall(p["functionCall"].get("id") or f"gemini:{i}:{j}", p["functionCall"]["name"], args)
                for j, p in enumerate(parts)
                if "functionCall" in p
                for args in [p["functionCall"].get("args") or {}]
            ]
            yield CanonicalMessage("assistant", text=text, images=images, tool_calls=tuple(calls))
            continue
        answered: dict[str, int] = {}
        for part in parts:
            if "functionResponse" in part:
                response = part["functionResponse"]
                yield CanonicalMessage(
                    "tool",
                    tool_call_id=_pair(calls, response["name"], answered),
                    tool_result=orjson.dumps(response.get("response")).decode(),
                )
        if text is not None or images:
            yield CanonicalMessage("user", text=text, images=images)


def _pair(calls: list[CanonicalToolCall], name: str, answered: dict[str, int]) -> str | None:
    seen = answered.get(name, 0)
    answered[name] = seen + 1
    matching = [c for c in calls if c.name == name]
    return matching[seen].id if seen < len(matching) else None


def _canonical_choice(tool_config: Mapping[str, Any] | None) -> str | tuple[str, str] | None:
    config = (tool_config or {}).get("functionCallingConfig")
    if not config:
        return None
    mode = config.get("mode")
    allowed = config.get("allowedFunctionNames") or []
    if mode == "ANY":
        return ("function", allowed[0]) if len(allowed) == 1 else "required"
    return {"AUTO": "auto", "NONE": "none"}.get(mode)


def _canonical_format(config: Mapping[str, Any]) -> Any:
    if "responseJsonSchema" in config or "responseSchema" in config:
        return "json_schema"
    if config.get("responseMimeType") == "application/json":
        return "json_object"
    return None
