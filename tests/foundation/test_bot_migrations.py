"""The bot's later revisions, each up and down on a database with rows in it (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

import bot.models
from hanul_core.db import create_engine
from hanul_core.migrate import downgrade_database, upgrade_database
from tests.support.migrations import schema_differences, table_names

HISTORY = bot.models.MIGRATIONS
WHEN = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


async def columns(engine, table: str) -> set[str]:
    async with engine.connect() as connection:
        return {c["name"] for c in await connection.run_sync(lambda c: inspect(c).get_columns(table))}


async def test_guild_settings_and_clip_looks_migrate_up_and_down_keeping_rows(database_url):
    engine = create_engine(database_url)
    try:
        await upgrade_database(engine, HISTORY, "bot_0001")
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO users (id, name, enhance, created_at, updated_at) VALUES (7, 'mina', true, :t, :t)"),
                {"t": WHEN},
            )
            await connection.execute(
                text(
                    "INSERT INTO generations (user_id, kind, request_text, expanded_prompt, llm_written, params, "
                    "status, progress, created_at) VALUES (7, 'generate', 'a cat', 'A cat.', false, '{}', 'posted', "
                    "100, :t)"
                ),
                {"t": WHEN},
            )
        assert "guild_settings" not in await table_names(engine)

        await upgrade_database(engine, HISTORY, "bot_0002")
        assert "guild_settings" in await table_names(engine)
        assert {"verdict", "description"} <= await columns(engine, "generations")
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO guild_settings (guild_id, overrides, updated_at) VALUES (:g, :o, :t)"),
                {"g": 2**62, "o": '{"daily_quota": 3}', "t": WHEN},
            )
            row = (await connection.execute(text("SELECT request_text, verdict, description FROM generations"))).one()
        assert tuple(row) == ("a cat", None, None)  # clips from before had no look

        await downgrade_database(engine, HISTORY, "bot_0001")
        assert "guild_settings" not in await table_names(engine)
        assert not {"verdict", "description"} & await columns(engine, "generations")
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT request_text FROM generations"))).scalar_one() == "a cat"

        await upgrade_database(engine, HISTORY)
        assert await schema_differences(engine, bot.models.Base.metadata) == []
    finally:
        await engine.dispose()
