"""The job store's compare-and-set transitions, cursor pages, owners and expiry."""

from __future__ import annotations

import time

from mmserve.jobs.store import VideoJobStore
from tests.jobs.conftest import make_job


async def test_create_and_get_round_trip(store: VideoJobStore) -> None:
    job = await store.create(make_job(params={"negative_prompt": "blur"}))
    got = await store.get(job.id, owner=None)
    assert got is not None and got.status == "queued" and got.progress == 0 and got.attempts == 0
    assert got.params == {"negative_prompt": "blur"} and got.seq > 0 and got.created_at > 0
    assert await store.get("video_nope", owner=None) is None


async def test_only_one_runner_claims_a_job(store: VideoJobStore) -> None:
    job = await store.create(make_job())
    first = await store.claim(job.id, "a")
    second = await store.claim(job.id, "b")
    assert first is not None and first.status == "in_progress" and first.worker_id == "a" and first.attempts == 0
    assert second is None
    assert not await store.heartbeat(job.id, "b", 50)  # not b's job
    assert await store.heartbeat(job.id, "a", 50)
    assert (await store.get(job.id, owner=None)).progress == 50  # type: ignore[union-attr]


async def test_a_deleted_job_cannot_complete(store: VideoJobStore) -> None:
    job = await store.create(make_job())
    await store.claim(job.id, "a")
    gone = await store.delete(job.id, owner=None)
    assert gone is not None and gone.id == job.id
    assert not await store.heartbeat(job.id, "a", 10)
    done = await store.complete(
        job.id, "a", video="art_x", thumbnail=None, spritesheet=None, video_seconds=1, timings={}, expires_at=None
    )
    assert not done
    assert await store.delete(job.id, owner=None) is None


async def test_complete_fail_and_requeue(store: VideoJobStore) -> None:
    a = await store.create(make_job())
    b = await store.create(make_job())
    c = await store.create(make_job())
    for j in (a, b, c):
        await store.claim(j.id, "w")
    assert await store.complete(
        a.id,
        "w",
        video="art_v",
        thumbnail="art_t",
        spritesheet="art_s",
        video_seconds=1.0,
        timings={"engine_s": 1.0},
        expires_at=time.time() + 60,
    )
    done = await store.get(a.id, owner=None)
    assert done and done.status == "completed" and done.progress == 100 and done.video_seconds == 1.0
    assert done.artifacts == ["art_v", "art_t", "art_s"] and done.timings == {"engine_s": 1.0}
    assert await store.fail(b.id, "w", code="engine_error", message="m", expires_at=None)
    failed = await store.get(b.id, owner=None)
    assert failed and failed.status == "failed" and failed.error_code == "engine_error" and failed.completed_at
    assert await store.start(c.id, "w")
    assert (await store.get(c.id, owner=None)).attempts == 1  # type: ignore[union-attr]
    assert await store.requeue(c.id, "w", refund_attempt=True)
    again = await store.get(c.id, owner=None)
    assert again and again.status == "queued" and again.attempts == 0 and again.worker_id is None
    await store.claim(c.id, "w")
    assert not await store.start(c.id, "other")  # not its job
    assert await store.requeue(c.id, "w")
    assert (await store.get(c.id, owner=None)).attempts == 0  # type: ignore[union-attr]
    assert await store.next_queued("m", 10) == [c.id]


async def test_pages_follow_the_cursor_both_ways(store: VideoJobStore) -> None:
    ids = [(await store.create(make_job())).id for _ in range(5)]
    first = await store.page(owner=None, after=None, limit=2, order="asc")
    assert first is not None and [j.id for j in first[0]] == ids[:2] and first[1]
    rest = await store.page(owner=None, after=ids[1], limit=10, order="asc")
    assert rest is not None and [j.id for j in rest[0]] == ids[2:] and not rest[1]
    newest = await store.page(owner=None, after=None, limit=2, order="desc")
    assert newest is not None and [j.id for j in newest[0]] == ids[:-3:-1]
    older = await store.page(owner=None, after=ids[3], limit=10, order="desc")
    assert older is not None and [j.id for j in older[0]] == ids[2::-1]
    assert await store.page(owner=None, after="video_unknown", limit=2, order="asc") is None


async def test_owners_never_see_each_others_jobs(store: VideoJobStore) -> None:
    mine = await store.create(make_job(owner="key_a"))
    theirs = await store.create(make_job(owner="key_b"))
    anonymous = await store.create(make_job())
    assert await store.get(theirs.id, owner="key_a") is None
    assert (await store.get(mine.id, owner="key_a")) is not None
    page = await store.page(owner="key_a", after=None, limit=10, order="asc")
    assert page is not None and [j.id for j in page[0]] == [mine.id]
    assert await store.page(owner="key_a", after=theirs.id, limit=10, order="asc") is None
    assert await store.delete(theirs.id, owner="key_a") is None
    only_anon = await store.page(owner=None, after=None, limit=10, order="asc")
    assert only_anon is not None and [j.id for j in only_anon[0]] == [anonymous.id]


async def test_pop_expired_removes_only_finished_jobs_past_expiry(store: VideoJobStore) -> None:
    old = await store.create(make_job())
    fresh = await store.create(make_job())
    queued = await store.create(make_job())
    for j in (old, fresh):
        await store.claim(j.id, "w")
    await store.fail(old.id, "w", code="x", message="y", expires_at=time.time() - 1)
    await store.fail(fresh.id, "w", code="x", message="y", expires_at=time.time() + 3600)
    gone = await store.pop_expired()
    assert [j.id for j in gone] == [old.id]
    assert await store.get(fresh.id, owner=None) and await store.get(queued.id, owner=None)
    assert await store.count_queued("m") == 1
