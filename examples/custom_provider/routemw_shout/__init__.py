"""An example provider plugin: `type: shout` answers like the echo model, in UPPER CASE.

It shows the adapter contract from the outside. `ShoutProvider` reuses the OpenAI adapter for
request building and error classification, brings its own transport (routemw's in-process
`EchoUpstream`, so nothing goes over the network), and changes the answer on the way back in
`parse_response` and `parse_stream`. A real adapter translates another wire format there.

Install with `pip install -e examples/custom_provider`, then use `type: shout` (see README.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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

    async def parse_stream(
        self, response: httpx.Response, request: ChatRequest, target: Target
    ) -> AsyncIterator[Chunk]:
        async for chunk in super().parse_stream(response, request, target):
            yield chunk.replace(_shout(chunk.data, "delta"))


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
