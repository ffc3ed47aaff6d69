"""The job queue on SQLite and PostgreSQL: fair claims, leases, take-over, and nothing finished twice."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from generator import models
from generator.errors import APIError
from generator.models import VideoJob
from generator.queue import EndedJob, JobQueue, NewArtifact, QueueLimits
from generator.storage import new_video_id
from hanul_core.db import read_only_session_factory, session_factory, utcnow
from tests.support.sqlite_writer import sqlite_with_outside_writer


def make_queue(engine, **limits) -> JobQueue:
    values = {"max_queue": 1000, "max_queue_per_user": 1000, "lease_seconds": 30, "max_attempts": 3}
    values.update(limits)
    return JobQueue(session_factory(engine), QueueLimits(**values), readers=read_only_session_factory(engine))


def job(user: str | None = None, prompt: str = "x") -> VideoJob:
    return VideoJob(
        id=new_video_id(), model="tiny", prompt=prompt, seconds="1", size="64x64", seed=1, user=user, params={}
    )


async def enqueue_all(queue: JobQueue, *jobs: VideoJob) -> list[str]:
    ids = []
    for item in jobs:
        ids.append((await queue.enqueue(item)).id)
        await asyncio.sleep(0.002)  # distinct creation times
    return ids


async def test_claims_are_fair_across_users_then_oldest_first(engine):
    queue = make_queue(engine)
    a1, a2, a3, b1, c1, b2 = await enqueue_all(
        queue, job("alice"), job("alice"), job("alice"), job("bob"), job("carol"), job("bob")
    )
    order = [(await queue.claim("w")).id for _ in range(6)]
    assert order == [a1, b1, c1, a2, b2, a3]
    assert await queue.claim("w") is None


async def test_a_newcomer_goes_before_a_heavy_users_backlog(engine):
    queue = make_queue(engine)
    backlog = await enqueue_all(queue, *(job("alice") for _ in range(4)))
    assert (await queue.claim("w")).id == backlog[0]
    (newcomer,) = await enqueue_all(queue, job("dave"))
    assert (await queue.claim("w")).id == newcomer


async def test_expired_lease_is_taken_over_and_counts_an_attempt(engine):
    queue = make_queue(engine, lease_seconds=1.0)
    (video_id,) = await enqueue_all(queue, job())
    first = await queue.claim("dead-worker")
    assert first.id == video_id and first.attempts == 1
    assert await queue.claim("other") is None  # still leased
    await asyncio.sleep(1.1)
    second = await queue.claim("other")
    assert second.id == video_id and second.attempts == 2
    # The dead worker comes back: it no longer owns the job and cannot finish it.
    assert not (await queue.heartbeat(first.lease)).owned
    assert not await queue.complete(first.lease, artifacts=[], seconds="1", timings={})
    assert await queue.complete(second.lease, artifacts=[], seconds="1", timings={})
    finished = await queue.get(video_id)
    assert finished.status == models.COMPLETED and finished.progress == 100


async def test_a_worker_that_takes_back_its_own_expired_job_fences_off_its_earlier_attempt(engine):
    """A busy worker may miss its own lease and claim the job again; the lease is the worker *and* the attempt,
    so the stale attempt (still encoding, say) can neither renew, finish nor fail the job."""
    queue = make_queue(engine, lease_seconds=0.5)
    (video_id,) = await enqueue_all(queue, job())
    stale = await queue.claim("w")
    await asyncio.sleep(0.6)
    current = await queue.claim("w")
    assert (current.id, current.attempts, current.worker_id) == (video_id, 2, "w")
    assert not (await queue.heartbeat(stale.lease)).owned
    assert not await queue.complete(stale.lease, artifacts=[], seconds="1", timings={})
    assert not await queue.fail(stale.lease, "x", "y")
    assert (await queue.heartbeat(current.lease)).owned
    assert await queue.complete(current.lease, artifacts=[], seconds="1", timings={})


async def test_on_sqlite_reads_answer_while_a_writer_holds_the_lock(tmp_path):
    """Polls (retrieve, list, queue position) must not queue behind claims and lease renewals for the one write
    lock: read-only sessions begin DEFERRED and read the last commit beside the writer (WAL)."""
    async with sqlite_with_outside_writer(tmp_path) as (engine, writer):
        queue = make_queue(engine)
        (video_id,) = await enqueue_all(queue, job("alice"))
        writer.execute("BEGIN IMMEDIATE")  # a claim or a lease renewal in another process, mid-transaction
        writer.execute("UPDATE video_jobs SET progress = 50")  # not committed: readers must not see it
        reads = asyncio.gather(
            queue.get(video_id),
            queue.list(after=None, limit=10, order="desc"),
            queue.counts(),
            queue.artifacts_of(video_id),
        )
        stored, (listed, _), counts, artifacts = await asyncio.wait_for(reads, 5)  # not the 30 s busy timeout
        assert stored.status == models.QUEUED and stored.progress == 0
        assert [item.id for item in listed] == [video_id]
        assert counts["queued"] == 1 and artifacts == []
        assert await asyncio.wait_for(queue.queue_position(stored), 5) == 1


async def test_a_finished_job_is_never_claimed_or_finished_again(engine):
    queue = make_queue(engine, lease_seconds=0.1)
    (video_id,) = await enqueue_all(queue, job())
    claimed = await queue.claim("w1")
    assert await queue.complete(claimed.lease, artifacts=[], seconds="1", timings={})
    await asyncio.sleep(0.2)
    assert await queue.claim("w2") is None
    assert not await queue.complete(claimed.lease, artifacts=[], seconds="1", timings={})
    assert not await queue.fail(claimed.lease, "x", "y")
    assert (await queue.get(video_id)).status == models.COMPLETED


async def test_a_job_whose_workers_keep_dying_fails_after_max_attempts(engine):
    queue = make_queue(engine, lease_seconds=0.05, max_attempts=2)
    (video_id,) = await enqueue_all(queue, job())
    await queue.claim("w1")
    await asyncio.sleep(0.1)
    await queue.claim("w2")
    await asyncio.sleep(0.1)
    ended: list[EndedJob] = []
    assert await queue.claim("w3", on_ended=ended.append) is None
    failed = await queue.get(video_id)
    assert failed.status == models.FAILED and failed.error_code == "worker_lost"
    # Reported to the claiming worker, which counts it and removes the folders of its two lost attempts.
    assert ended == [EndedJob(video_id, models.FAILED, "worker_lost", 2)]


async def test_a_worker_lost_before_a_job_claimed_ahead_began_is_not_held_against_it(engine):
    """A worker claims its next job in the last second of a render and loads its inputs; if it dies after that,
    while the job only waits, it died in the other job's render: the job is taken over, however often that
    happens, without nearing `worker_lost`."""
    queue = make_queue(engine, lease_seconds=0.05, max_attempts=2)
    (video_id,) = await enqueue_all(queue, job())
    for worker in ("w1", "w2", "w3"):
        taken = await queue.claim(worker)
        assert taken is not None and taken.id == video_id
        assert await queue.wait_for_turn(taken.lease)  # its inputs are loaded
        await asyncio.sleep(0.1)
    row = await queue.get(video_id)
    assert (row.attempts, row.unblamed_attempts, row.claimed_ahead) == (3, 2, True)
    taken = await queue.claim("w4")  # the third loss is not counted either; the fourth worker renders it
    row = await queue.get(video_id)
    assert taken.id == video_id and (row.status, row.unblamed_attempts, row.claimed_ahead) == (
        models.IN_PROGRESS,
        3,
        False,
    )
    assert await queue.complete(taken.lease, artifacts=[], seconds="1", timings={})


async def test_a_job_claimed_ahead_counts_the_workers_lost_in_its_own_turn_or_loading_its_inputs(engine):
    queue = make_queue(engine, lease_seconds=0.05, max_attempts=2)
    (video_id,) = await enqueue_all(queue, job())
    first = await queue.claim("w1")  # lost while its inputs loaded (a hostile upload may be what killed it)
    await asyncio.sleep(0.1)
    second = await queue.claim("w2")
    assert await queue.wait_for_turn(second.lease) and await queue.begin_turn(second.lease)  # lost in its turn
    await asyncio.sleep(0.1)
    assert first.id == second.id == video_id
    ended: list[EndedJob] = []
    assert await queue.claim("w3", on_ended=ended.append) is None
    failed = await queue.get(video_id)
    assert (failed.status, failed.error_code, failed.unblamed_attempts) == (models.FAILED, "worker_lost", 0)
    assert "stopped 2 times" in failed.error_message
    assert not await queue.begin_turn(second.lease)  # a lease that is gone begins nothing


async def test_a_job_cancelled_while_its_worker_was_gone_is_ended_by_the_next_claim(engine):
    queue = make_queue(engine, lease_seconds=0.05)
    abandoned, waiting = await enqueue_all(queue, job(), job())
    await queue.claim("w1")
    await queue.request_cancel(abandoned)
    await asyncio.sleep(0.1)
    ended: list[EndedJob] = []
    taken = await queue.claim("w2", on_ended=ended.append)
    assert taken.id == waiting  # the claim goes on to the next job
    assert ended == [EndedJob(abandoned, models.CANCELLED, "cancelled", 1)]
    assert (await queue.get(abandoned, include_deleted=True)).status == models.CANCELLED


async def test_heartbeat_renews_the_lease_and_reports_cancellation(engine):
    queue = make_queue(engine, lease_seconds=1.5)
    (video_id,) = await enqueue_all(queue, job())
    claimed = await queue.claim("w")
    for _ in range(3):
        await asyncio.sleep(0.6)  # together longer than the lease, each well inside it
        beat = await queue.heartbeat(claimed.lease, progress=40)
        assert beat.owned and not beat.cancel_requested
    assert await queue.claim("thief") is None  # renewed: never expired
    assert (await queue.get(video_id)).progress == 40
    await queue.request_cancel(video_id)
    assert (await queue.heartbeat(claimed.lease)).cancel_requested
    assert await queue.mark_cancelled(claimed.lease)
    assert (await queue.get(video_id, include_deleted=True)).status == models.CANCELLED


async def test_a_lease_renewal_wakes_only_those_waiting_for_its_job(engine):
    """Held status requests wait for changes: a renewal (about once a second per running job) concerns its own job
    alone, while a claim or an end moves every queued job's position and wakes everyone."""
    queue = make_queue(engine)
    first, second, third = await enqueue_all(queue, job(), job(), job())
    claimed_first, claimed_second = await queue.claim("w"), await queue.claim("w")
    waiting = {video: asyncio.create_task(queue.wait_for_change(video, 20)) for video in (first, second, third)}
    await asyncio.sleep(0.05)
    await queue.heartbeat(claimed_first.lease, progress=10)
    await asyncio.sleep(0.05)
    assert waiting[first].done()
    assert not waiting[second].done() and not waiting[third].done()
    await queue.complete(claimed_second.lease, artifacts=[], seconds="1", timings={})
    await asyncio.sleep(0.05)
    assert waiting[second].done() and waiting[third].done()


async def test_release_puts_a_job_back_without_spending_an_attempt(engine):
    queue = make_queue(engine)
    (video_id,) = await enqueue_all(queue, job())
    claimed = await queue.claim("w")
    assert await queue.release(claimed.lease)
    again = await queue.claim("w2")
    assert again.id == video_id and again.attempts == 1


async def test_depth_limits_answer_429(engine):
    queue = make_queue(engine, max_queue=3, max_queue_per_user=2)
    await enqueue_all(queue, job("a"), job("a"))
    with pytest.raises(APIError) as raised:
        await queue.enqueue(job("a"))
    assert raised.value.status == 429
    await queue.enqueue(job("b"))
    with pytest.raises(APIError):
        await queue.enqueue(job("c"))


async def test_concurrent_claimers_never_share_a_job(engine):
    queue = make_queue(engine)
    ids = set(await enqueue_all(queue, *(job(f"user{i % 5}") for i in range(40))))

    async def claimer(name: str) -> list[str]:
        taken = []
        while (claimed := await queue.claim(name)) is not None:
            taken.append(claimed.id)
        return taken

    results = await asyncio.gather(*(claimer(f"w{i}") for i in range(6)))
    claimed = [video_id for taken in results for video_id in taken]
    assert sorted(claimed) == sorted(ids)
    assert len(claimed) == len(set(claimed))


async def test_queue_position_counts_the_jobs_ahead(engine):
    queue = make_queue(engine)
    ids = await enqueue_all(queue, job("a"), job("a"), job("b"))
    positions = [await queue.queue_position(await queue.get(video_id)) for video_id in ids]
    assert positions == [1, 3, 2]


@pytest.mark.parametrize("rows", [100, 10_000])
async def test_claim_time_stays_flat_as_the_queue_grows(sqlite_engine, rows):
    """Report, not a timing assertion: the claim is one indexed query whatever the depth."""
    queue = make_queue(sqlite_engine)
    now = utcnow()
    async with queue.sessions.begin() as session:
        session.add_all(
            VideoJob(
                id=new_video_id(),
                model="tiny",
                prompt="x",
                seconds="1",
                size="64x64",
                seed=1,
                user=f"u{i % 50}",
                fair_rank=i // 50,
                created_at=now - timedelta(seconds=rows - i),
            )
            for i in range(rows)
        )
    async with sqlite_engine.connect() as connection:
        plan = await connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT id FROM video_jobs WHERE status = 'queued' "
            "ORDER BY fair_rank, created_at, id LIMIT 1"
        )
        details = " ".join(str(row[-1]) for row in plan)
    assert "ix_video_jobs_claim_order" in details
    started = time.perf_counter()
    for _ in range(20):
        await queue.claim("w")
    print(f"claim with {rows} queued rows: {(time.perf_counter() - started) / 20 * 1000:.2f} ms")


async def test_a_deleted_videos_files_wait_for_the_jobs_that_extend_it(engine):
    queue = make_queue(engine)
    (parent,) = await enqueue_all(queue, job())
    claimed = await queue.claim("w")
    video = NewArtifact("video", f"{parent}/video.mp4", "video/mp4", 10)
    assert await queue.complete(claimed.lease, artifacts=[video], seconds="1", timings={})
    extension, unrelated = job(), job()
    extension.parent_id = parent
    await enqueue_all(queue, extension, unrelated)
    assert await queue.is_awaited(parent) and not await queue.is_awaited(unrelated.id)
    await queue.request_cancel(parent)
    assert await queue.deleted_and_no_longer_awaited() == []  # the extension waits in the queue
    rendering = await queue.claim("w")
    assert rendering.id == extension.id
    assert await queue.deleted_and_no_longer_awaited() == []  # and then renders
    assert await queue.fail(rendering.lease, "render_failed", "it ended")
    assert await queue.deleted_and_no_longer_awaited() == [parent]
    await queue.drop_artifact_rows(parent)
    assert await queue.deleted_and_no_longer_awaited() == []


async def test_listing_hides_deleted_jobs(engine):
    queue = make_queue(engine)
    keep, gone = await enqueue_all(queue, job(), job())
    await queue.request_cancel(gone)
    listed, has_more = await queue.list(after=None, limit=10, order="asc")
    assert [j.id for j in listed] == [keep] and not has_more
