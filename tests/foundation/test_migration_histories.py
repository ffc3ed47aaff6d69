"""Each service migrates its own history; a database made before the split into two histories carries over."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

import bot.models
import generator.models
from bot.models import Conversation, ConversationMessage, Generation, User
from bot.runtime import migrate_database
from generator.models import VideoArtifact, VideoJob
from hanul_core.db import create_engine, session_factory
from hanul_core.migrate import MigrationError, upgrade_database
from tests.support.hanul import bot_settings
from tests.support.migrations import HISTORIES, schema_differences, table_names

# The single history's revision 0001 as it was before the split (a copy of the file, unchanged), and an env.py.
PRE_SPLIT_MIGRATIONS = Path(__file__).parent / "pre_split_migrations"
SNOWFLAKE = 1_234_567_890_123_456_789


# What the single history's 0001 made; later revisions of either history add tables and columns to these.
PRE_SPLIT_TABLES = {"users", "conversations", "messages", "generations", "video_jobs", "video_artifacts"}


async def build_pre_split_database(engine: AsyncEngine) -> None:
    """Every table, made by the old single history's revision 0001, its version in `alembic_version`."""
    from alembic import command
    from alembic.config import Config

    def upgrade(connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(PRE_SPLIT_MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


async def fill_every_table(engine: AsyncEngine) -> None:
    created = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    async with session_factory(engine).begin() as session:
        # Through the model's column types, without the columns later revisions add (bot_0002–0004: verdicts,
        # users.sound, generations.mode; generator_0003: claimed ahead): what a database made before the split had.
        users = await as_made_then(session, User)
        await session.execute(
            insert(users), [dict(id=SNOWFLAKE, name="민지", locale="ko", default_seconds=6.0, created_at=created)]
        )
        await session.execute(insert(users), [dict(id=0, name="console", enhance=False)])
        jobs = await as_made_then(session, VideoJob)  # without generator_0003's claimed-ahead columns
        await session.execute(
            insert(jobs),
            [dict(id="video_parent", model="tiny", prompt="a cat", seconds="4", size="64x64", seed=2**40)],
        )
        await session.execute(
            insert(jobs),
            [
                dict(
                    id="video_child",
                    kind="extend",
                    model="tiny",
                    prompt="the cat jumps",
                    seconds="8",
                    size="64x64",
                    seed=7,
                    parent_id="video_parent",
                    params={"num_frames": 33, "fps": 8},
                    user="discord:42",
                    idempotency_key="discord:42:key",
                    status="completed",
                    progress=100,
                )
            ],
        )
        session.add(VideoArtifact(job_id="video_parent", kind="video", path="p/video.mp4", content_type="video/mp4"))
        session.add(VideoArtifact(job_id="video_parent", kind="thumbnail", path="p/t.webp", content_type="image/webp"))
        conversation = Conversation(user_id=SNOWFLAKE, guild_id=SNOWFLAKE, channel_id=1, thread_id=SNOWFLAKE + 1)
        session.add(conversation)
        await session.flush()
        session.add(ConversationMessage(conversation_id=conversation.id, role="user", content="밤으로 바꿔줘"))
        session.add(ConversationMessage(conversation_id=conversation.id, role="assistant", content="At night…"))
        generations = await as_made_then(session, Generation)
        first = await session.scalar(
            insert(generations).returning(generations.c.id),
            dict(
                user_id=SNOWFLAKE,
                conversation_id=conversation.id,
                request_text="비 오는 밤 도쿄 거리를 걷는 고양이",
                expanded_prompt="A cat walks a rainy Tokyo street at night…",
                params={"seconds": 5, "aspect": "16:9"},
                seed=99,
                video_id="video_parent",
                status="posted",
            ),
        )
        await session.execute(
            insert(generations), [dict(user_id=SNOWFLAKE, parent_id=first, kind="extend", request_text="it jumps")]
        )


async def as_made_then(session, model) -> Table:
    """`model`'s table with only the columns the database has now (the ones later revisions add left out)."""
    table = model.__tablename__
    existing = await session.run_sync(lambda s: {c["name"] for c in inspect(s.connection()).get_columns(table)})
    return Table(table, MetaData(), *(c._copy() for c in model.__table__.columns if c.name in existing))


async def every_row(engine: AsyncEngine) -> dict[str, list[tuple]]:
    """Each table's rows, in key order, as the database returns them."""
    async with engine.connect() as connection:
        rows = {}
        for table in sorted(PRE_SPLIT_TABLES):
            result = await connection.execute(text(f'SELECT * FROM "{table}" ORDER BY 1'))
            rows[table] = [dict(row._mapping) for row in result]
    return rows


def as_before(rows: dict[str, list[dict]], before: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """`rows` with only the columns `before` had: what later revisions add (with their defaults) is not a loss."""
    return {
        table: [{key: row[key] for key in old} for row, old in zip(rows[table], before[table], strict=False)]
        + rows[table][len(before[table]) :]
        for table in rows
    }


def heads() -> dict[str, list[str]]:
    """Each history's newest revision, by its version table."""
    from alembic.script import ScriptDirectory

    found = {}
    for history, _ in HISTORIES.values():
        script = ScriptDirectory(str(history.directory))
        found[history.version_table] = [script.get_current_head()]
    return found


async def versions(engine: AsyncEngine) -> dict[str, list[str]]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: inspect(c).get_table_names())
        found = {}
        for name in sorted(n for n in names if n.startswith("alembic_version")):
            found[name] = list((await connection.execute(text(f"SELECT version_num FROM {name}"))).scalars())
    return found


@pytest.mark.parametrize("first", ["generator", "bot"])
async def test_a_database_made_before_the_split_upgrades_without_loss(database_url, first):
    """Whichever service starts first (a generator-only host, or a bot whose generator is elsewhere) carries the
    single history over to both; no row is lost and the other service then finds nothing to do."""
    engine = create_engine(database_url)
    try:
        await build_pre_split_database(engine)
        assert await versions(engine) == {"alembic_version": ["0001"]}
        await fill_every_table(engine)
        before = await every_row(engine)
        assert all(before.values()), before

        history, _ = HISTORIES[first]
        await upgrade_database(engine, history)
        # The single history's 0001 carries over as each history's first revision; the first service goes on to
        # its newest.
        carried = {"alembic_version_bot": ["bot_0001"], "alembic_version_generator": ["generator_0001"]}
        assert await versions(engine) == carried | {history.version_table: heads()[history.version_table]}
        assert as_before(await every_row(engine), before) == before

        for history, metadata in HISTORIES.values():  # each service's start, the first one's again too
            await upgrade_database(engine, history)
            assert await schema_differences(engine, metadata) == []
        assert await versions(engine) == heads()
        assert as_before(await every_row(engine), before) == before
        async with session_factory(engine)() as session:
            user = await session.get(User, SNOWFLAKE)
            assert user.name == "민지" and user.created_at == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
            assert (await session.get(VideoJob, "video_parent")).seed == 2**40
            extension = await session.scalar(select(Generation).where(Generation.kind == "extend"))
            assert extension.parent_id is not None
    finally:
        await engine.dispose()


async def test_an_unknown_revision_of_the_single_history_is_refused(sqlite_url):
    engine = create_engine(sqlite_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            await connection.execute(text("INSERT INTO alembic_version VALUES ('0002')"))
        with pytest.raises(MigrationError, match="0002"):
            await upgrade_database(engine, generator.models.MIGRATIONS)
        assert await versions(engine) == {"alembic_version": ["0002"]}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("generator_url", ["", "http://generator.example:8189/v1"])
async def test_bot_migrate_upgrades_its_tables_and_its_in_process_generators(tmp_path, generator_url):
    """`python -m bot --migrate`: the bot's history; the generator's too when it runs beside the bot."""
    settings = bot_settings(tmp_path / "data", GENERATOR_URL=generator_url)
    await migrate_database(settings)
    engine = create_engine(settings.resolved_database_url)
    try:
        tables = await table_names(engine)
    finally:
        await engine.dispose()
    expected = set(bot.models.Base.metadata.tables) | {bot.models.MIGRATIONS.version_table}
    if not generator_url:
        expected |= set(generator.models.Base.metadata.tables) | {generator.models.MIGRATIONS.version_table}
    assert tables == expected
