"""The generator's initial tables: the job queue and each job's artifacts.

Reviewed by hand: timestamps are timezone-aware, surrogate keys are 64-bit (INTEGER on SQLite so they
auto-increment), and every constraint has a stable name.

Before the split into one history per service (issue 19) this was part of the single history's revision
0001, unchanged: a database at 0001 is stamped at this revision (hanul_core/migrate.py).

Revision ID: generator_0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "generator_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "video_jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=True),
        sa.Column("seconds", sa.String(length=16), nullable=False),
        sa.Column("size", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("remixed_from_id", sa.String(length=64), nullable=True),
        sa.Column("fair_rank", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["video_jobs.id"],
            name=op.f("fk_video_jobs_parent_id_video_jobs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["remixed_from_id"],
            ["video_jobs.id"],
            name=op.f("fk_video_jobs_remixed_from_id_video_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_jobs")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_video_jobs_idempotency_key")),
    )
    op.create_index("ix_video_jobs_created_at", "video_jobs", ["created_at"])
    op.create_index("ix_video_jobs_claim_order", "video_jobs", ["status", "fair_rank", "created_at"])
    op.create_index("ix_video_jobs_status_lease_expires_at", "video_jobs", ["status", "lease_expires_at"])
    op.create_index("ix_video_jobs_user_status", "video_jobs", ["user", "status"])

    op.create_table(
        "video_artifacts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["video_jobs.id"],
            name=op.f("fk_video_artifacts_job_id_video_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_artifacts")),
        sa.UniqueConstraint("job_id", "kind", name="uq_video_artifacts_job_id_kind"),
    )
    op.create_index(op.f("ix_video_artifacts_job_id"), "video_artifacts", ["job_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_video_artifacts_job_id"), table_name="video_artifacts")
    op.drop_table("video_artifacts")
    op.drop_index("ix_video_jobs_user_status", table_name="video_jobs")
    op.drop_index("ix_video_jobs_status_lease_expires_at", table_name="video_jobs")
    op.drop_index("ix_video_jobs_claim_order", table_name="video_jobs")
    op.drop_index("ix_video_jobs_created_at", table_name="video_jobs")
    op.drop_table("video_jobs")
