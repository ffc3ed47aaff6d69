"""Each server's own settings (/config), and the LLM's look at each finished clip (its verdict and one line
describing it: the attachment's alt text, shown in /history).

Reviewed by hand: `guild_settings` holds only what a server set (a JSON object of field -> value), keyed by the
guild's snowflake; the two new generation columns are nullable (clips made before this revision had no look).

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
    op.create_table(
        "guild_settings",
        sa.Column("guild_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("guild_id", name=op.f("pk_guild_settings")),
    )
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("verdict", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("description", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("description")
        batch.drop_column("verdict")
    op.drop_table("guild_settings")
