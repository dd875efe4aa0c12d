"""All deployments of a catalog: start-up loading of dedicated models, lookup, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mmserve.catalog.catalog import Catalog
from mmserve.catalog.schema import ModelCard
from mmserve.runtime.deployment import Deployment
from mmserve.settings import Settings

log = logging.getLogger("mmserve.runtime")


class Runtime:
    def __init__(self, catalog: Catalog, settings: Settings, *, progress: Callable[[str], None] | None = None) -> None:
        self.catalog = catalog
        self.settings = settings
        self.deployments: dict[str, Deployment] = {
            card.id: Deployment(
                card,
                base_dir=catalog.base_dir,
                models_dir=settings.models_dir,
                device=settings.device,
                progress=progress,
            )
            for card in catalog
        }

    def deployment(self, card: ModelCard) -> Deployment:
        return self.deployments[card.id]

    async def start(self) -> None:
        """Load every dedicated model (one at a time: loads compete for the same cores)."""
        if not self.settings.load_on_start:
            return
        for dep in self.deployments.values():
            if dep.card.deployment.mode == "dedicated":
                try:
                    await dep.ensure_loaded()
                except Exception as e:  # a broken model must not keep the others from serving
                    log.error("model '%s' could not be loaded at start: %s", dep.card.id, e)

    async def stop(self) -> None:
        await asyncio.gather(*(d.unload() for d in self.deployments.values()), return_exceptions=True)
