"""What the routers and services share: settings, catalog, runtime, media layer and artifact store."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from mmserve.catalog.catalog import Catalog
from mmserve.db import Database
from mmserve.jobs.runner import JobRunner
from mmserve.media.ingest import MediaIngestor
from mmserve.runtime.runtime import Runtime
from mmserve.settings import Settings
from mmserve.storage.artifacts import ArtifactStore
from mmserve.storage.signing import UrlSigner


@dataclass
class AppState:
    settings: Settings
    catalog: Catalog
    runtime: Runtime
    media: MediaIngestor
    artifacts: ArtifactStore
    signer: UrlSigner
    db: Database
    jobs: JobRunner  # durable video jobs; .store is the SQL store


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mm
    return state
