"""create_app(): the FastAPI application with every endpoint family, error handler and limit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mmserve import __version__
from mmserve.api.artifacts.router import router as artifacts_router
from mmserve.api.body_limit import ContentLengthLimit
from mmserve.api.chat.router import router as chat_router
from mmserve.api.errors import install_handlers
from mmserve.api.health.router import router as health_router
from mmserve.api.models.router import router as models_router
from mmserve.api.state import AppState
from mmserve.catalog.catalog import Catalog
from mmserve.catalog.loader import load_catalog
from mmserve.media.fetch import SafeFetcher
from mmserve.media.ingest import MediaIngestor
from mmserve.runtime.runtime import Runtime
from mmserve.settings import Settings
from mmserve.storage.artifacts import ArtifactStore
from mmserve.storage.signing import UrlSigner

log = logging.getLogger("mmserve.app")
CLEANUP_INTERVAL_S = 600


def create_app(
    settings: Settings | None = None,
    catalog: Catalog | None = None,
    *,
    fetcher: SafeFetcher | None = None,
    progress: Callable[[str], None] | None = None,
) -> FastAPI:
    settings = settings or Settings()
    catalog = catalog if catalog is not None else load_catalog(settings.config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(catalog, settings, progress=progress)
    state = AppState(
        settings=settings,
        catalog=catalog,
        runtime=runtime,
        media=MediaIngestor(settings, fetcher),
        artifacts=ArtifactStore(settings.data_dir / "artifacts", default_ttl_s=settings.artifact_ttl_s),
        signer=UrlSigner.from_settings(settings),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        janitor = asyncio.create_task(_cleanup_loop(state))
        try:
            yield
        finally:
            janitor.cancel()
            await runtime.stop()
            await state.media.aclose()

    # The body cap (declared and streamed) is ContentLengthLimit's, so a 413 keeps the error envelope.
    app = FastAPI(title="mmserve", version=__version__, lifespan=lifespan)
    app.state.mm = state
    install_handlers(app)
    app.add_middleware(ContentLengthLimit, max_bytes=settings.limits.max_request_bytes)
    for router in (health_router, models_router, chat_router, artifacts_router):
        app.include_router(router)
    return app


async def _cleanup_loop(state: AppState) -> None:
    """Remove expired artifacts now and then, off the event loop."""
    while True:
        try:
            removed = await asyncio.to_thread(state.artifacts.cleanup_expired)
            if removed:
                log.info("removed %d expired artifact(s)", removed)
        except Exception:  # the janitor must never die
            log.exception("artifact cleanup failed")
        await asyncio.sleep(CLEANUP_INTERVAL_S)
