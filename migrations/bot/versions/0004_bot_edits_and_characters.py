"""Edits and characters (issue 18): how each generation was made (`generations.mode`: rendered from its prompt, or
its parent clip edited keeping the motion), and the characters members made (`member_characters`: the generator's
own `characters` table, with their reference frames, may share the database).

Existing generations were all rendered: the column's server default fills them.

Revision ID: bot_0004
Revises: bot_0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "bot_0004"
down_revision: str | None = "bot_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("generations") as batch:
        batch.add_column(sa.Column("mode", sa.String(length=16), server_default="render", nullable=False))

    op.create_table(
        "member_characters",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("guild_id", sa.BigInteger(), nullable=True),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("generator_id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("described_by", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_member_characters_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_characters")),
        sa.UniqueConstraint("user_id", "name", name="uq_member_characters_user_id_name"),
    )
    op.create_index("ix_member_characters_guild_id_shared", "member_characters", ["guild_id", "shared"])


def downgrade() -> None:
    op.drop_index("ix_member_characters_guild_id_shared", table_name="member_characters")
    op.drop_table("member_characters")
    with op.batch_alter_table("generations") as batch:
        batch.drop_column("mode")
