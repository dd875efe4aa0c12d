"""What the routers and services share: settings, catalog, runtime and the media layer."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from mmserve.catalog.catalog import Catalog
from mmserve.media.ingest import MediaIngestor
from mmserve.runtime.runtime import Runtime
from mmserve.settings import Settings


@dataclass
class AppState:
    settings: Settings
    catalog: Catalog
    runtime: Runtime
    media: MediaIngestor


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mm
    return state
