"""The stream-scale load generator: many slow streams at once, some clients leaving mid-stream.

`--clients` connections each send one streaming request (their starts spread over `--ramp`
seconds), read its SSE body, and record the time to the first content event. Every `--leave`-th
client (4: a quarter) closes its connection after `--leave-after` content events. Prints one
JSON object: per-client outcome and TTFT, and the peak number of streams open at once.

    python -m benchmarks.streams --port 9102 --body '{...}' --clients 2000 [--header 'authorization: ...']

`--probe` instead sends `GET /v1/models` back to back on one connection for `--seconds` and
reports each latency: a request that waits only on the server's event loop, so its latency
during a stream run is that loop's lag.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time

import orjson


class Counter:
    def __init__(self) -> None:
        self.open = 0
        self.peak = 0

    def up(self) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)

    def down(self) -> None:
        self.open -= 1


async def one(port: int, request: bytes, leave_after: int, counter: Counter) -> dict[str, object]:
    """One client: ('done' | 'left' | 'error:...', TTFT seconds or None, content events seen)."""
    start = time.perf_counter()
    ttft: float | None = None
    events = 0
    writer: asyncio.StreamWriter | None = None
    counter.up()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200":
            return {"outcome": f"error:status {head[9:12].decode()}", "ttft": None, "events": 0}
        buffer = b""
        while True:  # the chunked body, parsed only as far as SSE events
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return {"outcome": "error:ended without [DONE]", "ttft": ttft, "events": events}
            buffer += data[:-2]
            *complete, buffer = buffer.split(b"\n\n")
            for event in complete:
                if event == b"data: [DONE]":
                    return {"outcome": "done", "ttft": ttft, "events": events}
                if b'"error"' in event[:20]:
                    return {"outcome": "error:in-band " + event[:120].decode(), "ttft": ttft, "events": events}
                if b'"content":"w' in event:  # a content event (the role event has content "")
                    events += 1
                    if ttft is None:
                        ttft = time.perf_counter() - start
                    if leave_after and events >= leave_after:
                        return {"outcome": "left", "ttft": ttft, "events": events}
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        return {"outcome": f"error:{type(exc).__name__}", "ttft": ttft, "events": events}
    finally:
        counter.down()
        if writer is not None:
            writer.close()


async def run(port: int, request: bytes, clients: int, ramp: float, leave: int, leave_after: int) -> dict[str, object]:
    counter = Counter()

    async def client(index: int) -> dict[str, object]:
        await asyncio.sleep(ramp * index / clients)
        leaving = leave and index % leave == 0
        return await one(port, request, leave_after if leaving else 0, counter)

    started = time.perf_counter()
    results = await asyncio.gather(*(client(i) for i in range(clients)))
    return {"elapsed": time.perf_counter() - started, "peak_open": counter.peak, "results": results}


async def probe(port: int, seconds: float) -> dict[str, object]:
    request = b"GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        marker = lower.find(b"content-length:")
        await reader.readexactly(int(lower[marker + 15 : lower.find(b"\r\n", marker)]))
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(0.01)
    writer.close()
    return {"latencies": latencies}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--body", default="")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--ramp", type=float, default=0.25)
    parser.add_argument("--leave", type=int, default=4, help="every Nth client leaves mid-stream (0: none)")
    parser.add_argument("--leave-after", type=int, default=25, help="content events before leaving")
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # one socket per client, and then some
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    if args.probe:
        result = asyncio.run(probe(args.port, args.seconds))
    else:
        body = args.body.encode()
        extra = "".join(f"{h}\r\n" for h in args.header)
        request = (
            f"POST {args.path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{extra}\r\n"
        ).encode() + body
        result = asyncio.run(run(args.port, request, args.clients, args.ramp, args.leave, args.leave_after))
    sys.stdout.buffer.write(orjson.dumps(result))


if __name__ == "__main__":
    main()
