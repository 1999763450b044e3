"""What a request is likely to use, and the most it can use, before it is sent.

No tokenizer: counting real tokens would cost more than the rest of the gateway's work on a
request. Two cheap figures instead:

- `likely` input tokens: the request body's size in bytes, less the bytes of inline media
  (base64 images, audio), divided by 4 (English text averages about 4 bytes a token; the JSON
  around the text makes this a slight overestimate), plus 765 tokens per image (a 1024x1024
  image at high detail on OpenAI). Rate limits (`tpm`) reserve this.
- `bound` input tokens: the body's size in bytes plus 2,000 per image. A byte-level tokenizer
  never makes more tokens than bytes of text, and every text of the request is in the body at
  least once, so this is an upper bound; images passed by URL are the one input whose size the
  body does not show, and 2,000 covers the largest per-image charge of the providers routemw
  speaks. Quotas and budgets reserve this, which is what makes "no overspend" hold.

An embeddings request (`request.kind`) has no output: its estimate is its input alone.

Output is the request's `max_completion_tokens` or `max_tokens`, else the largest `max_tokens`
default among the candidate routes' `params` (or `limits.estimate_output_tokens` when some route
has none), times `n`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ..chat import ChatRequest
from ..providers.base import Target

__all__ = ["Estimate", "estimate"]

_IMAGE_LIKELY: Final = 765
_IMAGE_BOUND: Final = 2_000
_OUTPUT_FIELDS: Final = ("max_completion_tokens", "max_tokens")


@dataclass(frozen=True, slots=True)
class Estimate:
    input_likely: int
    input_bound: int
    output: int  # the most output tokens the request can produce (or the configured guess)
    capped: bool  # whether `output` is a real cap (max_tokens sent or a route default)

    @property
    def likely(self) -> int:
        return self.input_likely + self.output

    @property
    def bound(self) -> int:
        return self.input_bound + self.output


def estimate(request: ChatRequest, candidates: Sequence[Target], default_output: int) -> Estimate:
    body = request.body
    size = len(request.raw) if request.raw is not None else len(orjson.dumps(body))
    media = 0
    images = 0
    if request.kind == "embeddings":
        likely = -(-size // 4)
        return Estimate(input_likely=likely, input_bound=size, output=0, capped=True)
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            kind = part.get("type")
            if kind == "text":
                continue
            if kind == "image_url":
                images += 1
            media += _inline_bytes(part.get(kind) if isinstance(kind, str) else None)
    output, capped = _output(body, candidates, default_output)
    return Estimate(
        input_likely=-(-max(size - media, 0) // 4) + images * _IMAGE_LIKELY,
        input_bound=size + images * _IMAGE_BOUND,
        output=output,
        capped=capped,
    )


def _inline_bytes(payload: Any) -> int:
    """The size of a content part's inline data (a data: URL, base64 audio), which is not text."""
    if isinstance(payload, Mapping):
        return sum(len(v) for v in payload.values() if isinstance(v, str) and len(v) > 256)
    return 0


def _output(body: Mapping[str, Any], candidates: Sequence[Target], default_output: int) -> tuple[int, bool]:
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    for key in _OUTPUT_FIELDS:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value * choices, True
    capped = bool(candidates)
    most = 0
    for target in candidates:
        route = next((target.params[k] for k in _OUTPUT_FIELDS if isinstance(target.params.get(k), int)), None)
        if route is None:
            capped = False
            most = max(most, default_output)
        else:
            most = max(most, route)
    return (most if candidates else default_output) * choices, capped
