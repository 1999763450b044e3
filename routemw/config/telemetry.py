"""Typed readers for the telemetry sections (`metrics`, `health`); mixed into the config validator."""

from __future__ import annotations

from typing import Any, Final

from . import keys as accepted
from .fields import FieldReader, join, kind
from .schema import HealthConfig, MetricsConfig

__all__ = ["TelemetryFields"]

# Paths the gateway answers itself; metrics cannot be served over them.
_TAKEN: Final = ("/healthz", "/readyz", "/v1/")


class TelemetryFields(FieldReader):
    def metrics(self, value: Any, path: str) -> MetricsConfig:
        data = self.mapping(value, path, accepted.METRICS.names) or {}
        default = MetricsConfig()
        where = default.path
        if "path" in data:
            where = self.metrics_path(data["path"], join(path, "path"))
        return MetricsConfig(prometheus=self.field(data, "prometheus", path, self.flag, default.prometheus), path=where)

    def metrics_path(self, value: Any, path: str) -> str | None:
        if value is None:
            return None  # served only where the host mounts `gateway.metrics_app`
        if not isinstance(value, str) or not value.startswith("/"):
            self.problem(path, f"expected a path starting with '/', or null, got {kind(value)}")
            return None
        if value in _TAKEN[:2] or value.startswith(_TAKEN[2]) or value == "/v1":
            self.problem(path, f"{value!r} is a path the gateway already answers")
            return None
        return value

    def health(self, value: Any, path: str) -> HealthConfig:
        data = self.mapping(value, path, accepted.HEALTH.names) or {}
        return HealthConfig(observe=self.field(data, "observe", path, self.flag, HealthConfig().observe))

    def flag(self, value: Any, path: str) -> bool | None:
        if isinstance(value, bool):
            return value
        self.problem(path, f"expected true or false, got {kind(value)}")
        return None
