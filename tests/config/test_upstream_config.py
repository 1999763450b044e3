"""The `upstream:` section: bounds on what an upstream may send, with defaults and their checks."""

from __future__ import annotations

from typing import Any

import pytest

from routemw.config import UpstreamConfig, load_config
from routemw.errors import ConfigError

MIB = 1024 * 1024
SERVING: dict[str, Any] = {"models": {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}}}


def test_the_defaults_keep_a_bomb_or_a_huge_line_far_below_the_memory_budget() -> None:
    config = load_config(SERVING, environ={})
    assert config.upstream == UpstreamConfig()
    assert config.upstream.max_body_bytes == 32 * MIB
    assert config.upstream.max_event_bytes == 8 * MIB
    assert config.upstream.max_decompression_ratio == 100


def test_each_bound_can_be_set() -> None:
    document = {**SERVING, "upstream": {"max_body_bytes": 1000, "max_event_bytes": 500, "max_decompression_ratio": 20}}
    config = load_config(document, environ={})
    assert config.upstream == UpstreamConfig(max_body_bytes=1000, max_event_bytes=500, max_decompression_ratio=20.0)


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"max_body_bytes": 0}, "upstream.max_body_bytes: must be at least 1, got 0"),
        ({"max_event_bytes": 1.5}, "upstream.max_event_bytes: expected an integer, got"),
        ({"max_decompression_ratio": 0}, "upstream.max_decompression_ratio: must be greater than 0"),
        ({"max_body": 10}, "upstream.max_body: unknown key"),
        ("big", "upstream: expected a mapping"),
    ],
)
def test_bad_bounds_are_reported_with_their_path(section: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"upstream": section}, environ={})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
