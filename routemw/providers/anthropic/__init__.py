"""Anthropic's Messages API: request building, stream translation and error mapping."""

from .adapter import AnthropicProvider, register

__all__ = ["AnthropicProvider", "register"]
