"""Reading a request body with a size cap, refusing before reading when the size is declared."""

from __future__ import annotations

from ..errors import PayloadTooLargeError
from .asgi import Receive, Scope

__all__ = ["ClientDisconnected", "read_body"]


class ClientDisconnected(Exception):
    """The client went away before its request body was read."""


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body is larger than the limit of {limit} bytes.")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = -1
            if declared > limit:
                raise _too_large(limit)
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
