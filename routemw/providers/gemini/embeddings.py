"""OpenAI embeddings requests as Gemini `batchEmbedContents`, and the answer back. Decisions:

- Each input is one `EmbedContentRequest` (`model: models/{model}`, one text part); the
  dimensions the client asked for are `outputDimensionality`. Gemini takes at most 100
  requests a call (`BATCH_LIMIT`); the dispatcher splits larger inputs into batches.
- Gemini embeds text only: token-array inputs are refused by this route with a 400
  `unsupported_value` naming `input`, so another route (an OpenAI one) may take the request,
  and the client gets that 400 when none can. `user` has no Gemini field and is left out
  (it only helps OpenAI monitor abuse); unknown fields are left out too.
- The answer is OpenAI's embeddings list in input order. `encoding_format: base64` is made
  here from Gemini's floats, as OpenAI encodes it (little-endian float32).
- Gemini reports no usage for embeddings. The usage given is an estimate, one token per 4
  bytes of UTF-8 text (at least one per input), so limits, budgets and usage records still
  count the request; `x-routemw-usage: estimated` says so on the answer.
"""

from __future__ import annotations

from typing import Any, Final

from ...embeddings import base64_vector, inputs
from ...errors import Action, UpstreamError
from ...reply import Completion
from ..classify import invalid_response

__all__ = ["BATCH_LIMIT", "ESTIMATED", "completion_from_embeddings", "embeddings_body"]

BATCH_LIMIT: Final = 100
ESTIMATED: Final = {"x-routemw-usage": "estimated"}


def embeddings_body(body: dict[str, Any], model: str, provider: str) -> dict[str, Any]:
    """The `BatchEmbedContentsRequest` for an OpenAI embeddings body."""
    texts = inputs(body)
    if not all(isinstance(text, str) for text in texts):
        raise UpstreamError(
            f"Provider '{provider}' embeds text only, not token arrays.",
            provider=provider,
            action=Action.FALLBACK,
            status=400,
            error_type="invalid_request_error",
            param="input",
            code="unsupported_value",
        )
    resource = f"models/{model}"
    dimensions = body.get("dimensions")
    requests = []
    for text in texts:
        request: dict[str, Any] = {"model": resource, "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            request["outputDimensionality"] = dimensions
        requests.append(request)
    return {"requests": requests}


def completion_from_embeddings(data: Any, body: dict[str, Any], model: str, provider: str) -> Completion:
    """A `BatchEmbedContentsResponse` as OpenAI's embeddings list, with estimated usage."""
    embeddings = data.get("embeddings") if isinstance(data, dict) else None
    texts = inputs(body)
    if not isinstance(embeddings, list) or len(embeddings) != len(texts):
        raise invalid_response(provider, "a batchEmbedContents answer without one embedding per input")
    as_base64 = body.get("encoding_format") == "base64"
    out: list[dict[str, Any]] = []
    for index, embedding in enumerate(embeddings):
        values = embedding.get("values") if isinstance(embedding, dict) else None
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            raise invalid_response(provider, "an embedding whose values are not numbers")
        vector: Any = base64_vector(values) if as_base64 else values
        out.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(max(1, -(-len(text.encode()) // 4)) for text in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return Completion(data={"object": "list", "data": out, "model": model, "usage": usage}, headers=dict(ESTIMATED))
