"""The `access` fixture: the access lines a test's requests produce, as JSON objects."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from telemetry_fixtures import AccessCatcher

from routemw.telemetry import ACCESS_LOGGER


@pytest.fixture
def access() -> Iterator[AccessCatcher]:
    logger = logging.getLogger(ACCESS_LOGGER)
    catcher = AccessCatcher()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(catcher)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield catcher
    finally:
        logger.removeHandler(catcher)
        logger.setLevel(level)
        logger.propagate = propagate
