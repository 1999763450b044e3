"""ASGI type aliases and the small helpers the gateway edge needs, with no framework."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send", "client_path", "route_path"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_path(scope: Scope) -> str:
    """The path below the app's mount point.

    Starlette's `Mount` leaves `path` whole and appends the prefix to `root_path`; servers
    started with `--root-path` may strip it themselves. Both arrive here as the same route path.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if not rest or rest[0] == "/":
            return rest or "/"
    return path


def client_path(scope: Scope) -> str:
    """The path as the client asked for it, mount prefix included: what errors should name.

    A `path` that already starts with `root_path` is whole (Starlette's `Mount`, and servers
    that follow the ASGI spec); one that does not was stripped by the server, so the prefix
    goes back in front.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or (path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] in ("", "/")):
        return path
    return root_path + path
