"""The floor: a bare Starlette endpoint forwarding to the upstream with aiohttp, nothing else.

python -m benchmarks.bare_proxy --port 9101 --upstream http://127.0.0.1:9100 [--server uvicorn|granian]

On either server with the settings `routemw serve` uses (uvloop, one worker, gc.freeze), so that
the floor on a server and routemw on that server differ only by routemw.
"""

from __future__ import annotations

import argparse
import gc
import os
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


def from_environment() -> Starlette:
    """The app in a granian worker (granian loads it by name): upstream from the environment, then gc.freeze."""
    app = build(os.environ["BARE_PROXY_UPSTREAM"])
    gc.collect()
    gc.freeze()
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    args = parser.parse_args()
    if args.server == "granian":
        from granian.constants import Interfaces, Loops
        from granian.log import LogLevels
        from granian.server.mp import MPServer

        os.environ["BARE_PROXY_UPSTREAM"] = args.upstream
        server = MPServer(
            "benchmarks.bare_proxy:from_environment",
            port=args.port,
            interface=Interfaces.ASGI,
            loop=Loops.uvloop,
            factory=True,
            websockets=False,
            backlog=2048,
            log_level=LogLevels.warning,
        )
        server.serve()
        return
    # The same start-up tuning `routemw serve` does, so the floor is not handicapped by it.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        build(args.upstream), host="127.0.0.1", port=args.port, log_level="warning", access_log=False, backlog=2048
    )


if __name__ == "__main__":
    main()
