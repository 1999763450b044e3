"""Gemini `GenerateContentResponse` -> OpenAI completion and chunks; pure, no I/O.

Deliberate decisions:

- Finish: `STOP` becomes `tool_calls` when a function call appeared anywhere in the candidate's
  turn, tracked across stream events since newer models send the finish in a trailing event of
  its own (wire-formats T6); any other reason that maps to `stop` does the same, so an agent loop
  never misses a call. `MAX_TOKENS` is `length`; the safety, recitation, blocklist, prohibited
  content, SPII and language reasons are `content_filter`; a prompt blocked before any candidate
  (`promptFeedback.blockReason`) is `content_filter` with no content.
- Tool call ids: Gemini gives none, so they are minted: `call_<index>_<hash>`, the hash over the
  response id, candidate, position and name. Deterministic for one response, distinct across
  responses. An id Gemini does send is kept.
- Thought signatures ride on the tool call as `extra_content.google.thought_signature`, the
  field Google's own OpenAI layer uses, so the request side can send them back. Signatures on
  text parts are not carried: Gemini asks for them back only on function calls.
- Thoughts (`thought: true` parts) are never content. They become `reasoning_content` (message
  field, or stream delta), the name DeepSeek and vLLM use. Gemini sends them only when asked to
  (`includeThoughts`), which this adapter never does.
- Usage: `prompt_tokens` is `promptTokenCount` (cached tokens included, as OpenAI counts them)
  plus `toolUsePromptTokenCount`; `completion_tokens` is `candidatesTokenCount` plus
  `thoughtsTokenCount`, since OpenAI counts reasoning as completion; so `total_tokens` matches
  Gemini's `totalTokenCount`. Reasoning and cached tokens go in the usual details. A stream's
  usage is its last `usageMetadata` (earlier ones are partial).
- Streams: a function call arrives whole, so it becomes one `tool_call_start` and one arguments
  delta with the complete JSON. A stream that ends before a finish reason for every candidate is
  `upstream_stream_truncated` (retryable): cut output must never look finished (S7).
- Several candidates (`n`) become several choices; chunk indexes follow the candidate index.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ...errors import Action, UpstreamError
from ...reply import Chunk
from ..chunks import ChunkWriter, completion, usage
from ..classify import invalid_response

__all__ = ["GeminiStream", "completion_from", "finish_reason", "mint_id", "openai_usage"]

_FILTERED: Final = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)


def finish_reason(reason: str, saw_tool_call: bool) -> str:
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if saw_tool_call else "stop"


def openai_usage(meta: Mapping[str, Any]) -> dict[str, Any]:
    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) else 0

    thoughts = count("thoughtsTokenCount")
    cached = count("cachedContentTokenCount")
    return usage(
        count("promptTokenCount") + count("toolUsePromptTokenCount"),
        count("candidatesTokenCount") + thoughts,
        prompt_tokens_details={"cached_tokens": cached} if cached else None,
        completion_tokens_details={"reasoning_tokens": thoughts} if thoughts else None,
    )


def mint_id(response_key: str, candidate: int, index: int, name: str) -> str:
    digest = hashlib.sha256(f"{response_key}\0{candidate}\0{index}\0{name}".encode()).hexdigest()
    return f"call_{index}_{digest[:16]}"


@dataclass(frozen=True, slots=True)
class _Call:
    id: str
    name: str
    arguments: str
    signature: str | None


def _parts(candidate: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, Mapping) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _call(part: Mapping[str, Any], response_key: str, candidate: int, index: int) -> _Call | None:
    function = part.get("functionCall")
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        return None
    name = function["name"]
    given = function.get("id")
    call_id = given if isinstance(given, str) and given else mint_id(response_key, candidate, index, name)
    args = function.get("args")
    arguments = orjson.dumps(args if isinstance(args, dict) else {}).decode()
    signature = part.get("thoughtSignature")
    return _Call(call_id, name, arguments, signature if isinstance(signature, str) and signature else None)


def _tool_call(call: _Call, index: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {} if index is None else {"index": index}
    out.update({"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}})
    if call.signature is not None:
        out["extra_content"] = {"google": {"thought_signature": call.signature}}
    return out


def _candidates(data: Mapping[str, Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    candidates = data.get("candidates")
    for position, candidate in enumerate(candidates if isinstance(candidates, list) else ()):
        if isinstance(candidate, Mapping):
            index = candidate.get("index")
            yield (index if isinstance(index, int) else position), candidate


def _blocked(data: Mapping[str, Any]) -> bool:
    feedback = data.get("promptFeedback")
    return isinstance(feedback, Mapping) and bool(feedback.get("blockReason"))


def _response_key(data: Mapping[str, Any]) -> str:
    response_id = data.get("responseId")
    return response_id if isinstance(response_id, str) and response_id else uuid.uuid4().hex


def _model(data: Mapping[str, Any], default: str) -> str:
    version = data.get("modelVersion")
    return version if isinstance(version, str) and version else default


def completion_from(data: Mapping[str, Any], model: str, provider: str) -> dict[str, Any]:
    """A `chat.completion` for a whole response; `model` when the response names none."""
    key = _response_key(data)
    choices = [_choice(index, candidate, key) for index, candidate in sorted(_candidates(data), key=lambda c: c[0])]
    if not choices:
        if not _blocked(data):
            raise invalid_response(provider, "a response with no candidates")
        choices = [_blocked_choice()]
    meta = data.get("usageMetadata")
    out = completion(
        id=f"chatcmpl-{key}",
        model=_model(data, model),
        content=None,
        tool_calls=None,
        finish_reason=None,
        usage=openai_usage(meta) if isinstance(meta, Mapping) else None,
    )
    out["choices"] = choices
    return out


def _choice(index: int, candidate: Mapping[str, Any], key: str) -> dict[str, Any]:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in _parts(candidate):
        call = _call(part, key, index, len(calls))
        if call is not None:
            calls.append(_tool_call(call))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") is True else texts).append(part["text"])
    reason = candidate.get("finishReason")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    finish = finish_reason(reason if isinstance(reason, str) else "STOP", bool(calls))
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}


def _blocked_choice() -> dict[str, Any]:
    message = {"role": "assistant", "content": None, "refusal": None}
    return {"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"}


@dataclass(slots=True)
class _Candidate:
    writer: ChunkWriter
    index: int
    started: bool = False  # a delta has gone out, so the role has too
    calls: int = 0
    finished: bool = False


@dataclass(slots=True)
class GeminiStream:
    """Turns the events of one Gemini stream into OpenAI chunks."""

    provider: str
    model: str
    include_usage: bool
    _key: str | None = None
    _created: int | None = None
    _candidates: dict[int, _Candidate] = field(default_factory=dict)
    _usage: dict[str, Any] | None = None

    def feed(self, data: Mapping[str, Any]) -> list[Chunk]:
        """The chunks for one event (a whole `GenerateContentResponse`)."""
        if self._key is None:
            self._key = _response_key(data)
            self.model = _model(data, self.model)
        meta = data.get("usageMetadata")
        if isinstance(meta, Mapping):
            self._usage = openai_usage(meta)
        out: list[Chunk] = []
        for index, candidate in _candidates(data):
            out += self._candidate_chunks(self._candidate(index), candidate)
        if _blocked(data) and not self._candidates:
            state = self._candidate(0)
            state.finished = True
            out.append(self._indexed(state, state.writer.finish("content_filter")))
        return out

    def end(self) -> list[Chunk]:
        """The closing chunks once the upstream stream is over; raises if it never finished."""
        if not self._candidates or not all(c.finished for c in self._candidates.values()):
            raise UpstreamError(
                f"Provider '{self.provider}' ended the stream before it finished.",
                provider=self.provider,
                action=Action.RETRY,
                code="upstream_stream_truncated",
            )
        chunk = self._candidate(min(self._candidates)).writer.usage(self._usage or usage(0, 0))
        if chunk is None:
            return []
        if self._created is not None:
            chunk.data["created"] = self._created
        return [chunk]

    def _candidate(self, index: int) -> _Candidate:
        state = self._candidates.get(index)
        if state is None:
            writer = ChunkWriter(self.model, id=f"chatcmpl-{self._key}", include_usage=self.include_usage)
            state = self._candidates[index] = _Candidate(writer, index)
        return state

    def _candidate_chunks(self, state: _Candidate, candidate: Mapping[str, Any]) -> list[Chunk]:
        if state.finished:
            return []  # nothing may follow a choice's finish chunk
        out: list[Chunk] = []
        for part in _parts(candidate):
            call = _call(part, self._key or "", state.index, state.calls)
            if call is not None:
                out += self._call_chunks(state, call)
            elif isinstance(part.get("text"), str) and part["text"]:
                if not state.started:
                    out.append(self._indexed(state, state.writer.role()))
                    state.started = True
                chunk = state.writer.reasoning if part.get("thought") is True else state.writer.content
                out.append(self._indexed(state, chunk(part["text"])))
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason:
            state.finished = True
            out.append(self._indexed(state, state.writer.finish(finish_reason(reason, state.calls > 0))))
        return out

    def _call_chunks(self, state: _Candidate, call: _Call) -> list[Chunk]:
        index = state.calls
        state.calls += 1
        state.started = True
        start = state.writer.tool_call_start(index, call.id, call.name, "")
        if call.signature is not None:
            delta = start.data["choices"][0]["delta"]
            delta["tool_calls"][0]["extra_content"] = {"google": {"thought_signature": call.signature}}
        arguments = state.writer.tool_call_arguments(index, call.arguments)
        return [self._indexed(state, start), self._indexed(state, arguments)]

    def _indexed(self, state: _Candidate, chunk: Chunk) -> Chunk:
        """The chunk with the candidate's choice index, and one `created` for the whole stream."""
        if self._created is None:
            self._created = chunk.data["created"]
        chunk.data["created"] = self._created
        if state.index:
            chunk.data["choices"][0]["index"] = state.index
        return chunk
