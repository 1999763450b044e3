"""The gateway on its own, served by uvicorn.

Run it from the repository root, then point any OpenAI client at http://127.0.0.1:8000/v1:

    python examples/standalone.py
    PORT=9000 OPENAI_API_KEY=sk-... python examples/standalone.py

The `echo` model (built in, no network) is always there; `gpt-4o-mini` is added when
OPENAI_API_KEY is set. The key stays a `${OPENAI_API_KEY}` reference, resolved at load time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import uvicorn

from routemw import Gateway


def build_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The gateway config as a plain mapping: what a YAML file would hold."""
    providers: dict[str, Any] = {}
    models: dict[str, Any] = {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}}
    if environ.get("OPENAI_API_KEY"):
        providers["openai"] = {"type": "openai", "api_key": "${OPENAI_API_KEY}"}
        models["gpt-4o-mini"] = {"routes": [{"provider": "openai", "model": "gpt-4o-mini"}]}
    return {"providers": providers, "models": models}


def main() -> None:
    gateway = Gateway.from_config(build_config(os.environ))
    # lifespan="on": uvicorn's shutdown closes the gateway's upstream connections.
    uvicorn.run(gateway, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), lifespan="on")


if __name__ == "__main__":
    main()
