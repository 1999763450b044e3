"""The load generator: a lean HTTP/1.1 client, run in its own process.

`concurrency` keep-alive connections each send requests back to back until `count` requests
are done or `seconds` pass. For each request it records the latency and, for streams, the time
to the first body byte. Deliberately minimal (no HTTP library) so the generator costs far less
than the servers it measures. Prints one JSON object.

    python -m benchmarks.load --port 9102 --path /v1/chat/completions --body '{...}' --concurrency 32 --count 5000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson


class Client:
    def __init__(self, port: int, request: bytes) -> None:
        self.port = port
        self.request = request
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def call(self) -> tuple[int, float, float]:
        """(status, latency, time to first body byte)."""
        assert self.reader is not None and self.writer is not None
        start = time.perf_counter()
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        first = 0.0
        marker = lower.find(b"content-length:")
        if marker >= 0:
            length = int(lower[marker + 15 : lower.find(b"\r\n", marker)])
            await self.reader.readexactly(length)
            first = time.perf_counter() - start
        else:  # chunked
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if not first:
                    first = time.perf_counter() - start
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        return status, time.perf_counter() - start, first


async def run(port: int, request: bytes, concurrency: int, count: int, seconds: float) -> dict[str, object]:
    latencies: list[float] = []
    firsts: list[float] = []
    errors = 0
    remaining = count
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal remaining, errors
        client = Client(port, request)
        await client.connect()
        try:
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                status, latency, first = await client.call()
                if status != 200:
                    errors += 1
                latencies.append(latency)
                firsts.append(first)
        finally:
            assert client.writer is not None
            client.writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"count": len(latencies), "errors": errors, "elapsed": elapsed, "latencies": latencies, "firsts": firsts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    body = args.body.encode()
    extra = "".join(f"{h}\r\n" for h in args.header)
    request = (
        f"POST {args.path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    result = asyncio.run(run(args.port, request, args.concurrency, args.count, args.seconds))
    sys.stdout.buffer.write(orjson.dumps(result))


if __name__ == "__main__":
    main()
