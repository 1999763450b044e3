"""The public surface is what routemw/__init__.py exports, and every name there resolves."""

from __future__ import annotations

import routemw


def test_every_exported_name_exists_and_is_documented_once() -> None:
    assert len(routemw.__all__) == len(set(routemw.__all__))
    for name in routemw.__all__:
        assert getattr(routemw, name) is not None, name


def test_core_names_are_public() -> None:
    for name in ("Gateway", "Middleware", "Call", "ProviderRegistry", "Provider", "Account", "KeyStore", "load_config"):
        assert name in routemw.__all__
