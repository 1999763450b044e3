"""An example provider plugin: `type: shout` answers like the echo model, in UPPER CASE.

It shows the adapter contract from the outside. `ShoutProvider` reuses the OpenAI adapter for
request building and error classification, brings its own transport (routemw's in-process
`EchoUpstream`, so nothing goes over the network), and changes the answer on the way back in
`parse_response` and its `stream_translator`. A real adapter translates another wire format there.

Install with `pip install -e examples/custom_provider`, then use `type: shout` (see README.md).
"""

from __future__ import annotations

from typing import Any

import httpx

from routemw import (
    ChatRequest,
    Chunk,
    Completion,
    EchoUpstream,
    OpenAIProvider,
    ProviderConfig,
    ProviderRegistry,
    StreamTranslator,
    Target,
)

__all__ = ["ShoutProvider", "register"]


class ShoutProvider(OpenAIProvider):
    """The echo upstream behind the OpenAI adapter, with every answer upper-cased."""

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config, default_base_url="http://shout.invalid/v1")
        self._upstream = EchoUpstream()

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        return self._upstream

    def parse_response(self, response: httpx.Response, body: bytes, request: ChatRequest, target: Target) -> Completion:
        completion = super().parse_response(response, body, request, target)
        return completion.replace(_shout(completion.data, "message"))

    def stream_translator(self, request: ChatRequest, target: Target) -> StreamTranslator:
        return _Shouting(super().stream_translator(request, target))


class _Shouting:
    """Wraps the OpenAI stream translator: the same chunks, upper-cased on the way through."""

    def __init__(self, inner: StreamTranslator) -> None:
        self._inner = inner

    @property
    def done(self) -> bool:
        return self._inner.done

    def feed(self, data: bytes) -> list[Chunk]:
        return [chunk.replace(_shout(chunk.data, "delta")) for chunk in self._inner.feed(data)]

    def close(self) -> list[Chunk]:
        return [chunk.replace(_shout(chunk.data, "delta")) for chunk in self._inner.close()]


def _shout(data: dict[str, Any], key: str) -> dict[str, Any]:
    """A copy of a completion or chunk with each choice's `content` upper-cased (never edit in place)."""
    choices = []
    for choice in data.get("choices") or []:
        part = choice.get(key) or {}
        if isinstance(part.get("content"), str):
            choice = {**choice, key: {**part, "content": part["content"].upper()}}
        choices.append(choice)
    return {**data, "choices": choices}


def register(registry: ProviderRegistry) -> None:
    """The `routemw.providers` entry point: add the `shout` provider type."""
    registry.register("shout", ShoutProvider)
