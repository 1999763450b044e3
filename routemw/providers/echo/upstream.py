"""The echo upstream: an OpenAI chat completions server living inside the process.

It is an `httpx` transport, so the ordinary OpenAI adapter drives it exactly as it drives the
network. It plays the script (errors, delays, stalls, cut streams), asks `answer` what to say,
and renders that in OpenAI's wire shapes: one `chat.completion`, or a stream whose chunks each
carry one choice's one token, the `n` choices interleaved by `index` as OpenAI sends them, tool
calls as a first delta with id, type, name and empty arguments followed by argument fragments.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import httpx
import orjson

from .answer import Answer, BadRequest, Choice, answer
from .script import EchoStep

__all__ = ["EchoUpstream"]


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
            error_type = step.type or ("server_error" if step.status >= 500 else "invalid_request_error")
            message = step.message or f"echo: scripted HTTP {step.status}"
            return _error(step.status, message, error_type, None, step.code, step.headers)
        if not isinstance(body, dict):
            return _error(400, "echo: the request body must be a JSON object.", "invalid_request_error", None, None)
        try:
            reply = answer(body, step)
        except BadRequest as exc:
            return _error(400, exc.message, "invalid_request_error", exc.param, None)
        number = next(self._ids)
        completion_id = f"chatcmpl-echo{os.getpid()}x{number}"
        model = str(body.get("model", "echo"))
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            stream = _EchoStream(self, completion_id, model, reply, include_usage, step.cut_after, number)
            return httpx.Response(200, headers={"content-type": "text/event-stream", **step.headers}, stream=stream)
        completion = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": i,
                    "message": _message(c, _call_id(number, i)),
                    "logprobs": None,
                    "finish_reason": c.finish_reason,
                }
                for i, c in enumerate(reply.choices)
            ],
            "usage": reply.usage,
        }
        return httpx.Response(
            200, headers={"content-type": "application/json", **step.headers}, content=orjson.dumps(completion)
        )


def _error(
    status: int, message: str, error_type: str, param: str | None, code: str | None, headers: Any = None
) -> httpx.Response:
    error = {"message": message, "type": error_type, "param": param, "code": code}
    return httpx.Response(
        status, headers={"content-type": "application/json", **(headers or {})}, content=orjson.dumps({"error": error})
    )


def _call_id(number: int, index: int) -> str:
    return f"call_echo{os.getpid()}x{number}c{index}"


def _message(choice: Choice, call_id: str) -> dict[str, Any]:
    if choice.tool is None:
        return {"role": "assistant", "content": choice.text, "refusal": None}
    call = {"id": call_id, "type": "function", "function": {"name": choice.tool, "arguments": choice.text}}
    return {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}


class _EchoStream(httpx.AsyncByteStream):
    def __init__(
        self,
        upstream: EchoUpstream,
        completion_id: str,
        model: str,
        reply: Answer,
        include_usage: bool,
        cut_after: int | None,
        number: int,
    ) -> None:
        self._upstream = upstream
        self._base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self._reply = reply
        self._include_usage = include_usage
        self._cut_after = cut_after
        self._number = number
        self._open = True
        upstream.open_streams += 1

    def _event(self, index: int, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {
            **self._base,
            "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self._include_usage:
            chunk["usage"] = None
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _first_delta(self, index: int, choice: Choice) -> dict[str, Any]:
        if choice.tool is None:
            return {"role": "assistant", "content": "", "refusal": None}
        call = {
            "index": 0,
            "id": _call_id(self._number, index),
            "type": "function",
            "function": {"name": choice.tool, "arguments": ""},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}

    @staticmethod
    def _piece_delta(choice: Choice, piece: str) -> dict[str, Any]:
        if choice.tool is None:
            return {"content": piece}
        return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}

    async def __aiter__(self) -> AsyncIterator[bytes]:
        choices = self._reply.choices
        try:
            yield b"".join(self._event(i, self._first_delta(i, c)) for i, c in enumerate(choices))
            rounds = max(len(c.pieces) for c in choices)
            for count in range(rounds):
                if self._cut_after is not None and count >= self._cut_after:
                    return  # a connection that drops mid-answer: no finish, no [DONE]
                if self._upstream.chunk_delay:
                    await anyio.sleep(self._upstream.chunk_delay)
                yield b"".join(
                    self._event(i, self._piece_delta(c, c.pieces[count]))
                    for i, c in enumerate(choices)
                    if count < len(c.pieces)
                )
            yield b"".join(self._event(i, {}, c.finish_reason) for i, c in enumerate(choices))
            if self._include_usage:
                yield b"data: " + orjson.dumps({**self._base, "choices": [], "usage": self._reply.usage}) + b"\n\n"
            yield b"data: [DONE]\n\n"
        finally:
            self._close()

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._open:
            self._open = False
            self._upstream.open_streams -= 1
