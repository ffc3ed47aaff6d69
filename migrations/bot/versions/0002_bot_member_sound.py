"""A member's sound default: whether their clips come with sound when the model renders it (issue 21).

Existing members keep sound on (the server default), as the model gives it.

Revision ID: bot_0002
Revises: bot_0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "bot_0002"
down_revision: str | None = "bot_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("sound", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("sound")
