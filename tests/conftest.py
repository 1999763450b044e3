"""Shared fixtures. `tests/` is put on `sys.path` so every test module can `import fakes`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakes import API_KEY, BACKUP_KEY, RECORDINGS, FakeOpenAI


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def recordings() -> Path:
    """The genuine provider recordings in `<repo root>/../shared/reference/recordings`."""
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
