"""Strict fake upstreams for the embeddings and Responses doors, for `httpx.MockTransport`.

`FakeOpenAIDoors` serves OpenAI's `POST /v1/embeddings` and `POST /v1/responses` (and Azure's
`/openai/deployments/{d}/embeddings` and `/openai/v1/responses`): every request body is
validated against the official OpenAPI schema (`CreateEmbeddingRequest`, `CreateResponse`,
`nullable` read as JSON Schema's null, see `battery.test_openapi_fuzz`), refused with OpenAI's
400 envelope when it is not valid, and answered with a genuine-shaped body: an embeddings list
(floats, or little-endian float32 base64 when asked, as OpenAI encodes it) or a `response`
object, JSON or as its event stream. A previous response it did not make is the real 400
`previous_response_not_found`. Scripted `Step`s (from `fakes`) replace the next answers.

`FakeGeminiEmbed` serves `POST /v1beta/models/{model}:batchEmbedContents`, validating the body
against Google's OpenAPI description (`gemini_checks`, with the real API's 100-request limit)
and answering one vector per request whose first value is the request's position in the batch
and whose second is `marker(text)` (the number the text ends with), so tests can see the order.
"""

from __future__ import annotations

import base64
import itertools
import re
import struct
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

import httpx
import orjson
from battery.test_openapi_fuzz import _validator
from conformance.gemini_checks import Rejection, _walk
from fakes import FakeByteStream, RecordedRequest, Step, answer_sse, openai_error

__all__ = ["DIMENSIONS", "FakeGeminiEmbed", "FakeOpenAIDoors", "marker", "response_events", "response_object"]

DIMENSIONS: Final = 4
_AZURE_EMBED: Final = re.compile(r"/openai/deployments/[^/]+/embeddings")


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, headers={"content-type": "application/json"}, content=orjson.dumps(body))


def _answer(step: Step) -> httpx.Response:
    if step.parts is None:
        return httpx.Response(step.status, headers=dict(step.headers), content=step.body)
    return httpx.Response(step.status, headers=dict(step.headers), stream=FakeByteStream(step.parts))


def marker(item: Any) -> float:
    """The number a text ends with (`"doc 17"`: 17), else its length: the second value of its vector."""
    if isinstance(item, str):
        found = re.search(r"(\d+)$", item)
        return float(found.group(1)) if found else float(len(item))
    return float(len(item))


def response_object(
    response_id: str, model: str, text: str = "Hello there.", status: str = "completed"
) -> dict[str, Any]:
    """A `response` as OpenAI returns it (the fields the SDK and the spec's `Response` name)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": 1_750_000_000,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [
            {
                "type": "message",
                "id": f"msg_{response_id}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ]
        if status == "completed"
        else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 2},
            "total_tokens": 19,
        },
        "user": None,
        "metadata": {},
    }


def response_events(response_id: str, model: str, pieces: Iterable[str] = ("Hello", " there.")) -> bytes:
    """A Responses event stream for one text answer, event names and sequence numbers included."""
    pieces = list(pieces)
    text = "".join(pieces)
    done = response_object(response_id, model, text)
    start = {**done, "status": "in_progress", "output": [], "usage": None}
    item_id = f"msg_{response_id}"
    item = {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
        *({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []} for piece in pieces),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": done["output"][0]},
        {"type": "response.completed", "response": done},
    ]
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps({**e, "sequence_number": n}) + b"\n\n"
        for n, e in enumerate(events)
    )


class FakeOpenAIDoors:
    """OpenAI's embeddings and Responses endpoints, strict about their request bodies."""

    def __init__(self, *, name: str = "openai", steps: Iterable[Step] = ()) -> None:
        self.name = name
        self.script: deque[Step] = deque(steps)
        self.requests: list[RecordedRequest] = []
        self.made: set[str] = set()  # response ids this upstream created
        self._ids = itertools.count(1)

    def queue(self, *steps: Step) -> FakeOpenAIDoors:
        self.script.extend(steps)
        return self

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        raw = await request.aread()
        body = orjson.loads(raw) if raw else None
        self.requests.append(
            RecordedRequest(request.method, str(request.url), httpx.Headers(request.headers), raw, body)
        )
        path = request.url.path
        if path.endswith("/responses"):
            schema = "CreateResponse"
        elif path == "/v1/embeddings" or path == "/openai/v1/embeddings" or _AZURE_EMBED.fullmatch(path):
            schema = "CreateEmbeddingRequest"
        else:
            return _json(404, openai_error(f"Invalid URL (POST {path})"))
        problems = [error.message for error in _validator(schema).iter_errors(body)]
        if problems:
            return _json(400, openai_error(f"Invalid request: {problems[0]}", code="invalid_request"))
        if self.script:
            step = self.script.popleft()
            return _answer(step)
        if schema == "CreateEmbeddingRequest":
            return _json(200, self._embeddings(body))
        return self._response(body)

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        value = body["input"]
        items = [value] if isinstance(value, str) or isinstance(value[0], int) else value
        data = []
        for index, item in enumerate(items):
            vector = [float(index), marker(item), 0.5, -0.25][: body.get("dimensions") or DIMENSIONS]
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(len(item) if isinstance(item, list) else max(1, len(item) // 4) for item in items)
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _response(self, body: dict[str, Any]) -> httpx.Response:
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.made:
            error = openai_error(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
            return _json(400, error)
        response_id = f"resp_{self.name}_{next(self._ids)}"
        self.made.add(response_id)
        if body.get("stream"):
            return _answer(answer_sse(response_events(response_id, body["model"])))
        return _json(200, response_object(response_id, body["model"]))


class FakeGeminiEmbed:
    """Gemini's `batchEmbedContents`, strict like the real API."""

    LIMIT: Final = 100

    def __init__(self, *, api_key: str = "gm-test-key", fail_call: int | None = None) -> None:
        self.api_key = api_key
        self.fail_call = fail_call  # the call (1-based) that answers 503
        self.requests: list[RecordedRequest] = []

    @property
    def provider_config(self) -> dict[str, Any]:
        return {"type": "gemini", "base_url": "https://gemini.test", "api_key": self.api_key}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        raw = await request.aread()
        body = orjson.loads(raw)
        self.requests.append(
            RecordedRequest(request.method, str(request.url), httpx.Headers(request.headers), raw, body)
        )
        match = re.fullmatch(r"/v1beta/models/([^/:]+):batchEmbedContents", request.url.path)
        if match is None:
            return _json(404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}})
        if request.headers.get("x-goog-api-key") != self.api_key:
            return _json(400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}})
        if self.fail_call is not None and len(self.requests) == self.fail_call:
            return _json(503, {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
        try:
            _walk(body, {"$ref": "#/components/schemas/BatchEmbedContentsRequest"}, "")
            requests = body["requests"]
            if len(requests) > self.LIMIT:
                raise Rejection(
                    f"* BatchEmbedContentsRequest.requests: at most {self.LIMIT} requests can be in one batch"
                )
            for i, item in enumerate(requests):
                if item.get("model") != f"models/{match.group(1)}":
                    raise Rejection(f"requests[{i}].model must match the batch's model")
                if not item.get("content", {}).get("parts"):
                    raise Rejection(f"requests[{i}].content.parts must not be empty")
        except Rejection as exc:
            return _json(400, {"error": {"code": 400, "message": exc.message, "status": "INVALID_ARGUMENT"}})
        embeddings = []
        for index, item in enumerate(requests):
            text = item["content"]["parts"][0]["text"]
            size = item.get("outputDimensionality") or DIMENSIONS
            embeddings.append({"values": [float(index), marker(text), 0.5, -0.25][:size]})
        return _json(200, {"embeddings": embeddings})
