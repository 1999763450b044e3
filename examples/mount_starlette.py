"""The gateway mounted inside your own Starlette app, beside your own routes.

    python examples/mount_starlette.py          # or: uvicorn examples.mount_starlette:app
    curl http://127.0.0.1:8000/health
    curl http://127.0.0.1:8000/llm/v1/models

OpenAI clients use `base_url="http://127.0.0.1:8000/llm/v1"`. A mounted app never receives
lifespan events, so the host's `lifespan=gateway.lifespan` is what closes the gateway's upstream
connections at shutdown (they are opened lazily on the first request).
"""

from __future__ import annotations

import os

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from routemw import Gateway

gateway = Gateway.from_config({"models": {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}}})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[Route("/health", health), Mount("/llm", app=gateway)],
    lifespan=gateway.lifespan,
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
