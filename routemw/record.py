"""One request's `UsageRecord`, built from its call once the reply has ended.

Kept apart from `routemw.usage` (the record, the meter and the sinks) because it reads the
whole call: the pipeline imports the meter, so the meter's module cannot import the pipeline.
"""

from __future__ import annotations

import time

from .pipeline import Call
from .prices import Price
from .usage import UsageRecord, iso_time

__all__ = ["usage_record"]


def usage_record(
    call: Call | None,
    *,
    request_id: str,
    arrived: float,
    status: int | None,
    error: str | None,
    method: str,
    path: str,
    price: Price | None,
    with_trace: bool,
) -> UsageRecord:
    """The record of a request; `call` is None when it was refused before one was made (a 401).

    `status` None means the client left before its answer: recorded as 499. `price` is the
    answering route's, and `with_trace` adds `call.trace()` (only when someone reads it).
    """
    meter = call.meter if call is not None else None
    counts = meter.counts if meter is not None else None
    if meter is not None and meter.error_code is not None:
        error = meter.error_code  # the stream failed after it started
    if status is None:
        status, error = 499, error or "client_disconnected"
    target = call.target if call is not None else None
    stream = call.request.stream if call is not None else None
    first = meter.first_chunk if meter is not None and stream else None
    started = call.started if call is not None else time.monotonic()
    return UsageRecord(
        request_id=request_id,
        time=iso_time(arrived),
        account=getattr(call.account, "name", None) if call is not None else None,
        model=call.request.model if call is not None else None,
        provider=target.provider.name if target is not None else None,
        upstream_model=target.model if target is not None else None,
        prompt_tokens=counts.prompt if counts is not None else None,
        cached_tokens=counts.cached if counts is not None else None,
        completion_tokens=counts.completion if counts is not None else None,
        reasoning_tokens=counts.reasoning if counts is not None else None,
        cost_usd=price.cost(counts) / 1_000_000 if price is not None and counts is not None else None,
        status=status,
        error_code=error,
        attempts=len(call.attempts) if call is not None else 0,
        latency_ms=round((time.monotonic() - started) * 1000, 3),
        ttft_ms=round((first - started) * 1000, 3) if first is not None else None,
        stream=stream,
        method=method,
        path=path,
        fallbacks=int(call.response_headers.get("x-routemw-fallbacks", 0)) if call is not None else 0,
        limit=getattr(call.error, "limit", None) if call is not None else None,
        trace=call.trace() if call is not None and with_trace else None,
    )
