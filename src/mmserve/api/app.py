"""create_app(): the FastAPI application with every endpoint family, error handler and limit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Scope

from mmserve import __version__
from mmserve.api.admin.router import router as admin_router
from mmserve.api.artifacts.router import router as artifacts_router
from mmserve.api.body_limit import BodyLimit
from mmserve.api.chat.router import router as chat_router
from mmserve.api.completions.router import router as completions_router
from mmserve.api.console.mount import PREFIX as CONSOLE_PREFIX
from mmserve.api.console.mount import mount_console
from mmserve.api.embeddings.router import router as embeddings_router
from mmserve.api.errors import install_handlers
from mmserve.api.health.router import router as health_router
from mmserve.api.images.router import router as images_router
from mmserve.api.metrics.middleware import MetricsMiddleware
from mmserve.api.metrics.router import router as metrics_router
from mmserve.api.models.router import router as models_router
from mmserve.api.openapi import install_openapi
from mmserve.api.path_aliases import PathAliases
from mmserve.api.responses.router import router as responses_router
from mmserve.api.responses.store import ResponseStore
from mmserve.api.speech.router import router as speech_router
from mmserve.api.state import AppState
from mmserve.api.transcriptions.router import router as transcriptions_router
from mmserve.api.usage.router import router as usage_router
from mmserve.api.videos.metering import meter_video
from mmserve.api.videos.router import router as videos_router
from mmserve.catalog.catalog import Catalog
from mmserve.catalog.loader import load_catalog
from mmserve.control.auth import Authenticator, AuthMiddleware
from mmserve.control.context import RequestContextMiddleware
from mmserve.control.keys import KeyStore
from mmserve.control.metering import Meter
from mmserve.control.ratelimit import Limiter, RateLimiter
from mmserve.control.redis_limits import RedisRateLimiter
from mmserve.control.redis_state import RedisState
from mmserve.control.routing import ModelRouter
from mmserve.control.usage import UsageRecorder
from mmserve.db import Database
from mmserve.engines.base import EngineContext
from mmserve.jobs.runner import JobRunner
from mmserve.jobs.store import VideoJobStore
from mmserve.media.audio.ingest import AudioIngestor
from mmserve.media.image.ingest import MediaIngestor
from mmserve.media.net.fetch import SafeFetcher
from mmserve.metrics import Metrics
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
    metrics = Metrics()
    media = MediaIngestor(settings, fetcher)
    runtime = Runtime(catalog, settings, progress=progress, metrics=metrics, context=EngineContext(media=media))
    db = Database.from_settings(settings)
    keys = KeyStore(db, cache_ttl_s=settings.key_cache_ttl_s)
    redis = RedisState(settings.redis_url, prefix=settings.redis_prefix) if settings.redis_url else None
    limiter: Limiter = RedisRateLimiter(redis) if redis else RateLimiter()
    recorder = UsageRecorder(
        db,
        flush_interval_s=settings.usage_flush_interval_s,
        journal_dir=settings.data_dir / "usage-journal" if settings.usage_journal else None,
    )
    artifacts = ArtifactStore(
        settings.artifacts_dir or settings.data_dir / "artifacts", default_ttl_s=settings.artifact_ttl_s
    )
    state = AppState(
        settings=settings,
        catalog=catalog,
        runtime=runtime,
        media=media,
        artifacts=artifacts,
        signer=UrlSigner.from_settings(settings),
        metrics=metrics,
        db=db,
        keys=keys,
        usage=recorder,
        meter=Meter(recorder, metrics, limiter),
        router=ModelRouter(catalog, runtime, cooldown_s=settings.route_cooldown_s),
        audio=AudioIngestor(settings),
        jobs=JobRunner(VideoJobStore(db), runtime, artifacts, settings),
    )
    state.meter.on_latency.append(state.router.observe)
    if redis is not None:  # what one gateway learns, every gateway knows
        keys.on_revoke.append(redis.publish_revoked)
        redis.on_revoked.append(keys.forget)
        redis.on_resync.append(keys.clear_cache)
        state.router.on_failure.append(redis.report_cooldown)
        redis.on_cooldown.append(state.router.cool_down)
    state.jobs.on_completed.append(lambda job: meter_video(state, job))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await db.upgrade()
        if redis is not None:
            await redis.start()
        await recorder.start()
        await state.jobs.start()  # recovers jobs a previous run left behind, then dispatches
        # last, and in the background: the loads' threads would slow the steps above (the GIL), and
        # the server answers /health while they run (/ready once they are done)
        await runtime.start(background=True)
        janitor = asyncio.create_task(_cleanup_loop(state))
        try:
            yield
        finally:
            janitor.cancel()
            await state.jobs.stop()  # running jobs stop at their next step and are requeued
            await runtime.stop()
            await recorder.stop()  # flush: no accepted request's usage is lost
            if redis is not None:
                if isinstance(limiter, RedisRateLimiter):
                    await limiter.drain()
                await redis.stop()
            await db.dispose()
            await state.media.aclose()

    app = FastAPI(title="mmserve", version=__version__, lifespan=lifespan)
    app.state.mm = state
    install_handlers(app)
    docs = (app.docs_url, app.redoc_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url)
    authenticator = Authenticator(
        settings, keys, limiter, open_paths=[p for p in docs if p], open_prefixes=[CONSOLE_PREFIX]
    )  # the console's static files hold no data; its API calls carry the key
    install_openapi(app, keys_required=settings.auth, open_paths=authenticator.is_open)
    limits = settings.limits
    app.add_middleware(
        BodyLimit,
        max_bytes=limits.max_request_bytes,
        timeout_s=limits.body_timeout_s,
        idle_timeout_s=limits.body_idle_timeout_s,
    )
    app.add_middleware(AuthMiddleware, authenticator=authenticator)  # before any body is read
    app.add_middleware(MetricsMiddleware, metrics=metrics, route_of=_route_template)
    app.add_middleware(RequestContextMiddleware)  # every layer below sees the request context
    app.add_middleware(PathAliases)  # outermost: provider base URLs (/v1/openai/...) are /v1/... for all
    # FastAPI tries the routers in this order for every request (a regex per route): the inference
    # surfaces first, the busiest first; probes, metrics and the control plane after them
    for router in (
        chat_router,
        responses_router,
        completions_router,
        embeddings_router,
        images_router,
        speech_router,
        transcriptions_router,
        videos_router,
        artifacts_router,
        models_router,
        usage_router,
        health_router,
        metrics_router,
        admin_router,
    ):
        app.include_router(router)
    mount_console(app)
    return app


async def _cleanup_loop(state: AppState) -> None:
    """Remove expired artifacts (off the event loop) and expired stored responses now and then."""
    responses = ResponseStore(state.db, ttl_s=state.settings.responses_ttl_s)
    while True:
        try:
            removed = await asyncio.to_thread(state.artifacts.cleanup_expired)
            if removed:
                log.info("removed %d expired artifact(s)", removed)
            removed = await responses.cleanup_expired()
            if removed:
                log.info("removed %d expired stored response(s)", removed)
        except Exception:  # the janitor must never die
            log.exception("cleanup failed")
        await asyncio.sleep(CLEANUP_INTERVAL_S)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))
