"""The video job runner: takes queued jobs from the store and runs them on the runtime's deployments.

- **Bounded concurrency per model**: at most ``deployment.max_concurrency * replicas`` (default 4) jobs of
  a model run at once in this process; the rest wait in the store (the queue is durable).
- **Dispatch**: woken when a job is submitted, and every ``jobs.dispatch_interval_s`` to pick
  up work it was not told about (submitted through another server, or recovered).
- **Progress**: the engine's step callback updates an in-memory fraction; a monitor writes
  it with a heartbeat every ``jobs.progress_interval_s``. Denoising maps to 0-90 %,
  encoding to 95 %, completion to 100 %.
- **Cancellation** (DELETE, or the row vanishing under us): a flag the step callback checks;
  the engine stops at the next step and the files made so far are removed.
- **Failures** are recorded as ``(code, message)``; the traceback goes to the log only.
- **Restart recovery**: on start (and periodically), jobs left ``in_progress`` by a runner
  that is dead (see :mod:`mmserve.jobs.worker`) are **re-run from the start** with their
  stored seed, until ``jobs.max_attempts`` starts; after that they fail with code
  ``interrupted``. An attempt is counted when the model starts on the job, not when a
  runner claims it: a server killed between the two (milliseconds after a submission)
  costs the job nothing. Re-running is safe because a run has no side effect until its files are
  stored atomically and the job is completed in one compare-and-set; it is right because a
  video pipeline cannot resume mid-denoising and the same seed gives the same video. The
  bound stops a job that itself kills the server (out of memory) from crash-looping it.
  Queued jobs simply run. A graceful shutdown stops generations at their next step and
  requeues them without counting the attempt (a job already encoding finishes first).
- **Resuming remote work**: an engine whose work lives elsewhere (an upstream provider's job)
  keeps what it needs to resume in the job's ``params`` through the ``checkpoint`` callback
  (a row update, before it goes on); a re-run gets it back in ``VideoGenInput.resume`` and
  polls the same remote job rather than submitting (and paying for) another.
- **Expiry** (:mod:`mmserve.jobs.expiry`): finished jobs and their files are removed after ``jobs.result_ttl_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mmserve.engines.base import VideoEngine
from mmserve.engines.types import VideoGenInput
from mmserve.errors import EngineUnavailableError, MMServeError
from mmserve.jobs.expiry import JobExpiry
from mmserve.jobs.fallback import ENGINE_STATE, fall_back
from mmserve.jobs.outputs import StoredOutputs, delete_artifacts, describe_failure, store_outputs
from mmserve.jobs.store import VideoJob, VideoJobStore
from mmserve.jobs.worker import WorkerId, is_dead
from mmserve.runtime.runtime import Runtime
from mmserve.settings import Settings
from mmserve.storage.artifacts import ArtifactStore

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger("mmserve.jobs")

CompletedHook = Callable[[VideoJob], Awaitable[None] | None]


class JobCancelled(Exception):
    """Raised from the progress callback to stop a generation at its next step."""


@dataclass
class _Run:
    job: VideoJob
    cancel: threading.Event = field(default_factory=threading.Event)
    fraction: float = 0.0
    phase: str = "starting"  # starting | generating | encoding
    shutdown: bool = False  # stopped by the server's shutdown: requeue, don't fail
    started: bool = False  # the model started on it: the attempt is counted in the store
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # ends the monitor

    def on_progress(self, fraction: float) -> None:  # called from the engine's thread
        self.fraction = fraction
        if self.cancel.is_set():
            raise JobCancelled()

    def check_deleted(self) -> None:
        """After generation, only a deletion stops the job: a shutdown lets it finish (encoding is short)."""
        if self.cancel.is_set() and not self.shutdown:
            raise JobCancelled()

    @property
    def percent(self) -> int:
        if self.phase == "encoding":
            return 95
        return max(0, min(90, int(self.fraction * 90)))


class JobRunner:
    def __init__(self, store: VideoJobStore, runtime: Runtime, artifacts: ArtifactStore, settings: Settings) -> None:
        self.store = store
        self.runtime = runtime
        self.catalog = runtime.catalog
        self.artifacts = artifacts
        self.cfg = settings.jobs
        self.ttl_s = self.cfg.result_ttl_s or settings.artifact_ttl_s
        self.tmp_dir = settings.data_dir / "tmp"
        self.worker = WorkerId.current()
        #: Called with each job as it completes (metering hooks in here).
        self.on_completed: list[CompletedHook] = []
        self._runs: dict[str, _Run] = {}
        self._active: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self.expiry = JobExpiry(store, artifacts, settings, running=self._runs.keys())

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.recover()
        self._loops = [asyncio.create_task(self._dispatch_loop()), asyncio.create_task(self.expiry.run(self._closing))]

    async def stop(self) -> None:
        # Loops and monitors end at their next wait, never inside a database call: a task
        # cancelled mid-query leaves SQLAlchemy a connection to tear down while the pool closes.
        self._closing.set()
        self._wake.set()
        if self._loops:
            _, stuck = await asyncio.wait(self._loops, timeout=10)
            for task in stuck:
                task.cancel()
        for run in self._runs.values():
            run.shutdown = True
            run.cancel.set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.cfg.shutdown_grace_s)
            for task in pending:  # a step longer than the grace: left in_progress, recovered at next start
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)

    def notify(self) -> None:
        """A job was queued: dispatch now rather than at the next interval."""
        self._wake.set()

    def cancel(self, job_id: str) -> bool:
        """Stop the job if it runs here (its row is already gone or going)."""
        run = self._runs.get(job_id)
        if run is None:
            return False
        run.cancel.set()
        return True

    def running(self, model: str) -> int:
        return self._active[model]

    # ------------------------------------------------------------------ recovery

    async def recover(self) -> None:
        """Take over jobs whose runner died (requeue them, or fail them after ``max_attempts`` starts).

        Jobs this runner claimed but no longer runs are taken over too: a run whose end could not
        be recorded (the database was briefly unreachable) would otherwise stay in_progress for
        as long as this server lives.
        """
        now = time.time()
        me = str(self.worker)
        for job in await self.store.in_progress():
            if job.worker_id == me:
                if job.id in self._runs:
                    continue
            else:
                stale = job.heartbeat_at is None or now - job.heartbeat_at > self.cfg.stale_after_s
                if not (stale or is_dead(job.worker_id, self.worker)):
                    continue
            assert job.worker_id is not None
            if job.attempts >= self.cfg.max_attempts:
                message = (
                    f"The server stopped while generating this video ({job.attempts} "
                    f"time{'s' if job.attempts > 1 else ''}); it was not retried again. Submit it again."
                )
                if await self.store.fail(
                    job.id, job.worker_id, code="interrupted", message=message, expires_at=now + self.ttl_s
                ):
                    log.warning("job %s failed: interrupted %d times", job.id, job.attempts)
                    await self._delete_files([job.reference_artifact] if job.reference_artifact else [])
            elif await self.store.requeue(job.id, job.worker_id):
                log.warning("job %s was interrupted (runner %s gone); queued to run again", job.id, job.worker_id)

    # ------------------------------------------------------------------ dispatch

    async def _dispatch_loop(self) -> None:
        last_recovery = time.monotonic()
        while not self._closing.is_set():
            self._wake.clear()
            try:
                if time.monotonic() - last_recovery >= self.cfg.stale_after_s / 2:
                    last_recovery = time.monotonic()
                    await self.recover()
                await self._dispatch()
            except Exception:  # e.g. the database is briefly unreachable: try again later
                log.exception("job dispatch failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.cfg.dispatch_interval_s)

    async def _dispatch(self) -> None:
        for card in self.catalog.filter(task="video-generation"):
            free = card.deployment.concurrency() * card.deployment.replicas - self._active[card.id]
            if free <= 0:
                continue
            for job_id in await self.store.next_queued(card.id, free):
                job = await self.store.claim(job_id, str(self.worker))
                if job is not None:
                    self._start(job)

    def _start(self, job: VideoJob) -> None:
        run = _Run(job)
        self._runs[job.id] = run
        self._active[job.model] += 1
        task = asyncio.create_task(self._execute(run), name=f"job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ one job

    async def _execute(self, run: _Run) -> None:
        job = run.job
        monitor = asyncio.create_task(self._monitor(run), name=f"monitor-{job.id}")
        try:
            await self._run(run)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.store.requeue(job.id, str(self.worker), refund_attempt=run.started))
            raise
        except BaseException as exc:
            try:
                await self._settle(run, exc)
            except Exception:  # the database is unreachable: the job stays ours until recovery re-runs it
                log.exception("could not record the end of job %s", job.id)
        finally:
            run.finished.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(monitor), timeout=15)
            self._runs.pop(job.id, None)
            self._active[job.model] -= 1
            self._wake.set()

    async def _run(self, run: _Run) -> None:
        job = run.job
        card = self.catalog.cards.get(job.model)
        if card is None:
            raise EngineUnavailableError(f"The model '{job.model}' is no longer served by this server.")
        image = await self._reference_image(job)
        request = VideoGenInput(
            prompt=job.prompt,
            width=job.width,
            height=job.height,
            num_frames=job.num_frames,
            fps=job.fps,
            negative_prompt=job.params.get("negative_prompt"),
            seed=job.seed,
            image=image,
            resume=dict(job.params.get(ENGINE_STATE) or {}),
        )

        async def checkpoint(state: dict[str, Any]) -> None:
            """Keep the engine's resume state (a provider's job id) with the job before it goes on."""
            params = {**job.params, ENGINE_STATE: state}
            if not await self.store.save_params(job.id, str(self.worker), params):
                raise JobCancelled()  # deleted or taken over meanwhile
            job.params = params

        claimed = time.perf_counter()
        while True:
            try:
                async with self.runtime.deployment(card).acquire() as engine:
                    assert isinstance(engine, VideoEngine)
                    # the attempt counts from here: a server killed before (just after the claim) cost nothing
                    if not run.started and not await self.store.start(job.id, str(self.worker)):
                        run.cancel.set()  # deleted (or taken over) while waiting for the model
                        raise JobCancelled()
                    run.started = True
                    run.phase = "generating"
                    started = time.perf_counter()
                    output = await engine.generate(request, progress=run.on_progress, checkpoint=checkpoint)
                break
            except Exception as e:  # its model failed before starting it: the route's next one, if any
                moved = fall_back(job.params, e, set(self.catalog.cards)) if not run.cancel.is_set() else None
                if moved is None:
                    raise
                log.warning("job %s: '%s' failed (%s); moving it to '%s'", job.id, card.id, e, moved[0])
                if not await self.store.rebind(job.id, str(self.worker), model=moved[0], params=moved[1]):
                    raise JobCancelled() from e  # deleted or taken over meanwhile
                job.model, job.params = moved
                card = self.catalog.cards[job.model]
        run.check_deleted()
        run.phase = "encoding"
        encoded = time.perf_counter()
        stored: StoredOutputs = await asyncio.to_thread(
            store_outputs, job, output.frames, artifacts=self.artifacts, tmp_dir=self.tmp_dir, ttl_s=self.ttl_s
        )
        timings = {
            "queued_s": max(0.0, (job.started_at or job.created_at) - job.created_at),
            "load_wait_s": started - claimed,
            "engine_s": encoded - started,
            "encode_s": time.perf_counter() - encoded,
        }
        if run.cancel.is_set() and not run.shutdown:
            await self._delete_files(stored.ids)
            raise JobCancelled()
        try:
            completed = await self.store.complete(
                job.id,
                str(self.worker),
                video=stored.video,
                thumbnail=stored.thumbnail,
                spritesheet=stored.spritesheet,
                video_seconds=stored.video_seconds,
                timings=timings,
                expires_at=stored.expires_at,
            )
        except BaseException:  # not recorded: the job runs again (see recover), these files are nobody's
            await asyncio.shield(self._delete_files(stored.ids))
            raise
        if not completed:  # deleted (or taken over) while we worked: nobody will ever serve these
            await self._delete_files(stored.ids)
            return
        # the reference image stays with the completed job (a remix reuses it) and goes with its files
        done = replace(job, status="completed", progress=100, video_seconds=stored.video_seconds, timings=timings)
        log.info("job %s completed: %s", job.id, {k: round(v, 3) for k, v in timings.items()})
        await self._fire_completed(done)

    async def _settle(self, run: _Run, exc: BaseException) -> None:
        job, worker = run.job, str(self.worker)
        if run.shutdown:
            await self.store.requeue(job.id, worker, refund_attempt=run.started)
            return
        if run.cancel.is_set():
            log.info("job %s cancelled", job.id)
            return
        code, message = describe_failure(exc)
        expected = isinstance(exc, MMServeError) and exc.public  # a clear condition, not a bug: no traceback
        log.error("job %s failed (%s): %s", job.id, code, exc, exc_info=None if expected else exc)
        if await self.store.fail(job.id, worker, code=code, message=message, expires_at=time.time() + self.ttl_s):
            await self._delete_files([job.reference_artifact] if job.reference_artifact else [])

    async def _monitor(self, run: _Run) -> None:
        """Write progress + heartbeat; cancel the run when its row is gone or no longer ours."""
        while not run.finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.finished.wait(), self.cfg.progress_interval_s)
                return
            try:
                ours = await self.store.heartbeat(run.job.id, str(self.worker), run.percent)
            except Exception:
                log.warning("could not record progress of job %s", run.job.id, exc_info=True)
                continue
            if not ours:
                run.cancel.set()
                return

    async def _reference_image(self, job: VideoJob) -> Image | None:
        if not job.reference_artifact:
            return None

        def load() -> Image:
            from PIL import Image as PILImage

            _, path = self.artifacts.get(job.reference_artifact or "")
            with PILImage.open(path) as img:
                return img.convert("RGB")

        try:
            return await asyncio.to_thread(load)
        except Exception:
            raise EngineUnavailableError(
                "The reference image of this job is no longer stored; submit the job again.",
                code="reference_missing",
            ) from None

    async def _fire_completed(self, job: VideoJob) -> None:
        for hook in self.on_completed:
            try:
                result = hook(job)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("completion hook failed for job %s", job.id)

    async def _delete_files(self, ids: list[str]) -> None:
        if ids:
            await asyncio.to_thread(delete_artifacts, self.artifacts, ids)

    async def cleanup_expired(self, now: float | None = None) -> int:
        """Remove finished jobs past their expiry and their files; fail jobs queued too long. Returns removals."""
        return await self.expiry.cleanup(now)
