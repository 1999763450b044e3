"""The keep-alive pinger and the commit point's edges, at the ASGI message level."""

from __future__ import annotations

import anyio

from routemw.http.asgi import Message
from routemw.http.responses import _Pinger


async def test_a_ping_stuck_behind_a_slow_client_does_not_make_the_timer_spin() -> None:
    sent: list[bytes] = []
    release = anyio.Event()

    async def slow_send(message: Message) -> None:
        await release.wait()  # a client that reads slowly holds the server's send
        sent.append(message["body"])

    class CountingPinger(_Pinger):
        checks = 0

        def _check(self) -> None:
            CountingPinger.checks += 1
            super()._check()

    pinger = CountingPinger(slow_send, 0.05)
    pinger.start()
    await anyio.sleep(0.5)
    release.set()
    await pinger.stop()
    # About one look per interval (10 in 0.5 s), not one per millisecond.
    assert 5 <= CountingPinger.checks <= 15
    assert sent and all(body == b": ping\n" for body in sent)
