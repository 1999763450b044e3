"""The type of the `make_store` fixture (tests/limits/conftest.py), importable by any test module."""

from __future__ import annotations

from collections.abc import Callable

from routemw.limits import LimitStore

MakeStore = Callable[[Callable[[], float]], LimitStore]
