"""A middleware of your own in front of the gateway's default pipeline.

    python examples/custom_middleware.py        # or: uvicorn examples.custom_middleware:app
    curl -i http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\
         -d '{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}'

A middleware is a plain class: options in `__init__`, the work in `async __call__(call, next)`.
Per-request state belongs on `call` (here `call.response_headers`), never on `self`. Listed in
`middleware=[...]`, it runs before the built-in routing, so it sees every request, even one for
a model that does not exist (its 404 carries the header too).
"""

from __future__ import annotations

import logging
import os

import uvicorn

from routemw import Call, Gateway, Handler, Reply

logger = logging.getLogger("custom_middleware")


class ModelLogMiddleware:
    """Logs the requested model and names it in a response header."""

    def __init__(self, *, header: str = "x-example-model", level: int = logging.INFO) -> None:
        self.header = header
        self.level = level

    async def __call__(self, call: Call, next: Handler) -> Reply:
        model = call.request.model
        logger.log(self.level, "request %s asks for model %s", call.request_id, model)
        call.response_headers[self.header] = model  # sent with the answer, streamed or not
        return await next(call)


app = Gateway.from_config(
    {"models": {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}}},
    middleware=[ModelLogMiddleware()],
)

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), lifespan="on")
