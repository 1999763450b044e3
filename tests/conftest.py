"""Shared fixtures. `tests/` is put on `sys.path` so every test module can `import fakes`.

With `ROUTEMW_REQUIRE_ALL=1` in the environment (`.ci/run` sets it) a skipped test is reported as
a failure: tests that need a service (Redis) skip with a reason on a machine without one, but CI
must run every one of them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakes import API_KEY, BACKUP_KEY, RECORDINGS, FakeOpenAI
from redis_server import own_redis, redis_client, redis_prefix, redis_url  # noqa: F401  (fixtures)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def recordings() -> Path:
    """The genuine provider recordings, copied into `tests/recordings` (provenance in its README)."""
    assert RECORDINGS.is_dir(), f"recordings not found at {RECORDINGS}"
    return RECORDINGS


@pytest.fixture
def upstream() -> FakeOpenAI:
    """A fake OpenAI that accepts `API_KEY`."""
    return FakeOpenAI(api_key=API_KEY)


@pytest.fixture
def backup() -> FakeOpenAI:
    """A second fake OpenAI, for fallback, that accepts `BACKUP_KEY`."""
    return FakeOpenAI(api_key=BACKUP_KEY)


REQUIRE_ALL = os.environ.get("ROUTEMW_REQUIRE_ALL") == "1"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but ROUTEMW_REQUIRE_ALL=1 requires every test to run: {reason}"
    return report
