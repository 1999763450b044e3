"""The directory prometheus-client's multiprocess mode keeps every worker's metrics in.

prometheus-client decides at import whether it runs in multiprocess mode, from
`PROMETHEUS_MULTIPROC_DIR`; so the supervisor sets it before any worker starts, and every
worker, spawned afresh, imports it in that mode. A directory routemw made is emptied and
removed when serving ends, so no count outlives the server that made it. One named by the
operator (already in the environment) is used as it is and left alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from .metrics import MULTIPROCESS_VARIABLE

__all__ = ["metrics_directory"]


@contextlib.contextmanager
def metrics_directory(enabled: bool) -> Iterator[str | None]:
    """Set up the multiprocess directory for the workers to come; yields its path (None: off)."""
    if not enabled:
        yield None
        return
    given = os.environ.get(MULTIPROCESS_VARIABLE)
    if given:
        yield given
        return
    path = tempfile.mkdtemp(prefix="routemw-metrics-")
    os.environ[MULTIPROCESS_VARIABLE] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROCESS_VARIABLE, None)
        shutil.rmtree(path, ignore_errors=True)
