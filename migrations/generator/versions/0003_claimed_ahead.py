"""Jobs claimed ahead (while their worker's previous job rendered): a worker lost while such a job only waited for
its turn (its inputs loaded) is not held against it (`video_jobs.claimed_ahead`, `video_jobs.unblamed_attempts`).

Revision ID: generator_0003_claimed_ahead
Revises: generator_0002_files_characters
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "generator_0003_claimed_ahead"
down_revision: str | None = "generator_0002_files_characters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE ADD/DROP COLUMN, never a batch (copy-and-move) table: on SQLite, dropping the old `video_jobs`
# would delete every `video_artifacts` row through its ON DELETE CASCADE (tests/foundation caught it).


def upgrade() -> None:
    op.add_column("video_jobs", sa.Column("claimed_ahead", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("video_jobs", sa.Column("unblamed_attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("video_jobs", "unblamed_attempts")
    op.drop_column("video_jobs", "claimed_ahead")
