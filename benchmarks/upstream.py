"""A fake LLM upstream cheap enough never to be the bottleneck.

A bare asyncio protocol speaking just enough HTTP/1.1 (keep-alive, Content-Length bodies) to
answer `POST /v1/chat/completions` (OpenAI), `POST /v1/messages` (Anthropic) and Gemini's
`generateContent` / `streamGenerateContent?alt=sse` for `gemini-2.5-flash`, as JSON or as an SSE
stream of `--chunks` content events, `POST /v1/responses` (OpenAI's Responses API, JSON
or its event stream) and `POST /v1/embeddings` (16 vectors of 1,536 dimensions in base64, what
the `openai` SDK asks for by default), from bytes prepared once at start-up. Optional
`--latency` (seconds between stream events, and before answering unless `--first-delay` says
otherwise) and `--failure-rate` (503s).

    python -m benchmarks.upstream --port 9100 [--chunks 20] [--latency 0] [--first-delay S] [--failure-rate 0]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import struct
from typing import Final

import orjson

_WORDS: Final = [f"w{i} " for i in range(64)]


def _openai_json() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(_WORDS[:20]), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32},
        }
    )


def _openai_events(chunks: int) -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o"}

    def event(delta: dict[str, object], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": _WORDS[i % len(_WORDS)]}) for i in range(chunks)]
    events += [event({}, "stop"), b"data: [DONE]\n\n"]
    return events


def _embeddings_json(vectors: int = 16, dimensions: int = 1536) -> bytes:
    vector = base64.b64encode(struct.pack(f"<{dimensions}f", *(i / dimensions for i in range(dimensions)))).decode()
    data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(vectors)]
    usage = {"prompt_tokens": 4 * vectors, "total_tokens": 4 * vectors}
    return orjson.dumps({"object": "list", "data": data, "model": "text-embedding-3-small", "usage": usage})


def _response_object(text: str, status: str = "completed") -> dict[str, object]:
    return {
        "id": "resp_bench",
        "object": "response",
        "created_at": 1700000000,
        "status": status,
        "model": "gpt-4o",
        "output": [
            {
                "type": "message",
                "id": "msg_bench",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 20,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 32,
        },
    }


def _responses_events(chunks: int) -> list[bytes]:
    def event(name: str, data: dict[str, object]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"

    text = "".join(_WORDS[i % len(_WORDS)] for i in range(chunks))
    where = {"item_id": "msg_bench", "output_index": 0, "content_index": 0}
    events = [event("response.created", {"response": {**_response_object("", "in_progress"), "output": []}})]
    events += [event("response.output_text.delta", {**where, "delta": _WORDS[i % len(_WORDS)]}) for i in range(chunks)]
    events += [event("response.completed", {"response": _response_object(text)})]
    return events


def _anthropic_json() -> bytes:
    return orjson.dumps(
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "".join(_WORDS[:20])}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 12, "output_tokens": 20},
        }
    )


def _anthropic_events(chunks: int) -> list[bytes]:
    def event(name: str, data: dict[str, object]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    message: dict[str, object] = {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    events = [
        event("message_start", {"type": "message_start", "message": message}),
        event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    for i in range(chunks):
        delta = {"type": "text_delta", "text": _WORDS[i % len(_WORDS)]}
        events.append(event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    events += [
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": chunks},
            },
        ),
        event("message_stop", {"type": "message_stop"}),
    ]
    return events


GEMINI_MODEL: Final = b"/v1beta/models/gemini-2.5-flash"


def _gemini_chunk(text: str, *, last: bool) -> dict[str, object]:
    """One `GenerateContentResponse`, shaped like the recordings (usage on every chunk, final counts last)."""
    candidate: dict[str, object] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    usage: dict[str, object] = {"promptTokenCount": 12, "totalTokenCount": 12}
    if last:
        candidate["finishReason"] = "STOP"
        usage = {"promptTokenCount": 12, "candidatesTokenCount": 20, "totalTokenCount": 32}
    version = {"modelVersion": "gemini-2.5-flash", "responseId": "bench"}
    return {"candidates": [candidate], "usageMetadata": usage, **version}


def _gemini_events(chunks: int) -> list[bytes]:
    # Gemini separates its SSE events with CRLF pairs, as the recordings show.
    return [
        b"data: " + orjson.dumps(_gemini_chunk(_WORDS[i % len(_WORDS)], last=i == chunks - 1)) + b"\r\n\r\n"
        for i in range(chunks)
    ]


def _response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: "
        + content_type
        + b"\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nx-request-id: req_bench\r\n\r\n"
        + body
    )


def _chunked_head(content_type: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Upstream(asyncio.Protocol):
    def __init__(
        self,
        answers: dict[tuple[bytes, bool], list[bytes] | bytes],
        latency: float,
        failure_rate: float,
        first_delay: float | None = None,
    ) -> None:
        self.answers = answers
        self.latency = latency
        self.first_delay = latency if first_delay is None else first_delay
        self.failure_rate = failure_rate
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[tuple[bytes, bool]] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        if self.latency or self.first_delay:
            self.worker = asyncio.get_running_loop().create_task(self._slow_writer())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                length = int(head[marker + 15 : head.find(b"\r\n", marker) if head.find(b"\r\n", marker) > 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            path = head.split(b" ", 2)[1]
            stream = b'"stream":true' in body or b'"stream": true' in body
            if self.worker is not None:
                self.queue.put_nowait((path, stream))
            else:
                self._answer(path, stream)

    def _answer(self, path: bytes, stream: bool) -> None:
        assert self.transport is not None
        if self.failure_rate and random.random() < self.failure_rate:
            error = b'{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}'
            self.transport.write(_response(b"503 Service Unavailable", b"application/json", error))
            return
        answer = self.answers.get((path.split(b"?")[0], stream))
        if answer is None:
            self.transport.write(_response(b"404 Not Found", b"application/json", b'{"error":{"message":"no"}}'))
        elif isinstance(answer, bytes):
            self.transport.write(answer)
        else:
            self.transport.write(b"".join(answer))

    async def _slow_writer(self) -> None:
        """Paced answers: `first_delay` before the first content event, `latency` between the next ones."""
        assert self.transport is not None
        while True:
            path, stream = await self.queue.get()
            await asyncio.sleep(self.first_delay)
            answer = self.answers.get((path.split(b"?")[0], stream))
            if not isinstance(answer, list):
                self._answer(path, stream)
                continue
            head, *events, end = answer
            self.transport.write(head + events[0] + events[1])  # the role event and the first token
            for event in events[2:]:
                await asyncio.sleep(self.latency)
                self.transport.write(event)
            self.transport.write(end)


def answers(chunks: int) -> dict[tuple[bytes, bool], list[bytes] | bytes]:
    def sse(events: list[bytes]) -> list[bytes]:
        return [_chunked_head(b"text/event-stream"), *(_chunk(e) for e in events), b"0\r\n\r\n"]

    return {
        (b"/v1/chat/completions", False): _response(b"200 OK", b"application/json", _openai_json()),
        (b"/v1/chat/completions", True): sse(_openai_events(chunks)),
        (b"/v1/messages", False): _response(b"200 OK", b"application/json", _anthropic_json()),
        (b"/v1/messages", True): sse(_anthropic_events(chunks)),
        (b"/v1/responses", False): _response(
            b"200 OK", b"application/json", orjson.dumps(_response_object("".join(_WORDS[:20])))
        ),
        (b"/v1/responses", True): sse(_responses_events(chunks)),
        (b"/v1/embeddings", False): _response(b"200 OK", b"application/json", _embeddings_json()),
        # Gemini says streaming in the path, not the body, so both keys; paths are matched lowercased.
        **{
            (GEMINI_MODEL + b":generatecontent", stream): _response(
                b"200 OK", b"application/json", orjson.dumps(_gemini_chunk("".join(_WORDS[:20]), last=True))
            )
            for stream in (False, True)
        },
        **{(GEMINI_MODEL + b":streamgeneratecontent", stream): sse(_gemini_events(chunks)) for stream in (False, True)},
    }


async def serve(port: int, chunks: int, latency: float, failure_rate: float, first_delay: float | None) -> None:
    table = answers(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Upstream(table, latency, failure_rate, first_delay), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--first-delay", type=float, default=None, help="seconds before the first token")
    parser.add_argument("--failure-rate", type=float, default=0.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(serve(args.port, args.chunks, args.latency, args.failure_rate, args.first_delay))


if __name__ == "__main__":
    main()
