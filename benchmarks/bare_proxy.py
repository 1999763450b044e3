"""The floor: a bare Starlette endpoint forwarding to the upstream with aiohttp, nothing else.

python -m benchmarks.bare_proxy --port 9101 --upstream http://127.0.0.1:9100
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def build(upstream: str) -> Starlette:
    state: dict[str, aiohttp.ClientSession] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=1000)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as session:
            state["session"] = session
            yield

    async def forward(request: Request) -> Response:
        body = await request.body()
        response = await state["session"].post(
            upstream + request.url.path, data=body, headers={"content-type": "application/json"}
        )
        if response.content_type == "text/event-stream":

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for piece in response.content.iter_any():
                        yield piece
                finally:
                    response.release()

            return StreamingResponse(relay(), status_code=response.status, media_type="text/event-stream")
        payload = await response.read()
        response.release()
        return Response(payload, status_code=response.status, media_type="application/json")

    routes = [
        Route("/v1/chat/completions", forward, methods=["POST"]),
        Route("/v1/messages", forward, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    # The same start-up tuning `routemw serve` does, so the floor is not handicapped by it.
    gc.collect()
    gc.freeze()
    uvicorn.run(build(args.upstream), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
