"""Catalog files (YAML) loaded and validated against the engines, sources resolved, and the demo catalog.

The card schema itself is :mod:`mmserve.cards`; the catalog sits above the engines (it checks
each card's engine and options against :mod:`mmserve.engines.registry`), never below them.
"""

from mmserve.catalog.catalog import Catalog

__all__ = ["Catalog"]
