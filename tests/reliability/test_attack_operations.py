"""Operations going wrong around the queue and the workers: the database unavailable for a moment (SQLite locked by an
outside writer) when a worker records a job's end, the artifacts disk full while a job's files are written, and hosts
whose clocks disagree on one PostgreSQL database. No job may be lost, rendered twice, left stuck or leave files."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from generator import models
from generator.media import tails
from generator.models import VideoJob
from generator.queue import JobQueue, QueueLimits
from generator.storage import ArtifactStore, new_file_id, new_video_id
from hanul_core import db
from hanul_core.db import create_engine, read_only_session_factory, session_factory
from tests.reliability.test_crash_recovery import FILES_OF_A_COMPLETED_JOB, LONG_CLIP, RENDER_SHARE, client_for
from tests.support.generator_service import SlowBackend, running_generator, sdk_client, tiny_backend, wait_until
from tests.support.migrations import upgrade_both
from tests.support.processes import ProcessFactory, job_folder_contents, job_rows

BUSY_SECONDS = 1  # how long the generator's SQLite connections wait for a lock held outside before giving up


@pytest.fixture
def short_sqlite_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator's SQLite connections give up on a held lock after a second (30 s in production), so a lock held
    outside for a few seconds is, to the worker, a database that cannot be written for a while."""
    monkeypatch.setattr(db, "_SQLITE_BUSY_SECONDS", BUSY_SECONDS)


def outside_writer(running) -> sqlite3.Connection:
    """A plain connection to the generator's SQLite database (another process, a backup, a migration)."""
    path = make_url(running.service.settings.resolved_database_url).database
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


async def test_a_failure_recorded_while_the_database_is_locked_neither_kills_the_worker_nor_sticks_the_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, short_sqlite_waits: None
) -> None:
    caplog.set_level(logging.INFO, logger="generator")
    gate = threading.Event()
    backend = SlowBackend(tiny_backend(), fail_on={"poison": RuntimeError("bad frames")}, gate=gate)
    async with running_generator(tmp_path / "generator", backend) as running, sdk_client(running) as client:
        writer = outside_writer(running)
        try:
            doomed = await client.videos.create(prompt="a poison clip", seconds="1")
            await wait_until(lambda: f"rendering {doomed.id} (attempt 1)" in caplog.text)
            writer.execute("BEGIN IMMEDIATE")  # the database cannot be written for a few seconds
            gate.set()  # the render fails now: its end cannot be recorded yet
            await asyncio.sleep(BUSY_SECONDS * 2.5)
            writer.execute("ROLLBACK")
        finally:
            writer.close()
        failed = await asyncio.wait_for(client.videos.poll(doomed.id, poll_interval_ms=50), 20)
        assert failed.status == "failed" and "bad frames" in failed.error.message
        # The worker is still there: the next job renders.
        after = await asyncio.wait_for(
            client.videos.create_and_poll(prompt="a calm lake", seconds="1", poll_interval_ms=50), 20
        )
        assert after.status == "completed"
        health = await running.service.health()
        assert [worker["state"] for worker in health["workers"]] == ["idle"]


async def test_a_finished_render_is_completed_once_when_the_database_is_locked_at_that_moment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, short_sqlite_waits: None
) -> None:
    caplog.set_level(logging.INFO, logger="generator")
    backend = SlowBackend(tiny_backend())
    async with running_generator(tmp_path / "generator", backend) as running, sdk_client(running) as client:
        queue = running.service.queue
        real_complete = queue.complete
        writer = outside_writer(running)
        loop = asyncio.get_running_loop()
        locked: list[str] = []

        async def complete_while_locked(lease, **kwargs):
            if not locked:  # the first completion meets a lock held outside for a moment longer than SQLite waits
                locked.append(lease.video_id)
                writer.execute("BEGIN IMMEDIATE")
                loop.call_later(BUSY_SECONDS * 1.5, writer.execute, "ROLLBACK")
            return await real_complete(lease, **kwargs)

        queue.complete = complete_while_locked
        try:
            video = await asyncio.wait_for(
                client.videos.create_and_poll(prompt="a paper boat", seconds="1", poll_interval_ms=50), 20
            )
        finally:
            await asyncio.sleep(BUSY_SECONDS * 1.6)
            writer.close()
        assert locked == [video.id]
        assert video.status == "completed", video.error
        row = await queue.get(video.id)
        assert row.attempts == 1, "rendered once: the finished render was not thrown away"
        assert backend.prompts == ["a paper boat"]
        assert (running.service.store.attempt_dir(video.id, 1) / "video.mp4").is_file()


async def test_a_request_while_the_database_cannot_be_written_is_a_503_to_retry_and_leaves_nothing(
    tmp_path: Path, short_sqlite_waits: None
) -> None:
    async with running_generator(tmp_path / "generator") as running, aiohttp.ClientSession() as http:
        writer = outside_writer(running)
        try:
            writer.execute("BEGIN IMMEDIATE")
            async with http.post(
                f"{running.base_url}/videos", json={"prompt": "a calm lake", "seconds": "1"}
            ) as answer:
                assert answer.status == 503, await answer.text()
                assert answer.headers["Retry-After"] == "2"
                assert (await answer.json())["error"]["code"] == "database_unavailable"
            writer.execute("ROLLBACK")
        finally:
            writer.close()
        assert list(running.service.store.root.glob("video_*")) == []  # nothing half made
        async with http.post(f"{running.base_url}/videos", json={"prompt": "a calm lake", "seconds": "1"}) as answer:
            assert answer.status == 200  # the retry goes through


async def test_claims_that_keep_failing_are_tried_less_and_less_often_and_said_once_in_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="generator")
    async with running_generator(tmp_path / "generator") as running, sdk_client(running) as client:
        queue = running.service.queue
        claim, tries = queue.claim, []

        async def unavailable(*args, **kwargs):
            tries.append(asyncio.get_running_loop().time())
            raise OperationalError("SELECT", {}, Exception("could not connect to server"))

        queue.claim = unavailable
        try:
            await asyncio.sleep(2.0)  # 40 polls of 0.05 s
        finally:
            queue.claim = claim
        assert 3 <= len(tries) <= 6, len(tries)  # 0.1, 0.2, 0.4, 0.8 s apart
        tracebacks = [r for r in caplog.records if "claiming failed" in r.getMessage() and r.exc_info]
        assert len(tracebacks) == 1
        video = await asyncio.wait_for(
            client.videos.create_and_poll(prompt="a calm lake", seconds="1", poll_interval_ms=50), 20
        )
        assert video.status == "completed"
        assert "claiming works again after" in caplog.text


async def test_a_completion_whose_answer_was_lost_keeps_the_video(tmp_path: Path) -> None:
    """The database committed the completion but the connection broke before the worker heard so: trying again must
    find the job completed by this very attempt, not take it for a lost lease and delete the finished clip."""
    async with running_generator(tmp_path / "generator") as running, sdk_client(running) as client:
        queue = running.service.queue
        real_complete = queue.complete
        answers: list[bool] = []

        async def complete_then_lose_the_answer(lease, **kwargs):
            done = await real_complete(lease, **kwargs)
            answers.append(done)
            if len(answers) == 1:
                raise OperationalError("COMMIT", {}, ConnectionResetError("connection reset by peer"))
            return done

        queue.complete = complete_then_lose_the_answer
        video = await asyncio.wait_for(
            client.videos.create_and_poll(prompt="a paper boat", seconds="1", poll_interval_ms=50), 20
        )
        assert video.status == "completed"
        await wait_until(lambda: len(answers) >= 2 or running.service.workers[0].status.jobs_done == 1)
        await asyncio.sleep(0.3)  # whatever the worker does after its answer has been done
        clip = (await client.videos.download_content(video.id)).read()
        assert clip == (running.service.store.attempt_dir(video.id, 1) / "video.mp4").read_bytes()
        assert running.service.workers[0].status.jobs_done == 1


async def test_a_full_disk_while_a_jobs_files_are_written_fails_the_job_and_leaves_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save_tail = tails.save_tail

    def disk_full(frames, path, fps):
        real_save_tail(frames, path, fps)  # half written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(tails, "save_tail", disk_full)
    async with running_generator(tmp_path / "generator") as running, sdk_client(running) as client:
        video = await asyncio.wait_for(
            client.videos.create_and_poll(prompt="a lighthouse at dusk", seconds="1", poll_interval_ms=50), 20
        )
        assert video.status == "failed" and "No space left" in video.error.message
        folder = running.service.store.job_dir(video.id)
        left = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []
        assert [p for p in left if p != "preview.webp"] == [], "a failed attempt's files stay on the full disk"


def test_a_file_that_does_not_fit_on_the_disk_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path / "videos")
    real_write_bytes = Path.write_bytes

    def disk_full(self: Path, data: bytes) -> int:
        real_write_bytes(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    with pytest.raises(OSError):
        store.write_file(new_file_id(), b"x" * 4096)
    video_id = new_video_id()
    with pytest.raises(OSError):
        store.write_bytes(video_id, "preview", b"y" * 4096)
    monkeypatch.undo()
    left = [p.relative_to(store.root).as_posix() for p in store.root.rglob("*") if p.is_file()]
    assert left == [], "half-written temporary files stay on the full disk, where nothing removes them"


async def test_a_host_paused_past_its_lease_leaves_the_job_to_the_host_that_took_it_over(
    generator_processes: ProcessFactory, postgres_url: str, tmp_path: Path
) -> None:
    """SIGSTOP (a frozen VM, a swapping host) past the lease: the other host takes the job over and completes it; when
    the paused host goes on, its late render is dropped and nothing of it is mixed into the job's files."""
    shared = {"DATABASE_URL": postgres_url, "GENERATOR_ARTIFACTS_DIR": tmp_path / "shared"}
    shared["GENERATOR_LEASE_SECONDS"] = 2
    fleet = [generator_processes(name, **shared) for name in ("pause-a", "pause-b")]
    for process in fleet:
        process.launch()
    for process in fleet:
        process.wait_ready()
    async with client_for(fleet[0].base_url) as client:
        video = await client.videos.create(prompt="a long take of a harbour", **LONG_CLIP)

        async def rendering() -> bool:
            found = await client.videos.retrieve(video.id)
            return found.status == "in_progress" and 0 < found.progress < RENDER_SHARE

        await wait_until(rendering, limit=60)
        owner = (await job_rows(postgres_url))[video.id].lease_owner
        paused, other = (fleet[0], fleet[1]) if owner == "pause-a/0" else (fleet[1], fleet[0])
        os.kill(paused.pid, signal.SIGSTOP)
        try:
            async with client_for(other.base_url) as survivor:  # the paused host answers nothing meanwhile
                done = await asyncio.wait_for(survivor.videos.poll(video.id, poll_interval_ms=100), 60)
        finally:
            os.kill(paused.pid, signal.SIGCONT)
        assert done.status == "completed"
        await wait_until(lambda: f"lost the lease of {video.id} (attempt 1)" in paused.log(), limit=20)
        row = (await job_rows(postgres_url))[video.id]
        assert (row.status, row.attempts, row.lease_owner) == ("completed", 2, None)
        assert f"{video.id} completed in" in other.log() and f"{video.id} completed in" not in paused.log()
        folder = tmp_path / "shared" / video.id
        assert job_folder_contents(folder) == {"attempt-2": FILES_OF_A_COMPLETED_JOB}
        clip = (await client.videos.download_content(video.id)).read()
        assert clip == (folder / "attempt-2" / "video.mp4").read_bytes()


async def test_hosts_whose_clocks_disagree_do_not_take_each_others_live_jobs(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(postgres_url)
    await upgrade_both(engine)
    try:
        limits = QueueLimits(max_queue=100, max_queue_per_user=100, lease_seconds=30, max_attempts=3)
        queue = JobQueue(session_factory(engine), limits, readers=read_only_session_factory(engine))
        for _ in range(2):
            await queue.enqueue(
                VideoJob(id=new_video_id(), model="tiny", prompt="x", seconds="1", size="64x64", seed=1, params={})
            )
        real_utcnow = db.utcnow

        def host_clock(offset: timedelta) -> None:
            monkeypatch.setattr("generator.queue.utcnow", lambda: real_utcnow() + offset)

        host_clock(timedelta(minutes=-5))  # host A runs five minutes slow
        slow = await queue.claim("host-a/0")
        assert slow is not None and (await queue.heartbeat(slow.lease, 10)).owned
        host_clock(timedelta(0))  # host B's clock is right
        right = await queue.claim("host-b/0")
        assert right is not None and right.id != slow.id, "B took the job A renders: its lease looked expired"
        assert (await queue.heartbeat(right.lease)).owned
        host_clock(timedelta(minutes=5))  # host C runs five minutes fast
        assert await queue.claim("host-c/0") is None, "C took a live job: every lease looked expired to it"
        host_clock(timedelta(0))
        assert (await queue.heartbeat(slow.lease)).owned and (await queue.heartbeat(right.lease)).owned
        rows = {job.id: job for job in (await queue.list(after=None, limit=10, order="asc"))[0]}
        assert {row.status for row in rows.values()} == {models.IN_PROGRESS}
        assert {row.attempts for row in rows.values()} == {1}
    finally:
        await engine.dispose()
