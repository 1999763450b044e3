"""OpenAI and every OpenAI-compatible server: the passthrough adapter.

The request goes out as the client sent it, with only `model` replaced by the route's model
name and route `params` defaults filled in for keys the client did not send; when neither
applies, the client's own bytes are forwarded without re-encoding. Unknown fields travel on
untouched, because the OpenAI API grows every month and a gateway must not be the reason a new
field cannot be used.

Which models the upstream serves is the `profiles` option's to say: `openai` (the default for
OpenAI's own URL) applies OpenAI's per-family profiles, so a reasoning model reached through a
corporate proxy or a regional endpoint still gets `max_completion_tokens` and has its sampling
parameters checked before any upstream call; `none` (the default for every other URL) leaves
every capability unknown. The base URL alone cannot tell a proxy in front of OpenAI from a vLLM.

The same adapter serves `/v1/embeddings` (`{base_url}/embeddings`, the body passed through
like a chat request's, at most 2,048 inputs a call) and OpenAI's Responses API
(`{base_url}/responses`, see `responses`); `ChatRequest.kind` says which.

Responses keep the upstream's bytes as well. Stream chunks are decoded (to find errors, the
finish, and to skip Azure-style `choices: []` preambles) but forwarded as the upstream framed
them unless something changed.

Success is checked for the least a client can use, on the dicts that are parsed anyway (a few
`isinstance` calls per chunk): a completion's `choices` is a non-empty list of objects with at
least one `message`; a chunk is an object whose `choices`, when present, is a list of objects
(the usage chunk's `[]` included). Anything else is an invalid upstream response, retried or
passed to the next route like an error status, rather than relayed as a junk success.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import httpx
import orjson

from ...capabilities import Profile
from ...chat import ChatRequest
from ...config import ProviderConfig
from ...embeddings import MAX_INPUTS
from ...errors import Action, ConfigError, UpstreamError
from ...http.sse import ServerSentEvent
from ...reply import Chunk, Completion
from ..base import StreamTranslator, Target
from ..classify import action_for_status, invalid_response, json_or_none, retry_after_seconds
from ..http_provider import HTTPProvider
from ..normalize import normalize_openai
from ..sse_translator import SSETranslator
from .profiles import official_profile
from .responses import ResponsesStream, parse_response_body, renamed
from .responses import native_body as responses_body

__all__ = ["OpenAIProvider", "OpenAIStream", "embeddings_body", "register"]

DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
PROFILES: Final = ("openai", "none")  # values of the `profiles` option
_DONE: Final = b"[DONE]"
# Codes that mean "this target cannot take this parameter or model", which another target may.
_TARGET_SPECIFIC_CODES: Final = frozenset({"unsupported_parameter", "unsupported_value", "model_not_supported"})
_QUOTA_CODES: Final = frozenset({"insufficient_quota", "credit_balance_exhausted", "billing_hard_limit_reached"})
_MAX_ERROR_MESSAGE: Final = 2000


class OpenAIProvider(HTTPProvider):
    """Adapter for `type: openai`: OpenAI itself and OpenAI-compatible servers."""

    native_protocol: Final = "openai"  # Responses API requests pass through (see `responses`)
    embedding_batch_limit: Final = MAX_INPUTS  # inputs per embeddings call

    def __init__(self, config: ProviderConfig, *, default_base_url: str = DEFAULT_BASE_URL) -> None:
        self._base_url = config.base_url or default_base_url
        default_profiles = "openai" if self._base_url == DEFAULT_BASE_URL else "none"
        profiles = config.options.get("profiles", default_profiles)
        if profiles not in PROFILES:
            # Checked here, where the adapter is built from the loaded config (at `check` and at
            # start-up), with the path the loader would give it.
            raise ConfigError(
                [f"providers.{config.name}.profiles: expected one of {', '.join(PROFILES)}, got {profiles!r}"]
            )
        self._openai_models = profiles == "openai"
        self._url = httpx.URL(self._base_url + "/chat/completions")
        self._embeddings_url = httpx.URL(self._base_url + "/embeddings")
        self._responses_url = httpx.URL(self._base_url + "/responses")
        # Configured headers come last, so a deployment can replace even the auth scheme.
        super().__init__(config, {**self.auth_headers(config), **{k.lower(): v for k, v in config.headers.items()}})

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        """Credentials and account headers; subclasses for other auth schemes override this."""
        headers: dict[str, str] = {}
        if config.api_key:
            headers["authorization"] = f"Bearer {config.api_key}"
        for option, header in (("organization", "openai-organization"), ("project", "openai-project")):
            value = config.options.get(option)
            if value:
                headers[header] = str(value)
        return headers

    def url_for(self, target: Target) -> httpx.URL:
        return self._url

    def embeddings_url(self, target: Target) -> httpx.URL:
        return self._embeddings_url

    def responses_url(self, target: Target) -> httpx.URL:
        return self._responses_url

    def profile(self, model: str) -> Profile:
        return official_profile(model) if self._openai_models else Profile()

    def build_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        kind = request.kind
        if kind == "chat":
            return self.post(self.url_for(target), request.stream, self.encode_body(request, target))
        if kind == "embeddings":
            return self.post(self.embeddings_url(target), False, embeddings_body(request, target))
        native = request.native
        if native is None:
            raise RuntimeError("a Responses API request without the client's own request")
        return self.post(self.responses_url(target), request.stream, responses_body(native, target))

    def encode_body(self, request: ChatRequest, target: Target) -> bytes:
        body = normalize_openai(request.body, target)
        if body is request.body and request.raw is not None and target.model == request.model:
            return request.raw  # nothing to change: forward the client's bytes as they are
        if body is request.body:
            body = dict(body)
        body["model"] = target.model
        return orjson.dumps(body)

    def parse_response(self, response: httpx.Response, body: bytes, request: ChatRequest, target: Target) -> Completion:
        if request.kind == "embeddings":
            return self._embeddings(body)
        if request.kind == "responses":
            return parse_response_body(self._name, body)
        data = json_or_none(body)
        if not isinstance(data, dict) or not _is_completion(data.get("choices")):
            raise invalid_response(self._name, "a response that is not a chat completion")
        return Completion(data=data, raw=body)

    def _embeddings(self, body: bytes) -> Completion:
        # The vectors are most of the body (16 of 1,536 dimensions in base64 are 130 kB) and the
        # gateway needs none of them: OpenAI writes `model` and `usage` after `data`, so those
        # are read from the tail and the bytes go on as they are (`native`). A body written in
        # another order, or one that is not an embeddings list, is parsed and checked whole.
        tail = _tail_fields(body)
        if tail is not None and body[:1] == b"{" and b'"embedding"' in body:
            return Completion(data={"object": "list", **tail}, native=body)
        data = json_or_none(body)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise invalid_response(self._name, "a response that is not an embeddings list")
        if not all(isinstance(item, dict) and "embedding" in item for item in data["data"]):
            raise invalid_response(self._name, "an embeddings list with an item that is not an embedding")
        return Completion(data=data, raw=body)

    def completion_with_model(self, completion: Completion, model: str) -> Completion:
        """A Responses or embeddings answer (`native` bytes) reporting `model` (the dispatcher's
        hook for `response_model`)."""
        return renamed(completion, model)

    def stream_translator(self, request: ChatRequest, target: Target) -> StreamTranslator:
        if request.kind == "responses":
            return ResponsesStream(self._name)
        return OpenAIStream(self)

    def _chunk(self, data: bytes, model: str | None = None) -> Chunk | None:
        """The chunk in `data`, or None for one with nothing for the client; `model` renames it."""
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise invalid_response(self._name, "a stream event that is not JSON") from None
        if not isinstance(payload, dict):
            raise invalid_response(self._name, f"a stream event that is {_json_kind(payload)}, not a chunk object")
        if payload.get("error"):
            # An error inside a 200 stream (OpenRouter, vLLM and others do this).
            raise self._classify(payload, status=None, headers=None)
        choices = payload.get("choices")
        if choices is not None and not _is_choice_list(choices):
            raise invalid_response(self._name, "a stream chunk whose `choices` is not a list of objects")
        if not choices and payload.get("usage") is None:
            # A preamble with nothing for the client (Azure's prompt_filter_results chunk),
            # or a keep-alive-like empty chunk: never forwarded.
            return None
        if model is not None and payload.get("model", model) != model:
            # Set on the dict parsed just now, before a Chunk exists: the cheapest exact rename
            # (one re-encode of this chunk, no copy; see `routemw.dispatch._renamed`).
            payload["model"] = model
            return Chunk(data=payload)
        return Chunk(data=payload, raw=data)

    def error_from_response(self, response: httpx.Response, body: bytes) -> UpstreamError:
        try:
            payload: Any = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            payload = None
        return self._classify(payload, status=response.status_code, headers=response.headers)

    def _classify(self, payload: Any, *, status: int | None, headers: httpx.Headers | None) -> UpstreamError:
        fields = _error_fields(payload)
        message = fields.get("message") or (
            f"Provider '{self._name}' answered HTTP {status}."
            if status is not None
            else f"Provider '{self._name}' sent an error in its stream."
        )
        code = fields.get("code")
        error_type = fields.get("type")
        effective_status = status if status is not None else _status_from_fields(fields)
        action = action_for_status(effective_status, headers) if effective_status is not None else Action.RETRY
        if effective_status == 429 and (code in _QUOTA_CODES or error_type in _QUOTA_CODES):
            action = Action.FALLBACK  # out of money: waiting will not help, another provider may
        elif effective_status == 429 and "request too large" in message.lower():
            action = Action.FALLBACK  # larger than the per-minute limit: no retry can succeed
        elif action is Action.STOP and code in _TARGET_SPECIFIC_CODES:
            action = Action.FALLBACK
        return UpstreamError(
            message[:_MAX_ERROR_MESSAGE],
            provider=self._name,
            action=action,
            status=effective_status,
            error_type=error_type if action is Action.STOP else None,
            param=fields.get("param"),
            code=code,
            retry_after=retry_after_seconds(headers) if headers is not None else None,
            upstream_request_id=headers.get("x-request-id") if headers is not None else None,
        )


class OpenAIStream(SSETranslator):
    """An OpenAI-format stream: events pass through as they came, bytes and all."""

    def __init__(self, provider: OpenAIProvider) -> None:
        super().__init__()
        self._provider = provider
        self._saw_finish = False
        self._model: str | None = None

    def report_model(self, model: str) -> None:
        """Make every chunk say `model` (the dispatcher's optional hook for `response_model`)."""
        self._model = model

    def event(self, event: ServerSentEvent) -> list[Chunk]:
        if event.data == _DONE:
            self.finished = True
            return []
        chunk = self._provider._chunk(event.data, self._model)
        if chunk is None:
            return []
        self._saw_finish = self._saw_finish or _has_finish(chunk.data)
        return [chunk]

    def end(self) -> list[Chunk]:
        # `[DONE]` alone is not a finish: a stream must say how it ended (a finish_reason), or it
        # is reported as cut short rather than passed off as complete.
        if not self._saw_finish:
            name = self._provider.name
            raise UpstreamError(
                f"Provider '{name}' ended the stream before it finished.",
                provider=name,
                action=Action.RETRY,
                code="upstream_stream_truncated",
            )
        return []


def _error_fields(payload: Any) -> dict[str, Any]:
    """message/type/param/code from the error shapes OpenAI-compatible servers use."""
    if isinstance(payload, list) and payload:  # Gemini's OpenAI layer wraps errors in an array
        payload = payload[0]
    if not isinstance(payload, dict):
        return {}
    error = payload.get("error", payload)  # vLLM and Mistral use a flat {"object": "error", ...}
    if isinstance(error, str):
        return {"message": error}
    if not isinstance(error, dict):
        return {}
    out: dict[str, Any] = {}
    message = error.get("message")
    if isinstance(message, str):
        out["message"] = message
    elif message is not None:
        out["message"] = orjson.dumps(message).decode()  # a pydantic `detail` list, say
    for key in ("type", "param", "code"):
        value = error.get(key)
        if value is not None:
            out[key] = str(value)  # OpenRouter and vLLM send numeric codes; OpenAI's are strings
    return out


def _status_from_fields(fields: Mapping[str, Any]) -> int | None:
    code = fields.get("code")
    if isinstance(code, str) and code.isdigit() and len(code) == 3:
        return int(code)
    return None


def _json_kind(value: Any) -> str:
    # Named by kind, never quoted: the event's bytes are the upstream's, and do not belong in an error.
    if value is None:
        return "JSON null"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, list):
        return "a JSON array"
    return "a JSON string" if isinstance(value, str) else "a JSON number"


def _is_choice_list(choices: Any) -> bool:
    return isinstance(choices, list) and all(isinstance(choice, dict) for choice in choices)


def _is_completion(choices: Any) -> bool:
    """The least a client can use: `choices` a list of objects, at least one with a `message`."""
    return (
        _is_choice_list(choices)
        and bool(choices)
        and any(isinstance(choice.get("message"), dict) for choice in choices)
    )


def _has_finish(data: Mapping[str, Any]) -> bool:
    choices = data.get("choices")
    if not choices:
        return False
    return any(isinstance(c, dict) and c.get("finish_reason") is not None for c in choices)


def _tail_fields(body: bytes) -> dict[str, Any] | None:
    """`model` and `usage` read from the end of an embeddings answer, or None if they are not there."""
    at = body.rfind(b'"model"')
    if at < 0:
        return None
    try:
        fields = orjson.loads(b"{" + body[at:])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("usage"), dict) or "data" in fields:
        return None
    return fields


def embeddings_body(request: ChatRequest, target: Target) -> bytes:
    """The embeddings request for `target`: the client's bytes when nothing changes.

    Route `params` fill fields the client did not send (`dimensions`, say).
    """
    body = request.body
    defaults = {key: value for key, value in target.params.items() if key not in body}
    if not defaults and body.get("model") == target.model and request.raw is not None:
        return request.raw
    return orjson.dumps({**body, **defaults, "model": target.model})


def register(registry: Any) -> None:
    registry.register("openai", OpenAIProvider, options=("organization", "project", "profiles"))
