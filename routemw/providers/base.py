"""The adapter contract: what the router may ask of a provider, and nothing else.

An adapter translates; it never performs I/O, retries, sleeps, or reads the environment. It
builds the upstream `httpx.Request`, reads the upstream's answer into OpenAI shapes, and
classifies a failure once into an `Action`. The dispatcher sends the request through a transport
and owns every timeout; the router owns every retry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import httpx

from ..capabilities import Profile
from ..chat import ChatRequest
from ..errors import UpstreamError
from ..reply import Chunk, Completion

__all__ = ["ModelNameRules", "Provider", "StreamTranslator", "Target", "parse_stream"]


class StreamTranslator(Protocol):
    """Turns one upstream stream's bytes into OpenAI chunks; a pure state machine, no I/O.

    The dispatcher owns the reading: it feeds each piece as it arrives and sends everything a
    piece produced to the client together, so a burst that arrives in one read leaves in one
    write. The chunks have OpenAI's shape (role first, content and tool-call deltas, one finish
    chunk, and a usage chunk with `choices: []` last, only when the request asked for usage).
    """

    @property
    def done(self) -> bool:
        """The upstream said it is finished; nothing read after this matters."""

    def feed(self, data: bytes) -> list[Chunk]:
        """Chunks completed by `data`; raises `UpstreamError` for an in-band upstream error."""

    def close(self) -> list[Chunk]:
        """End of input: the last chunks, or `UpstreamError` if the stream ended unfinished."""


@runtime_checkable
class Provider(Protocol):
    """A configured upstream endpoint that speaks one wire format."""

    @property
    def name(self) -> str:
        """The provider's name in config; appears in headers, traces and error messages."""

    @property
    def timeout(self) -> float:
        """Seconds one attempt may take, including the wait for a stream's first event."""

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        """A transport of the adapter's own (an in-process fake), or None for the gateway's."""

    def profile(self, model: str) -> Profile:
        """What `model` at this provider can do, before config overrides."""

    def build_request(self, request: ChatRequest, target: Target) -> httpx.Request:
        """The upstream request for `request` on `target`; pure, no I/O.

        It honours `target.profile` (spellings, roles, `stream_options`) and the per-request
        `target.drop` and `target.clamp` decided by the capability check.
        """

    def parse_response(self, response: httpx.Response, body: bytes, request: ChatRequest, target: Target) -> Completion:
        """A successful upstream answer as an OpenAI `chat.completion`."""

    def stream_translator(self, request: ChatRequest, target: Target) -> StreamTranslator:
        """A fresh translator for one successful upstream stream (see `StreamTranslator`)."""

    def error_from_response(self, response: httpx.Response, body: bytes) -> UpstreamError:
        """An upstream error status, classified."""

    def error_from_exception(self, exc: Exception) -> UpstreamError:
        """A transport failure (connect, read, protocol), classified."""


@runtime_checkable
class ModelNameRules(Protocol):
    """Optional for an adapter: the model names its upstream can never serve, refused at startup.

    The catalog asks once per route as it is built; a name that breaks the rules is a
    `ConfigError` naming the route (`models.<name>.routes[i].model`), rather than a failure on
    the first request. Adapters whose upstream takes any name need not implement it.
    """

    def model_name_problem(self, model: str) -> str | None:
        """Why `model` cannot name a model at this upstream, or None when it can."""


async def parse_stream(
    provider: Provider, response: httpx.Response, request: ChatRequest, target: Target
) -> AsyncIterator[Chunk]:
    """Every chunk of `response` through `provider`'s translator, one by one (tools and tests)."""
    translator = provider.stream_translator(request, target)
    async for piece in response.aiter_bytes():
        for chunk in translator.feed(piece):
            yield chunk
        if translator.done:
            break
    for chunk in translator.close():
        yield chunk


@dataclass(frozen=True, slots=True, eq=False)
class Target:
    """One candidate for a request: a provider, the model name it knows, and route settings.

    Built once per route at startup; the capability check makes a per-request copy only when
    it has something to drop or clamp for this request.
    """

    provider: Provider
    model: str  # the upstream's model name
    public_model: str  # what the client asked for (or the fallback model this target serves)
    profile: Profile = field(default_factory=Profile)  # adapter's profile with config overrides
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # route defaults
    weight: float | None = None  # None: the model's routes are an ordered preference, not weighted
    drop: frozenset[str] = frozenset()  # request fields to leave out for this request (disclosed)
    clamp: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # field -> value
    # "provider/model": the target's name in health state, traces, logs and refusals. Made once
    # here rather than formatted again by each of them on every request.
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.provider.name}/{self.model}")

    def __repr__(self) -> str:
        return f"Target({self.key} for {self.public_model})"
