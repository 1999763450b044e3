"""Azure OpenAI: the OpenAI wire format behind per-deployment URLs and an `api-key` header.

A route's `model` is the deployment name. With a dated `api_version` (default `2024-10-21`,
the GA version that accepts `stream_options` and `seed`) requests go to
`{base_url}/openai/deployments/{deployment}/chat/completions?api-version=...`; with
`api_version: v1` to the newer `{base_url}/openai/v1/chat/completions`, where the deployment
travels as `model`. `base_url` is the resource origin (`https://RESOURCE.openai.azure.com`) and
has no default, since every resource has its own.

Deployment names: 2 to 64 characters, a letter or digit first, then letters, digits, `-`, `_`
and `.` (`gpt-4.1` is a common name). That is the rule Azure documents for the resource that
holds the deployments, and the characters Azure accepts in deployment names; a route whose
`model` breaks it is refused at startup (`models.<name>.routes[i].model`), in both URL forms,
since Azure could never serve it. The deployment is also escaped as one path segment (and a
name of dots alone, which the rule already refuses, has its dots escaped too, or URL
normalisation would turn it into `..`), so a `Target` built by hand cannot leave the
`deployments/` path either.

Embeddings go to `.../deployments/{deployment}/embeddings` (or `/openai/v1/embeddings`). The
Responses API belongs to the resource, not a deployment: `/openai/responses?api-version=...`
(a preview version, 2025-03-01-preview or later, has it) or `/openai/v1/responses`, with the
deployment as `model`.

Streams: Azure opens with a `choices: []` chunk carrying only `prompt_filter_results` (dropped by
the OpenAI adapter) and, in asynchronous-filter mode, ends with annotation-only chunks (empty
`id`, empty deltas, no finish) after the finish chunk; those carry nothing for an OpenAI client
and are dropped here. A prompt blocked by the content filter is a 400 with
`code: "content_filter"`, returned to the client as the caller's problem (trying another
route would send the same prompt).
"""

from __future__ import annotations

import re
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Final

import httpx

from ...capabilities import Profile
from ...config import ProviderConfig
from ...errors import ConfigError
from ...reply import Chunk
from ..base import Target
from ..http_provider import path_segment
from .adapter import OpenAIProvider
from .profiles import official_profile

__all__ = ["AzureProvider", "register"]

DEFAULT_API_VERSION: Final = "2024-10-21"
# api-versions before this reject `stream_options` (openai/openai-python#1469).
_STREAM_OPTIONS_SINCE: Final = "2024-09-01"
_DEPLOYMENT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{1,63}")


class AzureProvider(OpenAIProvider):
    """Adapter for `type: azure`."""

    def __init__(self, config: ProviderConfig) -> None:
        if not config.base_url:
            raise ConfigError(
                [f"providers.{config.name}.base_url: required for azure (https://RESOURCE.openai.azure.com)"]
            )
        super().__init__(config, default_base_url=config.base_url)
        version = config.options.get("api_version", DEFAULT_API_VERSION)
        if not isinstance(version, str) or not version:
            raise ConfigError([f"providers.{config.name}.api_version: expected a string such as {DEFAULT_API_VERSION}"])
        self._api_version = version
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        if version == "v1":
            self._url = httpx.URL(f"{self._base_url}/openai/v1/chat/completions")
            self._embeddings_url = httpx.URL(f"{self._base_url}/openai/v1/embeddings")
            self._responses_url = httpx.URL(f"{self._base_url}/openai/v1/responses")
        else:
            # The Responses API is per resource, not per deployment: the deployment is `model`.
            self._responses_url = httpx.URL(
                f"{self._base_url}/openai/responses", params={"api-version": self._api_version}
            )

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        # Key auth uses `api-key`; Entra ID tokens go in `headers: {Authorization: "Bearer ..."}`.
        return {"api-key": config.api_key} if config.api_key else {}

    def model_name_problem(self, model: str) -> str | None:
        if _DEPLOYMENT.fullmatch(model):
            return None
        return (
            f"{model!r} is not an Azure deployment name (2-64 characters: a letter or digit, "
            "then letters, digits, '-', '_' or '.')"
        )

    def url_for(self, target: Target) -> httpx.URL:
        if self._api_version == "v1":
            return self._url
        return self._deployment_url(target.model, "chat/completions")

    def embeddings_url(self, target: Target) -> httpx.URL:
        if self._api_version == "v1":
            return self._embeddings_url
        return self._deployment_url(target.model, "embeddings")

    def _deployment_url(self, deployment: str, operation: str) -> httpx.URL:
        url = self._urls.get((deployment, operation))
        if url is None:
            url = httpx.URL(
                f"{self._base_url}/openai/deployments/{path_segment(deployment)}/{operation}",
                params={"api-version": self._api_version},
            )
            self._urls[(deployment, operation)] = url
        return url

    def profile(self, model: str) -> Profile:
        # Deployment names are the operator's choice; when one names its model family, that
        # family's profile applies, otherwise everything is unknown until config says more.
        profile = official_profile(model)
        if self._api_version != "v1" and self._api_version < _STREAM_OPTIONS_SINCE:
            support = MappingProxyType({**profile.support, "stream_usage": False})
            return replace(profile, support=support, stream_options=False)
        return profile

    def _chunk(self, data: bytes, model: str | None = None) -> Chunk | None:
        chunk = super()._chunk(data, model)
        if chunk is None or chunk.data.get("id") or chunk.data.get("usage"):
            return chunk
        # Annotation-only chunks of the asynchronous content filter: no id, nothing said.
        for choice in chunk.data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("delta") or choice.get("finish_reason") is not None:
                return chunk
        return None


def register(registry: Any) -> None:
    registry.register("azure", AzureProvider, options=("api_version",))
