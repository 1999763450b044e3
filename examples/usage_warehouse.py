"""Ship every request's usage record and routing trace to a warehouse of your own.

    python examples/usage_warehouse.py          # or: uvicorn examples.usage_warehouse:app
    curl http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\
         -d '{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}'
    sqlite3 usage.db 'select request_id, account, model, status, prompt_tokens from requests'

The one subscription point is `usage_sinks=[...]` (or `on_usage=callable`): each gets one
`UsageRecord` per finished request, refusals and disconnects included, with `record.trace`, the
request's `call.trace()` (candidates, skipped routes, every attempt and its outcome). A sink's
`emit` runs on the event loop and must not block, so this one only puts the record on a queue;
a thread writes to SQLite in batches. `close()` writes what is left; the gateway calls it on
shutdown for sinks it made, and a host calls it for its own (here: the app's lifespan).

Here the warehouse is a SQLite file; a real one (BigQuery, ClickHouse, a Kafka topic) takes the
same shape: a queue, a thread or task that batches, and `close()` to flush.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from routemw import Gateway
from routemw.usage import UsageRecord

_STOP = object()


class SQLiteWarehouse:
    """A usage sink: records and their traces into a SQLite table, written from a thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="usage-warehouse", daemon=True)
        self._thread.start()

    def emit(self, record: UsageRecord) -> None:
        self._queue.put(record)  # never blocks: the thread does the I/O

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def flush(self) -> None:
        """Wait until everything emitted so far is in the database."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(10)

    def _run(self) -> None:
        database = sqlite3.connect(self.path)
        database.execute(
            "create table if not exists requests (request_id text, time text, account text, model text,"
            " provider text, upstream_model text, status integer, error_code text, attempts integer,"
            " prompt_tokens integer, completion_tokens integer, cost_usd real, latency_ms real, trace text)"
        )
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 500:
                    batch.append(self._queue.get_nowait())
            rows = [_row(item) for item in batch if isinstance(item, UsageRecord)]
            if rows:
                database.executemany("insert into requests values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                database.commit()
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if any(item is _STOP for item in batch):
                database.close()
                return


def _row(record: UsageRecord) -> tuple[Any, ...]:
    trace = orjson.dumps(record.trace).decode() if record.trace is not None else None
    return (
        record.request_id,
        record.time,
        record.account,
        record.model,
        record.provider,
        record.upstream_model,
        record.status,
        record.error_code,
        record.attempts,
        record.prompt_tokens,
        record.completion_tokens,
        record.cost_usd,
        record.latency_ms,
        trace,
    )


warehouse = SQLiteWarehouse(os.environ.get("USAGE_DB", "usage.db"))
gateway = Gateway.from_config(
    {"models": {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}}}, usage_sinks=[warehouse]
)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with gateway:
        yield
    warehouse.close()


app = Starlette(routes=[Mount("/", app=gateway)], lifespan=lifespan)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), lifespan="on")
