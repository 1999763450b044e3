"""What a request looked like before a door translated it: its protocol, JSON, bytes, headers.

A door (an inbound protocol other than OpenAI chat, see `routemw.doors`) translates its
request into the canonical `ChatRequest` the pipeline carries, so accounts, model resolution,
capability checks, limits, retries and fallback work on one vocabulary. The client's own
request rides along on `ChatRequest.native`, so that an adapter whose wire format is the
door's protocol can send the client's bytes on untouched instead of a translation of a
translation: that is the passthrough. Everything else reads the canonical body and never
needs to know which door a request came through.

Two lists say what the canonical translation could not carry:

- `untranslatable`: request fields only a native target can serve (an Anthropic server tool, a
  block type with no OpenAI equivalent). The capability check refuses other targets for them.
- `lossy`: fields the translation leaves out because a translating target cannot express them
  and the request still makes sense without them (`cache_control`, earlier thinking blocks).
  The door discloses them in `x-routemw-dropped-params` when a translated target answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NativeRequest", "passes_through"]


@dataclass(frozen=True, slots=True, eq=False)
class NativeRequest:
    """The client's request in its own protocol, as the door received it."""

    protocol: str  # "anthropic"
    body: Mapping[str, Any]  # the decoded JSON object, never modified
    raw: bytes  # its bytes
    headers: Mapping[str, str]  # protocol headers a native upstream gets (anthropic-version, -beta)
    untranslatable: tuple[str, ...] = ()  # param paths only a native target can serve
    lossy: tuple[str, ...] = ()  # fields a translation leaves out, for disclosure


def passes_through(provider: object, native: NativeRequest | None) -> bool:
    """Whether `provider` speaks `native`'s protocol, and so gets the client's request itself.

    An adapter opts in with a `native_protocol` attribute naming the protocol it speaks.
    """
    return native is not None and getattr(provider, "native_protocol", None) == native.protocol
