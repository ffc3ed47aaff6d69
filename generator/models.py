"""The generator's tables: one row per video job and the files each job produced; uploaded files; characters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hanul_core.db import TYPE_ANNOTATION_MAP, BigIntId, new_metadata, utcnow
from hanul_core.migrate import MigrationHistory

# Job statuses. The first four are OpenAI's; `cancelled` is shown to clients as failed/cancelled.
QUEUED = "queued"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
UNFINISHED = (QUEUED, IN_PROGRESS)
FINISHED = (COMPLETED, FAILED, CANCELLED)


MIGRATIONS = MigrationHistory("generator")  # migrations/generator/, upgraded by the generator alone


class Base(DeclarativeBase):
    """The generator's tables: their own metadata, migrated by their own history."""

    metadata = new_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class VideoJob(Base):
    """A request to render one video, from queued to completed; the queue is these rows."""

    __tablename__ = "video_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="generate")  # generate | extend | edit
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    model: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text, default=None)
    seconds: Mapped[str] = mapped_column(String(16))  # as shown to clients: the rendered length
    size: Mapped[str] = mapped_column(String(16))  # "WIDTHxHEIGHT" as asked (rendered: params width × height)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # frames, fps, steps, guidance, max_bytes…
    seed: Mapped[int] = mapped_column(BigInteger)
    user: Mapped[str | None] = mapped_column(String(128), default=None)
    # A client's Idempotency-Key: a retried create returns the job the first attempt made.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None, unique=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("video_jobs.id", ondelete="SET NULL"), default=None)
    remixed_from_id: Mapped[str | None] = mapped_column(ForeignKey("video_jobs.id", ondelete="SET NULL"), default=None)
    # Fair-share order: how many unfinished jobs this user already had when this one arrived. Workers take
    # the lowest rank first, so every user's first job runs before anyone's second (an indexed, flat claim).
    fair_rank: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The current attempt was claimed while its worker's previous job rendered (claimed ahead), its inputs are loaded
    # and its own turn has not begun: a worker lost now died in the other job's render, and this attempt is not held
    # against it (queue.wait_for_turn, queue.begin_turn).
    claimed_ahead: Mapped[bool] = mapped_column(Boolean, default=False)
    unblamed_attempts: Mapped[int] = mapped_column(Integer, default=0)  # attempts lost while claimed ahead
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)

    artifacts: Mapped[list[VideoArtifact]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )

    __table_args__ = (
        Index("ix_video_jobs_claim_order", "status", "fair_rank", "created_at"),
        Index("ix_video_jobs_status_lease_expires_at", "status", "lease_expires_at"),
        Index("ix_video_jobs_user_status", "user", "status"),
        Index("ix_video_jobs_created_at", "created_at"),
    )

    def artifact(self, kind: str) -> VideoArtifact | None:
        return next((a for a in self.artifacts if a.kind == kind), None)


class VideoArtifact(Base):
    """A file a job produced (video, thumbnail, spritesheet, tail frames) or was given (reference image)."""

    __tablename__ = "video_artifacts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("video_jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(500))  # relative to the artifacts folder
    content_type: Mapped[str] = mapped_column(String(100))
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[VideoJob] = relationship(back_populates="artifacts")

    __table_args__ = (UniqueConstraint("job_id", "kind", name="uq_video_artifacts_job_id_kind"),)


class StoredFile(Base):
    """A file uploaded through the Files API (`POST /v1/files`), e.g. an image to use as `input_reference`."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # file-<hex>
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    content_type: Mapped[str] = mapped_column(String(100))
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    path: Mapped[str] = mapped_column(String(500))  # relative to the artifacts folder
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_files_created_at", "created_at"),)


class Character(Base):
    """A named subject made from an uploaded clip or image (`POST /v1/videos/characters`): reference frames chosen
    from the upload, kept as files, that condition later renders naming it."""

    __tablename__ = "characters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # char_<hex>
    name: Mapped[str] = mapped_column(String(80))
    user: Mapped[str | None] = mapped_column(String(128), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    source: Mapped[str] = mapped_column(String(16))  # "video" | "image": what was uploaded
    frames: Mapped[list[str]] = mapped_column(JSON, default=list)  # reference frames' paths, best first
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_characters_user_created_at", "user", "created_at"),)
