"""Both services' tables on one database, as a box running the bot beside its in-process generator has them."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.ext.asyncio import AsyncEngine

import bot.models
import generator.models
from hanul_core.migrate import MigrationHistory, upgrade_database

# Each history with the metadata of the tables it creates.
HISTORIES: dict[str, tuple[MigrationHistory, MetaData]] = {
    "generator": (generator.models.MIGRATIONS, generator.models.Base.metadata),
    "bot": (bot.models.MIGRATIONS, bot.models.Base.metadata),
}
GENERATOR_TABLES = {"video_jobs", "video_artifacts", "files", "characters"}
BOT_TABLES = {"users", "conversations", "messages", "generations", "guild_settings", "member_characters"}


async def upgrade_both(engine: AsyncEngine) -> None:
    """Each service's history, as each service does at its start."""
    for history, _ in HISTORIES.values():
        await upgrade_database(engine, history)


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def schema_differences(engine: AsyncEngine, metadata: MetaData) -> list:
    """What Alembic's autogenerate finds between `metadata`'s tables and the database (the other service's tables
    and the version tables left aside): empty when the migrations made exactly what the models say."""

    def diff(connection) -> list:
        def include_name(name, kind, _parents) -> bool:
            return kind != "table" or name in metadata.tables

        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": include_name})
        return compare_metadata(context, metadata)

    async with engine.connect() as connection:
        return await connection.run_sync(diff)
