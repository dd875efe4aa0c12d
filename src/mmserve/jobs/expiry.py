"""Expiry of video jobs: finished jobs past their time and their files, jobs queued too long, stale encodes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection

from mmserve.jobs.outputs import delete_artifacts
from mmserve.jobs.store import VideoJobStore
from mmserve.settings import Settings
from mmserve.storage.artifacts import ArtifactStore

log = logging.getLogger("mmserve.jobs")
STALE_TMP_S = 3600  # an encode's temporary file older than this was left behind by a dead server


class JobExpiry:
    def __init__(
        self, store: VideoJobStore, artifacts: ArtifactStore, settings: Settings, *, running: Collection[str]
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.cfg = settings.jobs
        self.ttl_s = self.cfg.result_ttl_s or settings.artifact_ttl_s
        self.tmp_dir = settings.data_dir / "tmp"
        self._running = running  # ids of the jobs this process runs (a live view)

    async def cleanup(self, now: float | None = None) -> int:
        """Remove finished jobs past their expiry and their files; fail jobs queued too long. Returns removals.

        A job stays queued while no server of this database serves its model (several servers
        with different catalogs may share one database, so no single one may fail it sooner).
        """
        now = time.time() if now is None else now
        stuck = await self.store.fail_queued_before(
            now - self.cfg.max_queued_s,
            code="queue_timeout",
            message=f"No server ran this job within {self.cfg.max_queued_s:g} seconds "
            "(is its model still served?). Submit it again.",
            expires_at=now + self.ttl_s,
        )
        await self._delete([j.reference_artifact for j in stuck if j.reference_artifact])
        expired = await self.store.pop_expired(now)
        for job in expired:
            await self._delete(job.artifacts)
        await asyncio.to_thread(self._remove_stale_tmp, now)
        return len(expired)

    async def run(self, closing: asyncio.Event) -> None:
        """Clean up every ``jobs.cleanup_interval_s`` until ``closing`` is set."""
        while not closing.is_set():
            try:
                if removed := await self.cleanup():
                    log.info("removed %d expired video job(s)", removed)
            except Exception:
                log.exception("expired job cleanup failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), self.cfg.cleanup_interval_s)

    async def _delete(self, ids: list[str]) -> None:
        if ids:
            await asyncio.to_thread(delete_artifacts, self.artifacts, ids)

    def _remove_stale_tmp(self, now: float) -> None:
        """Encodes that a crash (or kill) cut short leave ``<job id>-*.mp4`` in the tmp folder: remove them."""
        for path in self.tmp_dir.glob("video_*"):
            if path.name.split("-", 1)[0] in self._running:
                continue  # still encoding here
            with contextlib.suppress(OSError):  # gone already, or not ours to remove
                if now - path.stat().st_mtime > STALE_TMP_S:
                    path.unlink()
