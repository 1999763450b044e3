"""What the gateway shows outside the process: access log, Prometheus metrics, spans, health.

See `hub` for how the parts hang together, and README "Observability" for what each emits.
"""

from .access_log import ACCESS_FIELDS, ACCESS_LOGGER, configure_logging, stop_access_log
from .health import Readiness, ReadinessCheck
from .hub import Telemetry

__all__ = [
    "ACCESS_FIELDS",
    "ACCESS_LOGGER",
    "Readiness",
    "ReadinessCheck",
    "Telemetry",
    "configure_logging",
    "stop_access_log",
]
