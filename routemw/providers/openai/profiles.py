"""What OpenAI's own models can do, by family.

They apply where the upstream serves OpenAI's models: OpenAI's official endpoint, and any other
base URL whose provider says `profiles: openai` (a corporate proxy, a regional endpoint). A
server that merely speaks the OpenAI format (vLLM, Ollama, Groq...) gets an empty profile, every
capability unknown, unless the config says otherwise. Figures are OpenAI's published limits;
where a family is unknown the profile stays empty rather than guess.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from ...capabilities import Capability, Profile

__all__ = ["official_profile"]

_C = Capability
_CHAT_SUPPORT: Final = {
    _C.STREAMING: True,
    _C.STREAM_USAGE: True,
    _C.TOOLS: True,
    _C.TOOL_CHOICE: True,
    _C.PARALLEL_TOOL_CALLS: True,
    _C.JSON_OBJECT: True,
    _C.JSON_SCHEMA: True,
    _C.VISION: True,
    _C.LOGPROBS: True,
    _C.MULTIPLE_CHOICES: True,
    _C.REASONING_EFFORT: False,
}
# Reasoning models: sampling is fixed, logprobs are not offered, and `max_tokens` is refused
# in favour of `max_completion_tokens` (wire-formats.md section 5, P8 and P9).
_REASONING_SUPPORT: Final = {**_CHAT_SUPPORT, _C.LOGPROBS: False, _C.REASONING_EFFORT: True}
_REASONING_UNSUPPORTED: Final = frozenset({"presence_penalty", "frequency_penalty", "logit_bias", "top_logprobs"})
_FIXED_SAMPLING: Final = MappingProxyType({"temperature": (1.0, 1.0), "top_p": (1.0, 1.0)})
_CHAT_RANGES: Final = MappingProxyType({"temperature": (0.0, 2.0), "top_p": (0.0, 1.0)})


def _chat(max_output: int, context: int, **support: bool) -> Profile:
    return Profile(
        support=MappingProxyType({**{k.value: v for k, v in _CHAT_SUPPORT.items()}, **support}),
        ranges=_CHAT_RANGES,
        max_output_tokens=max_output,
        context_window=context,
        max_stop=4,
    )


def _reasoning(max_output: int, context: int, **support: bool) -> Profile:
    return Profile(
        support=MappingProxyType({**{k.value: v for k, v in _REASONING_SUPPORT.items()}, **support}),
        unsupported_params=_REASONING_UNSUPPORTED,
        ranges=_FIXED_SAMPLING,
        max_output_tokens=max_output,
        context_window=context,
        max_stop=4,
        output_tokens_field="max_completion_tokens",
    )


# Embedding models serve `/v1/embeddings` and nothing else.
_EMBEDDINGS: Final = Profile(support=MappingProxyType({_C.EMBEDDINGS.value: True}))

# Longest prefix wins; more specific families come first.
_FAMILIES: Final = (
    ("text-embedding-", _EMBEDDINGS),
    ("gpt-5-chat", _chat(16_384, 128_000)),
    ("gpt-5", _reasoning(128_000, 400_000)),
    ("o4-mini", _reasoning(100_000, 200_000)),
    ("o3", _reasoning(100_000, 200_000)),
    ("o1", _reasoning(100_000, 200_000)),
    ("gpt-4.1", _chat(32_768, 1_047_576)),
    ("gpt-4o-audio", _chat(16_384, 128_000, audio_input=True, vision=False)),
    ("gpt-4o", _chat(16_384, 128_000)),
    ("gpt-4-turbo", _chat(4_096, 128_000)),
    ("gpt-3.5-turbo", _chat(4_096, 16_385, vision=False, json_schema=False)),
)


def official_profile(model: str) -> Profile:
    for prefix, profile in _FAMILIES:
        if model.startswith(prefix):
            return profile
    return Profile()
