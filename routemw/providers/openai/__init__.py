"""OpenAI's Chat Completions wire format: OpenAI itself, compatible servers and Azure OpenAI."""

from .adapter import OpenAIProvider, register

__all__ = ["OpenAIProvider", "register"]
