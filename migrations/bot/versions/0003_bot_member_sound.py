"""A member's sound default: whether their clips come with sound when the model renders it (issue 21).

Existing members keep sound on (the server default), as the model gives it.

Revision ID: bot_0003
Revises: bot_0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "bot_0003"
down_revision: str | None = "bot_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, never a batch copy: SQLite would drop and rebuild `users`, and with foreign keys on that
    # DROP cascades to every conversation and generation of every member.
    op.add_column("users", sa.Column("sound", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    op.drop_column("users", "sound")
