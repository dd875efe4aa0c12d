"""Model cards, catalog files and the built-in demo catalog."""

from mmserve.catalog.catalog import Catalog
from mmserve.catalog.schema import ModelCard

__all__ = ["Catalog", "ModelCard"]
