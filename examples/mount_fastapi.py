"""The gateway mounted inside your own FastAPI app, beside your own routes.

    python examples/mount_fastapi.py            # or: uvicorn examples.mount_fastapi:app
    curl http://127.0.0.1:8000/health
    curl http://127.0.0.1:8000/llm/v1/models

OpenAI clients use `base_url="http://127.0.0.1:8000/llm/v1"`. The gateway is an async context
manager: entering it in the app's lifespan ties its upstream connections to the app's life.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from routemw import Gateway

gateway = Gateway.from_config({"models": {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}}})


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with gateway:
        yield


app = FastAPI(lifespan=lifespan)
app.mount("/llm", gateway)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
