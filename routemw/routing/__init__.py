"""Which targets may serve a public model."""

from .catalog import Catalog, ModelEntry

__all__ = ["Catalog", "ModelEntry"]
