"""The configuration `routemw serve` runs with when it is given none.

It binds to loopback with auth off, always serves the network-free `echo` model, and adds a
provider with its usual models for each upstream whose API key is in the environment. The
keys themselves stay `${VAR}` references, resolved by the loader like any config file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["default_document"]

# (env var, provider name, provider type, public model ids served by it)
_UPSTREAMS: Final = (
    (
        "OPENAI_API_KEY",
        "openai",
        "openai",
        ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini", "o3", "o4-mini"),
    ),
    ("GEMINI_API_KEY", "gemini", "gemini", ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite")),
    ("ANTHROPIC_API_KEY", "anthropic", "anthropic", ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")),
)


def default_document(environ: Mapping[str, str]) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    models: dict[str, Any] = {"echo": {"routes": [{"provider": "echo", "model": "echo"}], "owned_by": "routemw"}}
    for variable, name, type_name, model_ids in _UPSTREAMS:
        if not environ.get(variable):
            continue
        providers[name] = {"type": type_name, "api_key": "${" + variable + "}"}
        for model_id in model_ids:
            models[model_id] = {"routes": [{"provider": name, "model": model_id}], "owned_by": name}
    return {
        "server": {"host": "127.0.0.1", "port": 8000},
        "providers": providers,
        "models": models,
        "auth": {"mode": "none"},
    }
