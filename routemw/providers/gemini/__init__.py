"""Google Gemini's generateContent API: request building, response translation, error mapping."""

from .adapter import GeminiProvider, register

__all__ = ["GeminiProvider", "register"]
