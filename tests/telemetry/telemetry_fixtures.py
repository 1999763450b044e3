"""A gateway with two routes and a key, and a handler that catches its access lines as JSON."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson
from fakes import API_KEY, FakeOpenAI, route_hosts

from routemw import Gateway
from routemw.telemetry.access_log import JsonFormatter

UP_URL = "https://upstream.test/v1"
BACKUP_URL = "https://backup.test/v1"
KEY = "sk-team-a-0123456789abcdef"
AUTH = [("authorization", f"Bearer {KEY}")]
QUESTION = "What's the weather like in SF?"
CHAT: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": QUESTION}]}
STREAM_CHAT: dict[str, Any] = {**CHAT, "stream": True}
# The same question through the Anthropic Messages door, as an Anthropic client sends it.
MESSAGES: dict[str, Any] = {"model": "gpt-4o", "max_tokens": 256, "messages": [{"role": "user", "content": QUESTION}]}
MESSAGES_AUTH = [("x-api-key", KEY), ("anthropic-version", "2023-06-01")]


def document(*, limits: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Model gpt-4o: route up/gpt-4o, then backup/gpt-4o-mini; key team-a; one attempt per route."""
    account: dict[str, Any] = {"name": "team-a", "key": KEY, "models": ["*"]}
    if limits is not None:
        account["limits"] = limits
    return {
        "providers": {
            "up": {"type": "openai", "base_url": UP_URL, "api_key": API_KEY},
            "backup": {"type": "openai", "base_url": BACKUP_URL, "api_key": API_KEY},
        },
        "models": {
            "gpt-4o": {
                "routes": [
                    {"provider": "up", "model": "gpt-4o", "capabilities": {"stream_usage": True}},
                    {"provider": "backup", "model": "gpt-4o-mini", "capabilities": {"stream_usage": True}},
                ]
            }
        },
        "keys": [account],
        "auth": {"mode": "keys"},
        "retry": {"attempts": 1},
        **(extra or {}),
    }


def build(
    up: FakeOpenAI, backup: FakeOpenAI | None = None, doc: dict[str, Any] | None = None, **kwargs: Any
) -> Gateway:
    hosts = {"upstream.test": up, "backup.test": backup or FakeOpenAI()}
    transport = httpx.MockTransport(route_hosts(hosts))
    return Gateway.from_config(doc or document(), environ={}, transport=transport, **kwargs)


class AccessCatcher(logging.Handler):
    """Formats each `routemw.access` record as `routemw serve --log-format json` would."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def entries(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.lines]
