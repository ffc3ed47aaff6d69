import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from bot.models import Conversation, ConversationMessage, Generation, User
from generator.models import VideoArtifact, VideoJob
from hanul_core.db import create_engine, session_factory
from hanul_core.migrate import downgrade_database, upgrade_database
from tests.support.migrations import BOT_TABLES, GENERATOR_TABLES, HISTORIES, table_names, upgrade_both

ALL_TABLES = BOT_TABLES | GENERATOR_TABLES
VERSION_TABLES = {"alembic_version_generator", "alembic_version_bot"}


async def test_upgrade_creates_every_table_and_downgrade_removes_them(database_url):
    engine = create_engine(database_url)
    try:
        await upgrade_both(engine)
        assert ALL_TABLES <= await table_names(engine)
        await upgrade_both(engine)  # running it again at the next start is harmless
        for history, _ in HISTORIES.values():
            await downgrade_database(engine, history, "base")
        assert await table_names(engine) <= VERSION_TABLES
        await upgrade_both(engine)
        assert ALL_TABLES <= await table_names(engine)
    finally:
        await engine.dispose()


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_engine):
    async with sqlite_engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1


async def test_sqlite_file_and_folder_are_created(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'new' / 'folder' / 'hanul.db'}")
    await upgrade_both(engine)
    await engine.dispose()
    assert (tmp_path / "new" / "folder" / "hanul.db").exists()


async def test_video_job_round_trips_with_artifacts(engine):
    sessions = session_factory(engine)
    created = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    async with sessions.begin() as session:
        parent = VideoJob(
            id="video_parent", model="tiny", prompt="a cat", seconds="4", size="64x64", seed=2**40, created_at=created
        )
        child = VideoJob(
            id="video_child",
            kind="extend",
            model="tiny",
            prompt="the cat jumps",
            seconds="8",
            size="64x64",
            seed=7,
            parent_id="video_parent",
            params={"num_frames": 33, "fps": 8, "guidance_scale": 1.0},
            user="discord:42",
        )
        session.add_all([parent, child])
        session.add(VideoArtifact(job_id="video_parent", kind="video", path="p/video.mp4", content_type="video/mp4"))
    async with sessions() as session:
        loaded = await session.get(VideoJob, "video_child")
        assert loaded.params == {"num_frames": 33, "fps": 8, "guidance_scale": 1.0}
        assert loaded.parent_id == "video_parent"
        assert loaded.status == "queued" and loaded.progress == 0
        assert loaded.created_at.tzinfo is not None
        parent = await session.get(VideoJob, "video_parent")
        assert parent.created_at == created
        assert parent.seed == 2**40
        assert parent.artifact("video").path == "p/video.mp4"


async def test_one_artifact_of_each_kind_per_job(engine):
    sessions = session_factory(engine)
    async with sessions.begin() as session:
        session.add(VideoJob(id="video_a", model="tiny", prompt="x", seconds="4", size="64x64", seed=1))
        session.add(VideoArtifact(job_id="video_a", kind="video", path="a.mp4", content_type="video/mp4"))
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            session.add(VideoArtifact(job_id="video_a", kind="video", path="b.mp4", content_type="video/mp4"))


async def test_bot_history_round_trips(engine):
    sessions = session_factory(engine)
    snowflake = 1_234_567_890_123_456_789
    async with sessions.begin() as session:
        session.add(User(id=snowflake, name="민지", locale="ko", default_seconds=6.0))
        await session.flush()
        conversation = Conversation(user_id=snowflake, guild_id=snowflake, channel_id=1, thread_id=snowflake + 1)
        session.add(conversation)
        await session.flush()
        session.add(ConversationMessage(conversation_id=conversation.id, role="user", content="밤으로 바꿔줘"))
        first = Generation(
            user_id=snowflake,
            conversation_id=conversation.id,
            request_text="비 오는 밤 도쿄 거리를 걷는 고양이",
            expanded_prompt="A cat walks a rainy Tokyo street at night…",
            params={"seconds": 5, "aspect": "16:9"},
            seed=99,
            video_id="video_x",
        )
        session.add(first)
        await session.flush()
        session.add(Generation(user_id=snowflake, parent_id=first.id, kind="extend", request_text="it jumps"))
    async with sessions() as session:
        user = await session.get(User, snowflake)
        assert user.name == "민지" and user.enhance is True
        generations = (await session.scalars(select(Generation).order_by(Generation.id))).all()
        assert [g.kind for g in generations] == ["generate", "extend"]
        assert generations[1].parent_id == generations[0].id
        assert generations[0].params == {"seconds": 5, "aspect": "16:9"}
        conversation = await session.scalar(select(Conversation).where(Conversation.thread_id == snowflake + 1))
        await session.refresh(conversation, ["messages"])
        assert [m.content for m in conversation.messages] == ["밤으로 바꿔줘"]
        assert generations[0].created_at > datetime.now(UTC) - timedelta(minutes=1)


async def test_foreign_keys_are_enforced(engine):
    sessions = session_factory(engine)
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            session.add(Generation(user_id=404, request_text="nobody"))


async def test_services_starting_together_migrate_once(database_url):
    """A fleet's processes all run `upgrade head` at start (each service its own history); on PostgreSQL an advisory
    lock serialises them, and upgrades started together inside one process (Alembic's context is one per process)
    take turns."""
    engines = [create_engine(database_url) for _ in range(4)]
    histories = [history for history, _ in HISTORIES.values()]
    try:
        await asyncio.gather(*(upgrade_database(e, histories[i % 2]) for i, e in enumerate(engines)))
        assert ALL_TABLES <= await table_names(engines[0])
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_new_sqlite_file_locked_by_another_process_still_migrates_and_ends_in_wal_mode(tmp_path):
    """Processes starting together on a new file race to switch it to WAL; the loser's switch is refused at
    once ("database is locked", no busy wait) while the winner writes. The loser must wait, not crash."""
    path = tmp_path / "hanul.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # the other process: still in rollback-journal mode, holding the write lock
    other.execute("CREATE TABLE other_process_was_here (x)")
    asyncio.get_running_loop().call_later(0.5, other.execute, "COMMIT")
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade_both(engine)
        assert ALL_TABLES <= await table_names(engine)
    finally:
        await engine.dispose()
        other.close()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
