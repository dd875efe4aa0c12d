"""What the routers and services share: settings, catalog, runtime, media layer and artifact store."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from mmserve.catalog.catalog import Catalog
from mmserve.control.keys import KeyStore
from mmserve.control.metering import Meter
from mmserve.control.routing import ModelRouter
from mmserve.control.usage import UsageRecorder
from mmserve.db import Database
from mmserve.jobs.runner import JobRunner
from mmserve.media.audio.ingest import AudioIngestor
from mmserve.media.image.ingest import MediaIngestor
from mmserve.metrics import Metrics
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
    metrics: Metrics
    db: Database
    keys: KeyStore
    usage: UsageRecorder
    meter: Meter
    router: ModelRouter
    jobs: JobRunner  # durable video jobs; .store is the SQL store
    audio: AudioIngestor | None = None  # uploaded audio (transcription); made by create_app


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per request
    # (~7% of mmserve's CPU for a streamed chat request, py-spy)
    state: AppState = request.app.state.mm
    return state
