"""The job queue: jobs are rows; workers claim them under a lease they renew, so nothing is lost on a crash.

Claims take the lowest fair-share rank first, oldest first within a rank, through one indexed query
(`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serialises writers with BEGIN IMMEDIATE).
A job whose worker stopped renewing is claimed again once its lease has expired, up to max_attempts.
Every state change after a claim is guarded by the lease (worker and attempt), so a finished job is never finished
twice and an attempt that lost its lease, even to its own worker, can no longer touch the job.
Requests held until a job changes (`GET /v1/videos/{id}?wait=`) are woken by the changes this process commits that
may concern them (a lease renewal concerns its own job; a claim, an end, a new or cancelled job every queue
position); changes committed by other hosts they find by reading the row again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from generator import models
from generator.errors import invalid, rate_limited
from generator.models import VideoArtifact, VideoJob
from hanul_core.db import utcnow

log = logging.getLogger(__name__)

_ENQUEUE_LOCK = 0x48414E55  # PostgreSQL advisory lock id ("HANU") serialising depth checks across hosts


@dataclass(frozen=True)
class QueueLimits:
    max_queue: int
    max_queue_per_user: int
    lease_seconds: float
    max_attempts: int


@dataclass(frozen=True)
class Lease:
    """One claim of one job: the worker and the attempt number. Every change after the claim must present it,
    so an attempt that lost its lease (even to the same worker, after it expired) can no longer touch the job."""

    video_id: str
    worker_id: str
    attempt: int


@dataclass(frozen=True)
class ClaimedJob:
    """A job a worker now holds: everything needed to render it."""

    id: str
    kind: str
    prompt: str
    negative_prompt: str | None
    params: dict[str, Any]
    seed: int
    parent_id: str | None
    attempts: int
    created_at_ts: float
    worker_id: str

    @property
    def lease(self) -> Lease:
        return Lease(self.id, self.worker_id, self.attempts)


@dataclass(frozen=True)
class EndedJob:
    """A job a claim ended instead of taking it over (its worker was gone): cancelled, or failed `worker_lost`."""

    id: str
    status: str
    error_code: str | None
    attempts: int  # the attempts its lost workers made (each may have left a folder)


@dataclass(frozen=True)
class Heartbeat:
    owned: bool  # False once the lease was lost (another worker took the job, or it was deleted)
    cancel_requested: bool


@dataclass(frozen=True)
class NewArtifact:
    kind: str
    path: str  # relative to the artifact store root
    content_type: str
    bytes: int


class JobQueue:
    """Enqueue, claim, renew, finish and cancel video jobs in the shared database.

    Over 300 lines, kept whole: every method is one transaction on `video_jobs` guarded by the same lease rules, and
    the waiters woken by those changes (`wait_for_change`) must see every one of them.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        limits: QueueLimits,
        readers: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.sessions = sessions  # every change goes through these
        self.readers = readers or sessions  # reads that change nothing (`read_only_session_factory`)
        self.limits = limits
        # Held status requests wait here for a change this process commits: one event per job being waited on,
        # set and dropped when that job changes, or every one when a change may move queue positions.
        self._changes: dict[str, asyncio.Event] = {}

    @asynccontextmanager
    async def _writing(self, only: str | None = None) -> AsyncIterator[AsyncSession]:
        """A transaction that may change jobs: once it has committed, whoever waits for a change is woken: those
        waiting for job `only` when nothing else can have changed (a lease renewal), else everyone (a claim, an end,
        a new or cancelled job moves other jobs' queue positions)."""
        async with self.sessions.begin() as session:
            yield session
        if only is None:
            self.wake_waiters()
        elif (change := self._changes.pop(only, None)) is not None:
            change.set()

    def wake_waiters(self) -> None:
        """Wake every `wait_for_change` now (after a change, or to let held requests go at shutdown)."""
        changes, self._changes = self._changes, {}
        for change in changes.values():
            change.set()

    async def wait_for_change(self, video_id: str, longest: float) -> None:
        """Return when this process next commits a change that may concern job `video_id`, or after `longest`
        seconds."""
        change = self._changes.setdefault(video_id, asyncio.Event())
        try:
            await asyncio.wait_for(change.wait(), longest)
        except TimeoutError:
            pass

    # --- clients ---------------------------------------------------------------------------------

    async def enqueue(self, job: VideoJob, artifacts: list[NewArtifact] = ()) -> VideoJob:
        """Add a job (and files it came with), or raise 429 when the queue or the user's share is full.

        A job carrying an idempotency key that an earlier job already used is not added: that job is returned.
        """
        if job.idempotency_key is not None:
            earlier = await self._by_idempotency_key(job.idempotency_key)
            if earlier is not None:
                return earlier
        try:
            await self._insert(job, artifacts)
        except IntegrityError:
            earlier = await self._by_idempotency_key(job.idempotency_key) if job.idempotency_key else None
            if earlier is None:
                raise
            return earlier  # a concurrent retry with the same key won the insert
        return await self.get(job.id)

    async def _by_idempotency_key(self, key: str) -> VideoJob | None:
        async with self.readers() as session:
            return await session.scalar(select(VideoJob).where(VideoJob.idempotency_key == key))

    async def _insert(self, job: VideoJob, artifacts: list[NewArtifact]) -> None:
        async with self._writing() as session:
            if session.bind.dialect.name == "postgresql":
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ENQUEUE_LOCK})
            waiting = await session.scalar(
                select(func.count()).select_from(VideoJob).where(VideoJob.status == models.QUEUED)
            )
            if waiting >= self.limits.max_queue:
                raise rate_limited(f"The queue is full ({waiting} jobs waiting). Try again in a minute.", 30)
            # A named user's share is counted by name; anonymous requests by the client they came from (the API
            # key or address the API put in params["bucket"]), so nameless clients cannot fill the whole queue.
            if job.user is not None:
                same_sender = VideoJob.user == job.user
                who = f"User '{job.user}' already has"
            else:
                bucket = job.params.get("bucket", "")
                same_sender = and_(VideoJob.user.is_(None), VideoJob.params["bucket"].as_string() == bucket)
                who = "Requests without a 'user' from this client already have"
            users_unfinished = await session.scalar(
                select(func.count()).select_from(VideoJob).where(VideoJob.status.in_(models.UNFINISHED), same_sender)
            )
            if users_unfinished >= self.limits.max_queue_per_user:
                raise rate_limited(
                    f"{who} {users_unfinished} unfinished videos "
                    f"(at most {self.limits.max_queue_per_user}). Wait for one to finish.",
                    10,
                )
            job.fair_rank = users_unfinished
            job.status = models.QUEUED
            session.add(job)
            for artifact in artifacts:
                session.add(VideoArtifact(job_id=job.id, **artifact.__dict__))

    async def get(self, video_id: str, *, include_deleted: bool = False) -> VideoJob | None:
        async with self.readers() as session:
            job = await session.get(VideoJob, video_id)
            if job is None or (job.deleted_at is not None and not include_deleted):
                return None
            return job

    async def list(
        self, *, after: str | None, limit: int, order: str, user: str | None = None
    ) -> tuple[list[VideoJob], bool]:
        """A page of visible jobs by creation time (ties broken by id), and whether more follow."""
        async with self.readers() as session:
            query = select(VideoJob).where(VideoJob.deleted_at.is_(None))
            if user is not None:
                query = query.where(VideoJob.user == user)
            if after is not None:
                cursor = await session.get(VideoJob, after)  # a deleted job's row still marks its place
                if cursor is None:  # not the first page again, as if no cursor were given
                    raise invalid("after", f"Invalid 'after': no video '{after[:80]}'.")
                earlier = or_(
                    VideoJob.created_at < cursor.created_at,
                    and_(VideoJob.created_at == cursor.created_at, VideoJob.id < cursor.id),
                )
                later = or_(
                    VideoJob.created_at > cursor.created_at,
                    and_(VideoJob.created_at == cursor.created_at, VideoJob.id > cursor.id),
                )
                query = query.where(earlier if order == "desc" else later)
            if order == "desc":
                query = query.order_by(VideoJob.created_at.desc(), VideoJob.id.desc())
            else:
                query = query.order_by(VideoJob.created_at.asc(), VideoJob.id.asc())
            rows = list((await session.scalars(query.limit(limit + 1))).all())
            return rows[:limit], len(rows) > limit

    async def recently_completed(self, limit: int) -> list[VideoJob]:
        """The last `limit` completed jobs by creation time (the created_at index, read backwards past the queue)."""
        async with self.readers() as session:
            query = (
                select(VideoJob)
                .where(VideoJob.status == models.COMPLETED)
                .order_by(VideoJob.created_at.desc(), VideoJob.id.desc())
                .limit(limit)
            )
            return list((await session.scalars(query)).all())

    async def rendering_count(self) -> int:
        """How many jobs render now, on every host (a job claimed ahead only waits for its worker's GPU)."""
        async with self.readers() as session:
            query = select(func.count()).where(VideoJob.status == models.IN_PROGRESS, VideoJob.claimed_ahead.is_(False))
            return int(await session.scalar(query) or 0)

    async def queue_position(self, job: VideoJob) -> int | None:
        """1 for the next job a worker will take; None unless the job is queued."""
        if job.status != models.QUEUED:
            return None
        async with self.readers() as session:
            ahead = await session.scalar(
                select(func.count())
                .select_from(VideoJob)
                .where(
                    VideoJob.status == models.QUEUED,
                    or_(
                        VideoJob.fair_rank < job.fair_rank,
                        and_(VideoJob.fair_rank == job.fair_rank, VideoJob.created_at < job.created_at),
                    ),
                )
            )
            return int(ahead) + 1

    async def counts(self) -> dict[str, int]:
        async with self.readers() as session:
            rows = await session.execute(
                select(VideoJob.status, func.count())
                .where(VideoJob.status.in_(models.UNFINISHED))
                .group_by(VideoJob.status)
            )
            found = {status: int(count) for status, count in rows}
        return {status: found.get(status, 0) for status in models.UNFINISHED}

    async def request_cancel(self, video_id: str) -> VideoJob | None:
        """DELETE: a queued job is cancelled now, a running one at its next step, a finished one removed."""
        async with self._writing() as session:
            job = await session.get(VideoJob, video_id, with_for_update=True)
            if job is None or job.deleted_at is not None:
                return None
            now = utcnow()
            job.deleted_at = now
            if job.status == models.QUEUED:
                job.status = models.CANCELLED
                job.completed_at = now
                job.error_code, job.error_message = "cancelled", "Cancelled before it started."
            elif job.status == models.IN_PROGRESS:
                job.cancel_requested = True
            return job

    # --- workers ---------------------------------------------------------------------------------

    async def claim(self, worker_id: str, on_ended: Callable[[EndedJob], None] | None = None) -> ClaimedJob | None:
        """Take the next job: first one whose worker died (lease expired), else the fairest queued one.

        An abandoned job that is not taken over is ended instead: cancelled if that was asked, failed with
        `worker_lost` once its workers were lost `max_attempts` times in its own turns. Each such end is reported
        to `on_ended` once it is committed (the worker counts it and removes what the lost attempts left).
        """
        while True:
            async with self._writing() as session:
                now = await _lease_clock(session)
                abandoned = await session.scalar(
                    select(VideoJob)
                    .where(VideoJob.status == models.IN_PROGRESS, VideoJob.lease_expires_at < now)
                    .order_by(VideoJob.lease_expires_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if abandoned is None:
                    queued = await session.scalar(
                        select(VideoJob)
                        .where(VideoJob.status == models.QUEUED)
                        .order_by(VideoJob.fair_rank, VideoJob.created_at, VideoJob.id)
                        .limit(1)
                        .with_for_update(skip_locked=True)
                    )
                    return None if queued is None else self._take(queued, worker_id, now)
                if abandoned.claimed_ahead:  # lost while it only waited for its turn: not this job's doing
                    abandoned.unblamed_attempts += 1
                    abandoned.claimed_ahead = False
                lost = abandoned.attempts - abandoned.unblamed_attempts  # its workers lost in its own turns
                if abandoned.cancel_requested:
                    self._finish(abandoned, models.CANCELLED, "cancelled", "Cancelled while running.")
                elif lost >= self.limits.max_attempts:
                    self._finish(
                        abandoned,
                        models.FAILED,
                        "worker_lost",
                        f"The worker rendering this video stopped {lost} times; giving up.",
                    )
                    log.warning("job %s failed: its workers were lost %d times", abandoned.id, lost)
                else:
                    log.warning("job %s: lease of %s expired, taking it over", abandoned.id, abandoned.lease_owner)
                    return self._take(abandoned, worker_id, now)
                ended = EndedJob(abandoned.id, abandoned.status, abandoned.error_code, abandoned.attempts)
            if on_ended is not None:  # committed: the job has really ended
                on_ended(ended)

    def _take(self, job: VideoJob, worker_id: str, now: Any) -> ClaimedJob:
        job.status = models.IN_PROGRESS
        job.lease_owner = worker_id
        job.lease_expires_at = now + timedelta(seconds=self.limits.lease_seconds)
        job.attempts += 1
        job.claimed_ahead = False
        job.progress = 0
        job.started_at = job.started_at or now
        return ClaimedJob(
            id=job.id,
            kind=job.kind,
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            params=dict(job.params),
            seed=job.seed,
            parent_id=job.parent_id,
            attempts=job.attempts,
            created_at_ts=job.created_at.timestamp(),
            worker_id=worker_id,
        )

    @staticmethod
    def _finish(job: VideoJob, status: str, code: str | None, message: str | None) -> None:
        job.status = status
        job.error_code, job.error_message = code, message
        job.completed_at = utcnow()
        job.lease_owner = None
        job.lease_expires_at = None

    @staticmethod
    def _owned(lease: Lease) -> Any:
        return and_(
            VideoJob.id == lease.video_id,
            VideoJob.lease_owner == lease.worker_id,
            VideoJob.attempts == lease.attempt,
            VideoJob.status == models.IN_PROGRESS,
        )

    async def wait_for_turn(self, lease: Lease) -> bool:
        """A job claimed ahead has its inputs loaded and only waits while its worker's current job renders: losing
        that worker now is not held against it (it died in the other job's render). Until then (while its own
        inputs load) and from `begin_turn` on, it is."""
        return await self._set_claimed_ahead(lease, True)

    async def begin_turn(self, lease: Lease) -> bool:
        """A job claimed ahead is now its worker's current job: from here, losing that worker counts against it."""
        return await self._set_claimed_ahead(lease, False)

    async def _set_claimed_ahead(self, lease: Lease, waiting: bool) -> bool:
        async with self._writing(only=lease.video_id) as session:
            result = await session.execute(update(VideoJob).where(self._owned(lease)).values(claimed_ahead=waiting))
            return result.rowcount == 1

    async def heartbeat(self, lease: Lease, progress: int | None = None) -> Heartbeat:
        """Renew the lease (and record progress); tells the worker whether it still owns the job."""
        values: dict[str, Any] = {}
        if progress is not None:
            values["progress"] = max(0, min(99, progress))
        async with self._writing(only=lease.video_id) as session:
            values["lease_expires_at"] = await _lease_clock(session) + timedelta(seconds=self.limits.lease_seconds)
            result = await session.execute(update(VideoJob).where(self._owned(lease)).values(**values))
            if result.rowcount == 0:
                return Heartbeat(owned=False, cancel_requested=True)
            cancel = await session.scalar(select(VideoJob.cancel_requested).where(VideoJob.id == lease.video_id))
            return Heartbeat(owned=True, cancel_requested=bool(cancel))

    async def complete(
        self,
        lease: Lease,
        *,
        artifacts: list[NewArtifact],
        seconds: str,
        timings: dict[str, float],
    ) -> bool:
        """Mark the job completed with its files; False (and nothing changed) if the lease was lost."""
        async with self._writing() as session:
            result = await session.execute(
                update(VideoJob)
                .where(self._owned(lease), VideoJob.cancel_requested.is_(False))
                .values(
                    status=models.COMPLETED,
                    progress=100,
                    seconds=seconds,
                    timings=timings,
                    completed_at=utcnow(),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            if result.rowcount == 0:
                return False
            kinds = [artifact.kind for artifact in artifacts]
            await session.execute(
                delete(VideoArtifact).where(VideoArtifact.job_id == lease.video_id, VideoArtifact.kind.in_(kinds))
            )
            for artifact in artifacts:
                session.add(VideoArtifact(job_id=lease.video_id, **artifact.__dict__))
            return True

    async def fail(self, lease: Lease, code: str, message: str) -> bool:
        return await self._end(lease, models.FAILED, code, message)

    async def mark_cancelled(self, lease: Lease) -> bool:
        return await self._end(lease, models.CANCELLED, "cancelled", "Cancelled while running.")

    async def release(self, lease: Lease) -> bool:
        """Give a job back to the queue untouched (graceful shutdown), without counting the attempt."""
        async with self._writing() as session:
            result = await session.execute(
                update(VideoJob)
                .where(self._owned(lease))
                .values(
                    status=models.QUEUED,
                    lease_owner=None,
                    lease_expires_at=None,
                    progress=0,
                    attempts=VideoJob.attempts - 1,
                    claimed_ahead=False,
                )
            )
            return result.rowcount == 1

    async def _end(self, lease: Lease, status: str, code: str, message: str) -> bool:
        async with self._writing() as session:
            result = await session.execute(
                update(VideoJob)
                .where(self._owned(lease))
                .values(
                    status=status,
                    error_code=code,
                    error_message=message[:2000],
                    completed_at=utcnow(),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
            return result.rowcount == 1

    async def record_preview(self, lease: Lease, path: str, size: int) -> bool:
        """Note a new live preview of a job this lease still renders (one `preview` artifact row, its time moved on
        each time); False, and nothing changed, once the lease is lost."""
        async with self._writing(only=lease.video_id) as session:
            if await session.scalar(select(VideoJob.id).where(self._owned(lease))) is None:
                return False
            row = await session.scalar(
                select(VideoArtifact).where(VideoArtifact.job_id == lease.video_id, VideoArtifact.kind == "preview")
            )
            if row is None:
                session.add(
                    VideoArtifact(
                        job_id=lease.video_id, kind="preview", path=path, content_type="image/webp", bytes=size
                    )
                )
            else:
                row.path, row.bytes, row.created_at = path, size, utcnow()
            return True

    async def artifacts_of(self, video_id: str) -> list[VideoArtifact]:
        async with self.readers() as session:
            return list((await session.scalars(select(VideoArtifact).where(VideoArtifact.job_id == video_id))).all())

    async def known_ids(self, video_ids: list[str]) -> set[str]:
        """Which of these ids have a job row (deleted ones included)."""
        found: set[str] = set()
        async with self.readers() as session:
            for start in range(0, len(video_ids), 500):  # bound the IN list
                chunk = video_ids[start : start + 500]
                found.update(await session.scalars(select(VideoJob.id).where(VideoJob.id.in_(chunk))))
        return found

    async def is_awaited(self, video_id: str) -> bool:
        """Whether an unfinished job extends or edits this video: it reads the video's files when its turn comes."""
        async with self.readers() as session:
            return bool(await session.scalar(select(_awaited(video_id, VideoJob))))

    async def deleted_and_no_longer_awaited(self, limit: int = 500) -> list[str]:
        """Deleted videos that still have files (kept while a job that extends or edits them waited), once no
        unfinished job needs them."""
        async with self.readers() as session:
            query = (
                select(VideoJob.id)
                .where(
                    VideoJob.deleted_at.is_not(None),
                    VideoJob.status.in_(models.FINISHED),
                    exists().where(VideoArtifact.job_id == VideoJob.id),
                    ~_awaited(VideoJob.id, aliased(VideoJob)),
                )
                .limit(limit)
            )
            return list(await session.scalars(query))

    async def drop_artifact_rows(self, video_id: str) -> None:
        """Drop the artifact rows of a deleted job (its files are removed by the caller)."""
        async with self._writing(only=video_id) as session:
            await session.execute(delete(VideoArtifact).where(VideoArtifact.job_id == video_id))


async def _lease_clock(session: AsyncSession) -> datetime:
    """The time leases are taken, renewed and judged expired by: the database's own clock on PostgreSQL, where hosts
    share the queue and their clocks may be minutes apart (one running fast would take every live job over, one
    running slow would lose its own); this host's on SQLite, which only one host uses."""
    if session.bind.dialect.name == "postgresql":
        return await session.scalar(select(func.now()))
    return utcnow()


def _awaited(video_id: Any, child: Any) -> Any:
    """EXISTS an unfinished job (`child`: VideoJob or an alias of it) that extends or edits `video_id`."""
    return exists().where(child.parent_id == video_id, child.status.in_((models.QUEUED, models.IN_PROGRESS)))
