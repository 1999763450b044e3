"""`routemw serve` in a process whose host set up OpenTelemetry, exporting to nowhere.

For the benchmark's telemetry scenario: the SDK's tracer provider with a batch processor and an
exporter that drops everything, so the gateway pays for making, ending and queueing every span,
as it would in production, without the benchmark measuring an exporter's network I/O.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from routemw.cli import main


class DropExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


if __name__ == "__main__":
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    sys.exit(main(sys.argv[1:]))
