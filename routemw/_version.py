"""The installed version of routemw, from one place: the package metadata.

Read from `importlib.metadata` so it can never disagree with what pip installed; a source tree
that was never installed (a bare checkout on `PYTHONPATH`) reports `0+unknown` rather than
failing to import.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__: str = version("routemw")
except PackageNotFoundError:  # pragma: no cover - only in an uninstalled checkout
    __version__ = "0+unknown"
