"""`GET /healthz` and `GET /readyz`: is the process up, and should it get traffic.

`/healthz` answers 200 as long as the process serves HTTP at all: a liveness probe that restarts
on it should restart only a process that is stuck. `/readyz` answers 200 when every readiness
check passes and 503 with the first failing check's reason otherwise. A gateway exists only once
its config has loaded, so "config" always passes; "shutdown" fails once a drain has begun, so a
load balancer stops sending work before the listener closes. Other parts register their own
checks (`gateway.readiness.add("redis", check)`): an async function returning None when ready,
or a short reason. Each check is bounded by `timeout`, so a probe never hangs on a dead backend.

Neither needs a key (probes carry none) and neither says anything a caller could use: the reasons
are fixed texts chosen by the checks, never an exception's message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import orjson

from ..http.asgi import Receive, Scope, Send

__all__ = ["HEALTH_PATHS", "Readiness", "ReadinessCheck"]

ReadinessCheck = Callable[[], Awaitable[str | None]]
HEALTH_PATHS: Final = ("/healthz", "/readyz")

logger = logging.getLogger("routemw")


class Readiness:
    """The named readiness checks of one gateway, run in order by `GET /readyz`."""

    def __init__(self, closing: Callable[[], bool], *, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self._closing = closing
        self._checks: dict[str, ReadinessCheck] = {}

    def add(self, name: str, check: ReadinessCheck) -> None:
        """Register `check` under `name`; a name can be registered once."""
        if name in self._checks or name in ("config", "shutdown"):
            raise ValueError(f"a readiness check named {name!r} is already registered")
        self._checks[name] = check

    async def run(self) -> tuple[bool, dict[str, Any]]:
        """(ready, the JSON body for /readyz)."""
        results: dict[str, str] = {"config": "ok", "shutdown": "ok"}
        reason: str | None = None
        if self._closing():
            results["shutdown"] = "the server is shutting down"
            reason = "shutdown: the server is shutting down"
        for name, check in self._checks.items():
            outcome = await self._one(name, check)
            results[name] = outcome or "ok"
            if outcome is not None and reason is None:
                reason = f"{name}: {outcome}"
        if reason is None:
            return True, {"status": "ready", "checks": results}
        return False, {"status": "not_ready", "reason": reason, "checks": results}

    async def _one(self, name: str, check: ReadinessCheck) -> str | None:
        try:
            with anyio.fail_after(self.timeout):
                return await check()
        except TimeoutError:
            return f"no answer within {self.timeout:g}s"
        except Exception:
            logger.exception("routemw: readiness check %r failed", name)
            return "the check failed"

    # -- endpoints -------------------------------------------------------------------------

    async def healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _answer(scope, send, 200, {"status": "ok"})

    async def readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(scope, send, 405, {"status": "method_not_allowed"})
            return
        ready, body = await self.run()
        await _answer(scope, send, 200 if ready else 503, body)


async def _answer(scope: Scope, send: Send, status: int, body: dict[str, Any]) -> None:
    method = scope["method"]
    if method not in ("GET", "HEAD"):
        status, body = 405, {"status": "method_not_allowed"}
    payload = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if status == 405:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else payload})
