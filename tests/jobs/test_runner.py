"""The job runner on the real tiny Wan engine: concurrency, recovery, cancellation, failures, expiry."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import update

from mmserve.cards import ModelCard
from mmserve.catalog.builders import build_demo_model
from mmserve.catalog.builders.video import build_tiny_wan
from mmserve.catalog.catalog import Catalog
from mmserve.db import Database
from mmserve.jobs.runner import JobRunner
from mmserve.jobs.store import VideoJob, VideoJobRow, VideoJobStore
from mmserve.jobs.worker import WorkerId
from mmserve.media.video.encode import probe
from mmserve.runtime.runtime import Runtime
from mmserve.settings import JobSettings, Settings
from mmserve.storage.artifacts import ArtifactStore
from tests.jobs.conftest import make_job


@pytest.fixture(scope="module")
def sources(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    broken = tmp_path_factory.mktemp("broken-wan")
    build_tiny_wan(broken, rope_max_seq_len=2)  # fails inside the model beyond 2 latent frames
    return {"ok": build_demo_model("video", models_dir), "broken": broken}


# long enough (a few seconds, 60 steps) to be seen running, cancelled and interrupted
SLOW = {"width": 128, "height": 96, "num_frames": 16, "seconds": 2.0}


def _card(cid: str, source: Path, steps: int = 2, concurrency: int = 1) -> ModelCard:
    return ModelCard(
        id=cid,
        task="video-generation",
        engine="diffusers-video",
        source=str(source),
        options={"steps": steps, "guidance_scale": 1.0},
        deployment={"max_concurrency": concurrency},
    )


class Harness:
    def __init__(self, runner: JobRunner, artifacts: ArtifactStore) -> None:
        self.runner = runner
        self.store = runner.store
        self.artifacts = artifacts

    async def submit(self, model: str = "tiny", **kw: object) -> VideoJob:
        job = await self.store.create(make_job(model=model, **kw))
        self.runner.notify()
        return job

    async def job(self, job_id: str) -> VideoJob | None:
        return await self.store.get(job_id, owner=None)

    async def wait(self, cond: Callable[[], object], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = cond()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("condition not met")

    async def finished(self, job_id: str) -> VideoJob:
        async def done() -> bool:
            j = await self.job(job_id)
            return j is not None and j.terminal

        await self.wait(done)
        job = await self.job(job_id)
        assert job is not None
        return job

    def files(self) -> list[Path]:
        return [p for p in self.artifacts.root.glob("*/art_*") if p.suffix != ".json"]


@pytest_asyncio.fixture(loop_scope="function")
async def make_harness(
    tmp_path: Path, sources: dict[str, Path]
) -> AsyncIterator[Callable[..., AsyncIterator[Harness]]]:
    made: list[tuple[JobRunner, Runtime, Database]] = []

    async def make(db_name: str = "jobs.db", start: bool = True, **job_settings: object) -> Harness:
        settings = Settings(
            data_dir=tmp_path,
            jobs=JobSettings(progress_interval_s=0.1, dispatch_interval_s=0.2, **job_settings),  # type: ignore[arg-type]
        )
        cards = [
            _card("tiny", sources["ok"]),
            _card("slow", sources["ok"], steps=60),
            _card("broken", sources["broken"]),
        ]
        runtime = Runtime(Catalog(cards, base_dir=tmp_path), settings)
        db = Database(f"sqlite:///{tmp_path / db_name}")
        await db.upgrade()
        artifacts = ArtifactStore(tmp_path / "artifacts")
        runner = JobRunner(VideoJobStore(db), runtime, artifacts, settings)
        made.append((runner, runtime, db))
        if start:
            await runner.start()
        return Harness(runner, artifacts)

    yield make  # type: ignore[misc]
    for runner, runtime, db in made:
        await runner.stop()
        await runtime.stop()
        await db.dispose()


async def test_jobs_complete_one_at_a_time_with_files_and_hooks(make_harness: Callable) -> None:
    h: Harness = await make_harness()
    completed: list[VideoJob] = []
    h.runner.on_completed.append(completed.append)
    jobs = [await h.submit(num_frames=8, fps=8, seconds=1.0) for _ in range(3)]
    most = 0
    while not all(j is not None and j.terminal for j in [await h.job(x.id) for x in jobs]):
        most = max(most, h.runner.running("tiny"))
        await asyncio.sleep(0.02)
    assert most == 1  # deployment.max_concurrency
    for j in jobs:
        done = await h.job(j.id)
        assert done and done.status == "completed" and done.progress == 100 and done.video_seconds == 1.0
        assert done.timings and done.timings["engine_s"] > 0 and done.expires_at
        _, path = h.artifacts.get(done.video_artifact or "")
        info = probe(path)
        assert (info.frames, info.width, info.height, info.fps) == (8, 64, 48, 8.0)
    assert sorted(c.id for c in completed) == sorted(j.id for j in jobs)
    assert all(c.video_seconds == 1.0 and c.model == "tiny" for c in completed)


async def test_progress_is_recorded_while_running(make_harness: Callable) -> None:
    h: Harness = await make_harness()
    job = await h.submit(model="slow", **SLOW)
    seen: set[int] = set()
    while not (current := await h.job(job.id)) or not current.terminal:
        if current and current.status == "in_progress":
            seen.add(current.progress)
        await asyncio.sleep(0.05)
    assert current.status == "completed"
    assert len({p for p in seen if 0 < p < 100}) >= 2, seen


async def test_a_job_interrupted_by_a_dead_server_runs_again(make_harness: Callable) -> None:
    h: Harness = await make_harness(start=False)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = str(WorkerId(WorkerId.current().host, proc.pid, "gone"))
    job = await h.store.create(make_job(model="tiny"))
    assert await h.store.claim(job.id, dead)  # it was running when its server died
    assert await h.store.start(job.id, dead)
    await h.runner.start()
    done = await h.finished(job.id)
    assert done.status == "completed" and done.attempts == 2


async def test_a_job_whose_server_died_before_it_started_keeps_its_attempts(make_harness: Callable) -> None:
    # killed within milliseconds of the claim, before the model ever ran: that is no attempt
    # (it used to spend one, so with max_attempts 1 the job failed as "interrupted")
    h: Harness = await make_harness(start=False, max_attempts=1)
    dead = str(WorkerId(WorkerId.current().host, WorkerId.current().pid, "an-earlier-start"))
    job = await h.store.create(make_job(model="tiny"))
    claimed = await h.store.claim(job.id, dead)
    assert claimed is not None and claimed.attempts == 0
    await h.runner.start()
    done = await h.finished(job.id)
    assert done.status == "completed" and done.attempts == 1


async def test_a_job_interrupted_too_often_fails_with_a_reason(make_harness: Callable) -> None:
    h: Harness = await make_harness(start=False, max_attempts=2)
    dead = str(WorkerId(WorkerId.current().host, WorkerId.current().pid, "an-earlier-start"))
    job = await h.store.create(make_job(model="tiny", reference_artifact=None))
    await h.store.claim(job.id, dead)
    await h.store.start(job.id, dead)
    await h.store.requeue(job.id, dead)
    await h.store.claim(job.id, dead)
    await h.store.start(job.id, dead)  # second start, also interrupted
    await h.runner.start()
    failed = await h.finished(job.id)
    assert failed.status == "failed" and failed.error_code == "interrupted"
    assert "stopped while generating" in (failed.error_message or "")


async def test_a_run_whose_end_could_not_be_recorded_runs_again(
    make_harness: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the database is unreachable as the job completes: the job must not stay in_progress for good
    h: Harness = await make_harness(stale_after_s=1)
    complete, calls = h.store.complete, []

    async def flaky_complete(*args: object, **kwargs: object) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("database unreachable")
        return await complete(*args, **kwargs)  # type: ignore[arg-type]

    async def unreachable(*args: object, **kwargs: object) -> bool:
        raise OSError("database unreachable")

    monkeypatch.setattr(h.store, "complete", flaky_complete)
    monkeypatch.setattr(h.store, "fail", unreachable)
    job = await h.submit()
    done = await h.finished(job.id)
    assert done.status == "completed" and done.attempts == 2 and len(calls) == 2
    assert len(h.files()) == 3  # the first run's files were removed, not left behind


async def test_a_stale_heartbeat_from_another_host_is_taken_over(make_harness: Callable) -> None:
    h: Harness = await make_harness(start=False, stale_after_s=5)
    job = await h.store.create(make_job(model="tiny"))
    await h.store.claim(job.id, "another-host/1/abc")
    async with h.store.db.session() as s, s.begin():
        await s.execute(update(VideoJobRow).where(VideoJobRow.id == job.id).values(heartbeat_at=time.time() - 60))
    fresh = await h.store.create(make_job(model="tiny"))
    await h.store.claim(fresh.id, "another-host/2/def")  # alive over there: left alone
    await h.runner.start()
    assert (await h.finished(job.id)).status == "completed"
    still = await h.job(fresh.id)
    assert still and still.status == "in_progress" and still.worker_id == "another-host/2/def"


async def test_deleting_a_running_job_stops_it_and_leaves_no_files(make_harness: Callable) -> None:
    h: Harness = await make_harness()
    job = await h.submit(model="slow", **SLOW)

    async def running() -> bool:
        j = await h.job(job.id)
        return j is not None and j.progress > 0

    await h.wait(running)
    gone = await h.store.delete(job.id, owner=None)
    assert gone is not None and h.runner.cancel(job.id)
    started = time.monotonic()
    await h.wait(lambda: h.runner.running("slow") == 0)
    assert time.monotonic() - started < 5  # stopped at the next step, not after 60
    assert h.files() == [] and await h.job(job.id) is None


async def test_a_model_failure_is_recorded_with_a_code_and_no_traceback(make_harness: Callable) -> None:
    h: Harness = await make_harness()
    job = await h.submit(model="broken", num_frames=16, fps=8, seconds=2.0)
    failed = await h.finished(job.id)
    assert failed.status == "failed" and failed.error_code == "engine_error"
    message = failed.error_message or ""
    assert "server log" in message and "Traceback" not in message and "RuntimeError" not in message
    assert failed.expires_at is not None


async def test_shutdown_requeues_running_jobs_without_counting_the_attempt(make_harness: Callable) -> None:
    h: Harness = await make_harness()
    job = await h.submit(model="slow", **SLOW)

    async def running() -> bool:
        j = await h.job(job.id)
        return j is not None and j.progress > 0

    await h.wait(running)
    await h.runner.stop()
    back = await h.job(job.id)
    assert back and back.status == "queued" and back.attempts == 0 and back.worker_id is None
    assert h.files() == []


async def test_expired_jobs_and_their_files_are_removed(make_harness: Callable) -> None:
    h: Harness = await make_harness(result_ttl_s=60)
    job = await h.submit()
    done = await h.finished(job.id)
    assert done.status == "completed" and len(h.files()) == 3 and done.expires_at
    assert await h.runner.cleanup_expired(now=time.time()) == 0
    assert await h.runner.cleanup_expired(now=done.expires_at + 1) == 1
    assert await h.job(job.id) is None and h.files() == []


async def test_encodes_left_behind_by_a_dead_server_are_removed(make_harness: Callable) -> None:
    h: Harness = await make_harness()
    tmp = h.runner.tmp_dir
    tmp.mkdir(parents=True, exist_ok=True)
    left, fresh = tmp / "video_0123-ab12.mp4", tmp / "video_4567-cd34.mp4"
    left.write_bytes(b"half an mp4")
    fresh.write_bytes(b"being encoded now")
    old = time.time() - 2 * 3600
    os.utime(left, (old, old))
    await h.runner.cleanup_expired()
    assert not left.exists() and fresh.exists()


async def test_jobs_nobody_runs_fail_after_max_queued_s(make_harness: Callable) -> None:
    h: Harness = await make_harness(max_queued_s=30)
    job = await h.store.create(make_job(model="no-longer-served", created_at=time.time() - 31))
    waiting = await h.store.create(make_job(model="no-longer-served"))
    await h.runner.cleanup_expired()
    failed = await h.job(job.id)
    assert failed and failed.status == "failed" and failed.error_code == "queue_timeout" and failed.expires_at
    assert (await h.job(waiting.id)).status == "queued"  # type: ignore[union-attr]
