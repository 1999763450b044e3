"""The echo provider: the ordinary OpenAI adapter wired to an `EchoUpstream`, and its profile.

The profile says what echo really does, so `/v1/models` shows it and the capability check and
parameter policy treat echo like any other target: it streams (with usage), calls tools (forced
or scripted), answers both JSON modes, and gives `n` choices. It cannot produce log
probabilities, read images or audio, or reason, so those are unsupported; nor can it honour
`logit_bias` (it has no token ids) or produce `audio`. `n` is held to OpenAI's 1 to 128.
Sampling parameters are accepted and change nothing: echo is deterministic, and a
deterministic answer is a valid sample at any temperature.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import httpx

from ...capabilities import Capability, Profile
from ...config import ProviderConfig
from ...errors import ConfigError
from ..openai import OpenAIProvider
from .answer import MAX_CHOICES
from .script import EchoStep
from .upstream import EchoUpstream

__all__ = ["ECHO_PROFILE", "EchoProvider", "register"]

_BASE_URL: Final = "http://echo.routemw.invalid/v1"
_C = Capability
_SUPPORTED: Final = (
    _C.STREAMING,
    _C.STREAM_USAGE,
    _C.TOOLS,
    _C.TOOL_CHOICE,
    _C.PARALLEL_TOOL_CALLS,  # it never makes more than one call, which both values allow
    _C.JSON_OBJECT,
    _C.JSON_SCHEMA,
    _C.MULTIPLE_CHOICES,
)
_UNSUPPORTED: Final = (_C.VISION, _C.AUDIO_INPUT, _C.LOGPROBS, _C.REASONING_EFFORT)

ECHO_PROFILE: Final = Profile(
    support=MappingProxyType(
        {**dict.fromkeys(map(str, _SUPPORTED), True), **dict.fromkeys(map(str, _UNSUPPORTED), False)}
    ),
    unsupported_params=frozenset({"logit_bias", "audio"}),
    ranges=MappingProxyType({"n": (1, MAX_CHOICES)}),  # ints, so a clamped `n` stays an integer
)


class EchoProvider(OpenAIProvider):
    """The OpenAI adapter wired to an `EchoUpstream` instead of the network."""

    def __init__(self, config: ProviderConfig, upstream: EchoUpstream | None = None) -> None:
        super().__init__(config, default_base_url=_BASE_URL)
        self.upstream = upstream if upstream is not None else _upstream_from_options(config)

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        return self.upstream

    def profile(self, model: str) -> Profile:
        return ECHO_PROFILE


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
