"""Google Gemini (`generateContent` / `streamGenerateContent?alt=sse`) behind the OpenAI surface.

`base_url` is the bare origin (default `https://generativelanguage.googleapis.com`; one ending in
`/v1beta` or `/v1` is used as the API root as it is); the key travels in `x-goog-api-key`. The
translation lives in three modules, each documenting its decisions: `request` (messages,
tools, schemas, thought signatures, images), `response` (finish reasons, minted tool call
ids, thoughts, usage, the stream state machine) and `errors` (what to retry, what to fall
back on, what is the client's fault).

The profile accepts exactly the OpenAI fields the request translation understands; anything
else (`user`, `parallel_tool_calls`, `reasoning_effort`, `logit_bias`, ...) is settled by the
capability check and the parameter policy before a request reaches this adapter.
`parallel_tool_calls` is flagged unsupported (capability false, so a request that sends it with
tools is refused under every policy, and routing prefers a target that can honour it): Gemini
may always answer with several calls and cannot be told not to.
`logprobs` is accepted only so that `logprobs: false` passes; the `logprobs` capability is
unsupported, so `true` is refused before translation.

Embedding models (`gemini-embedding-*`, `text-embedding-*`, `embedding-*`) serve
`/v1/embeddings` through `batchEmbedContents` (see `embeddings`); the Responses API has no
Gemini equivalent, so every profile says `responses: false`.

Limits and flags are declared for the Gemini families; other models the API serves (Gemma,
tuned models) get the same translation flags and no limits, and may need config overrides.
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Final

import httpx
import orjson

from ...capabilities import Capability, Profile
from ...chat import ChatRequest
from ...config import ProviderConfig
from ...errors import UpstreamError
from ...http.sse import ServerSentEvent
from ...reply import Chunk, Completion
from ..base import StreamTranslator, Target
from ..classify import invalid_response, json_or_none
from ..http_provider import HTTPProvider, path_segment
from ..normalize import normalize_openai
from ..sse_translator import SSETranslator
from .embeddings import BATCH_LIMIT, completion_from_embeddings, embeddings_body
from .errors import error_from_body, error_payload, gemini_error
from .request import gemini_body
from .response import GeminiStream, completion_from

__all__ = ["DEFAULT_BASE_URL", "GeminiProvider", "gemini_profile", "register"]

DEFAULT_BASE_URL: Final = "https://generativelanguage.googleapis.com"
# Bytes of a stream body kept while no event has arrived, to read an unframed JSON error.
_MAX_UNFRAMED: Final = 64 * 1024

_C = Capability
_SUPPORT: Final = MappingProxyType(
    {
        _C.STREAMING.value: True,
        _C.STREAM_USAGE.value: True,
        _C.TOOLS.value: True,
        _C.TOOL_CHOICE.value: True,
        _C.PARALLEL_TOOL_CALLS.value: False,
        _C.JSON_OBJECT.value: True,
        _C.JSON_SCHEMA.value: True,
        _C.VISION.value: True,
        _C.AUDIO_INPUT.value: True,
        _C.LOGPROBS.value: False,
        _C.MULTIPLE_CHOICES.value: True,
        _C.RESPONSES.value: False,
    }
)
ACCEPTED_PARAMS: Final = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "tools",
        "tool_choice",
        "logprobs",
    }
)
# candidateCount takes 1 to 8; an `n` outside that is settled by the parameter policy up front
# rather than left for Gemini to refuse.
_RANGES: Final = MappingProxyType(
    {
        "temperature": (0.0, 2.0),
        "top_p": (0.0, 1.0),
        "n": (1, 8),
        "max_tokens": (1, math.inf),  # maxOutputTokens must be positive
        "max_completion_tokens": (1, math.inf),
    }
)
# (prefix, max output tokens, context window); longest prefixes first. Google's published limits.
_FAMILIES: Final = (
    ("gemini-3", 65_536, 1_048_576),
    ("gemini-2.5-flash-lite", 65_536, 1_048_576),
    ("gemini-2.5-flash", 65_536, 1_048_576),
    ("gemini-2.5-pro", 65_536, 1_048_576),
    ("gemini-2.0-flash", 8_192, 1_048_576),
)


# Google's embedding models: served by `/v1/embeddings` through `batchEmbedContents`, nothing else.
_EMBEDDING_PREFIXES: Final = ("gemini-embedding-", "text-embedding-", "embedding-")
_EMBEDDINGS: Final = Profile(support=MappingProxyType({_C.EMBEDDINGS.value: True, _C.RESPONSES.value: False}))


def gemini_profile(model: str) -> Profile:
    """What the adapter can translate, with the output and context limits of known families."""
    name = model.removeprefix("models/")
    if name.startswith(_EMBEDDING_PREFIXES):
        return _EMBEDDINGS
    limits = next(((out, ctx) for prefix, out, ctx in _FAMILIES if name.startswith(prefix)), (None, None))
    return Profile(
        support=_SUPPORT,
        unsupported_params=frozenset({"parallel_tool_calls"}),
        accepted_params=ACCEPTED_PARAMS,
        ranges=_RANGES,
        max_output_tokens=limits[0],
        context_window=limits[1],
        max_stop=5,
    )


class GeminiProvider(HTTPProvider):
    """Adapter for `type: gemini`: the Gemini API with an API key."""

    embedding_batch_limit: Final = BATCH_LIMIT  # requests per batchEmbedContents call

    def __init__(self, config: ProviderConfig) -> None:
        base = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._root = base if base.endswith(("/v1beta", "/v1")) else f"{base}/v1beta"
        headers = {k.lower(): v for k, v in config.headers.items()}
        if config.api_key:
            headers["x-goog-api-key"] = config.api_key
        super().__init__(config, headers)
        self._urls: dict[tuple[str, bool | str], httpx.URL] = {}

    def profile(self, model: str) -> Profile:
        return gemini_profile(model)

    def build_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        model = target.model.removeprefix("models/")
        if request.kind == "embeddings":
            url = self._urls.get((model, "embed"))
            if url is None:
                url = self._urls[(model, "embed")] = httpx.URL(
                    f"{self._root}/models/{path_segment(model)}:batchEmbedContents"
                )
            return self.post(url, False, orjson.dumps(embeddings_body(request.body, model, self._name)))
        body = gemini_body(normalize_openai(request.body, target), model)
        url = self._urls.get((model, request.stream))
        if url is None:
            resource = f"{self._root}/models/{path_segment(model)}"
            if request.stream:
                url = httpx.URL(f"{resource}:streamGenerateContent", params={"alt": "sse"})
            else:
                url = httpx.URL(f"{resource}:generateContent")
            self._urls[(model, request.stream)] = url
        return self.post(url, request.stream, orjson.dumps(body))

    def parse_response(self, response: httpx.Response, body: bytes, request: ChatRequest, target: Target) -> Completion:
        data = self._decode(body)
        if error_payload(data) is not None:
            raise gemini_error(self._name, data, status=None)
        if request.kind == "embeddings":
            return completion_from_embeddings(data, request.body, target.model, self._name)
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict):
            raise invalid_response(self._name, "a response that is not a GenerateContentResponse")
        return Completion(data=completion_from(data, target.model, self._name))

    def stream_translator(self, request: ChatRequest, target: Target) -> StreamTranslator:
        return _Translator(self, GeminiStream(self._name, target.model, request.include_usage))

    def _event_chunks(self, stream: GeminiStream, data: bytes) -> list[Chunk]:
        payload = self._decode(data)
        if error_payload(payload) is not None:
            raise gemini_error(self._name, payload, status=None)
        if isinstance(payload, list) and len(payload) == 1:
            payload = payload[0]
        return stream.feed(payload) if isinstance(payload, dict) else []

    def _decode(self, data: bytes) -> Any:
        payload = json_or_none(data)
        if payload is None:
            raise invalid_response(self._name, "a body that is not JSON")
        return payload

    def error_from_response(self, response: httpx.Response, body: bytes) -> UpstreamError:
        return error_from_body(self._name, body, response.status_code, response.headers)


class _Translator(SSETranslator):
    """SSE framing (CRLF) in front of `GeminiStream`, and the unframed-error case."""

    def __init__(self, provider: GeminiProvider, stream: GeminiStream) -> None:
        super().__init__()
        self._provider = provider
        self._stream = stream
        self._unframed = bytearray()  # the body so far, while it has produced no event
        self._framed = False

    def feed(self, data: bytes) -> list[Chunk]:
        if not self._framed and len(self._unframed) < _MAX_UNFRAMED:
            self._unframed += data
        return super().feed(data)

    def event(self, event: ServerSentEvent) -> list[Chunk]:
        self._framed = True
        return self._provider._event_chunks(self._stream, event.data)

    def end(self) -> list[Chunk]:
        if not self._framed and self._unframed.strip():
            # Gemini can answer a stream request with a bare JSON error, even under a 200.
            payload = self._provider._decode(bytes(self._unframed))
            if error_payload(payload) is not None:
                raise gemini_error(self._provider.name, payload, status=None)
        return self._stream.end()


def register(registry: Any) -> None:
    registry.register("gemini", GeminiProvider)
