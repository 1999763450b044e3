"""The built-in `echo` provider: an in-process OpenAI-compatible upstream, no network.

It answers with the last user message, streams it word by word, and can be scripted with
faults (error statuses, delays, stalls, streams cut short) so that routing, retries and
streaming can be exercised end to end, by our tests and by users' own. It is deliberately a
*transport* behind the ordinary OpenAI adapter rather than a special code path: everything a
real upstream goes through (request building, SSE decoding, error classification) runs for it
too.

Config (all optional): `chunk_delay` (seconds between stream chunks) and `script`, a list of
steps consumed one per request, after which it echoes normally. A step may hold:
`status` with `message`, `code`, `type` and `headers` (an error answer), `delay` (seconds before
answering), `stall: true` (never answer), `text` (answer this instead), `cut_after` (stream that
many words, then end without finishing).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import httpx
import orjson

from ..config import ProviderConfig
from ..errors import ConfigError
from .openai import OpenAIProvider

__all__ = ["EchoProvider", "EchoStep", "EchoUpstream", "register"]

_BASE_URL: Final = "http://echo.routemw.invalid/v1"
_STEP_KEYS: Final = frozenset({"status", "message", "code", "type", "headers", "delay", "stall", "text", "cut_after"})


@dataclass(frozen=True, slots=True)
class EchoStep:
    """What the echo upstream does for one request."""

    status: int = 200
    message: str | None = None
    code: str | None = None
    type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stall: bool = False
    text: str | None = None
    cut_after: int | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], path: str) -> EchoStep:
        unknown = sorted(set(data) - _STEP_KEYS)
        if unknown:
            raise ConfigError([f"{path}.{key}: unknown key" for key in unknown])
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ConfigError([f"{path}: {exc}"]) from exc


class EchoUpstream(httpx.AsyncBaseTransport):
    """An OpenAI-compatible chat completions server living inside the process."""

    def __init__(self, script: Sequence[EchoStep] = (), *, chunk_delay: float = 0.0) -> None:
        self.script: deque[EchoStep] = deque(script)
        self.chunk_delay = chunk_delay
        self.requests: list[dict[str, Any]] = []  # bodies received, for assertions in tests
        self.open_streams = 0  # streams started and not yet finished or closed
        self._ids = itertools.count(1)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(await request.aread())
        self.requests.append(body)
        step = self.script.popleft() if self.script else EchoStep()
        if step.stall:
            await anyio.sleep_forever()
        if step.delay:
            await anyio.sleep(step.delay)
        if step.status >= 400:
            error = {
                "message": step.message or f"echo: scripted HTTP {step.status}",
                "type": step.type or ("server_error" if step.status >= 500 else "invalid_request_error"),
                "param": None,
                "code": step.code,
            }
            headers = {"content-type": "application/json", **step.headers}
            return httpx.Response(step.status, headers=headers, content=orjson.dumps({"error": error}))
        text = step.text if step.text is not None else _last_user_text(body.get("messages"))
        completion_id = f"chatcmpl-echo{os.getpid()}x{next(self._ids)}"
        model = str(body.get("model", "echo"))
        usage = _usage(body.get("messages"), text)
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            stream = _EchoStream(self, completion_id, model, text, usage if include_usage else None, step.cut_after)
            return httpx.Response(200, headers={"content-type": "text/event-stream", **step.headers}, stream=stream)
        completion = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
        }
        return httpx.Response(
            200, headers={"content-type": "application/json", **step.headers}, content=orjson.dumps(completion)
        )


class _EchoStream(httpx.AsyncByteStream):
    def __init__(
        self,
        upstream: EchoUpstream,
        completion_id: str,
        model: str,
        text: str,
        usage: dict[str, int] | None,
        cut_after: int | None,
    ) -> None:
        self._upstream = upstream
        self._base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self._words = _words(text)
        self._usage = usage
        self._cut_after = cut_after
        self._open = True
        upstream.open_streams += 1

    def _event(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {
            **self._base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self._usage is not None:
            chunk["usage"] = None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            yield self._event({"role": "assistant", "content": "", "refusal": None})
            for count, word in enumerate(self._words):
                if self._cut_after is not None and count >= self._cut_after:
                    return  # a connection that drops mid-answer: no finish, no [DONE]
                if self._upstream.chunk_delay:
                    await anyio.sleep(self._upstream.chunk_delay)
                yield self._event({"content": word})
            yield self._event({}, "stop")
            if self._usage is not None:
                yield b"data: " + orjson.dumps({**self._base, "choices": [], "usage": self._usage}) + b"\n\n"
            yield b"data: [DONE]\n\n"
        finally:
            self._close()

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._open:
            self._open = False
            self._upstream.open_streams -= 1


def _last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(
                    part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
    return ""


def _words(text: str) -> list[str]:
    """Word-sized pieces that join back to exactly `text`."""
    pieces: list[str] = []
    start = 0
    for index, char in enumerate(text):
        if char == " " and index > start:
            pieces.append(text[start:index])
            start = index
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _usage(messages: Any, text: str) -> dict[str, int]:
    prompt = sum(len(_last_user_text([m]).split()) for m in messages) if isinstance(messages, list) else 0
    completion = len(text.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class EchoProvider(OpenAIProvider):
    """The OpenAI adapter wired to an `EchoUpstream` instead of the network."""

    def __init__(self, config: ProviderConfig, upstream: EchoUpstream | None = None) -> None:
        super().__init__(config, default_base_url=_BASE_URL)
        self.upstream = upstream if upstream is not None else _upstream_from_options(config)

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        return self.upstream


def _upstream_from_options(config: ProviderConfig) -> EchoUpstream:
    path = f"providers.{config.name}"
    script = config.options.get("script", [])
    if not isinstance(script, list) or not all(isinstance(step, Mapping) for step in script):
        raise ConfigError([f"{path}.script: expected a list of mappings"])
    delay = config.options.get("chunk_delay", 0.0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise ConfigError([f"{path}.chunk_delay: expected a number of seconds >= 0"])
    steps = [EchoStep.from_mapping(step, f"{path}.script[{i}]") for i, step in enumerate(script)]
    return EchoUpstream(steps, chunk_delay=float(delay))


def register(registry: Any) -> None:
    registry.register("echo", EchoProvider, options=("script", "chunk_delay"))
