"""Migration histories: each service has its own Alembic history under `migrations/<service>/` with its own version
table, and upgrades only that one at start (a generator-only host has no bot tables and needs no bot code).

A database made before the split has one history for every table (version table `alembic_version`); the first
upgrade of either service carries it over (`_carry_over_the_single_history`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from hanul_core.db import create_engine, ensure_wal_mode

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_LOCK = 0x48414E4D  # PostgreSQL advisory lock id ("HANM") held while migrating
# Alembic's `context` is one global per process: two upgrades interleaved on an event loop (or in two threads)
# would run inside each other's migration context. One at a time per process; across processes the database's
# own locks serialise them (PostgreSQL's advisory lock, SQLite's BEGIN IMMEDIATE).
_IN_PROCESS_MIGRATION = threading.Lock()

# Before the split one history (version table `alembic_version`) created every table; its only revision, 0001,
# created exactly what the first revision of each history creates now. A database at 0001 is carried over by
# stamping both histories at their first revision and dropping the old version table.
_SINGLE_HISTORY_TABLE = "alembic_version"
_SINGLE_HISTORY_REVISION = "0001"
_FIRST_REVISIONS = {"generator": "generator_0001", "bot": "bot_0001"}


class MigrationError(Exception):
    """The database's migration state is one this version of Hanul cannot upgrade; the message says why."""


@dataclass(frozen=True)
class MigrationHistory:
    """One service's Alembic history: its scripts in `migrations/<name>/`, its revisions in its own version table."""

    name: str

    @property
    def directory(self) -> Path:
        return MIGRATIONS_DIR / self.name

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.name}"


def alembic_config(url: str, history: MigrationHistory) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(history.directory))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@asynccontextmanager
async def _one_migration_at_a_time() -> AsyncIterator[None]:
    # Polled, not awaited in a thread: a cancelled waiter must never end up holding the lock.
    while not _IN_PROCESS_MIGRATION.acquire(blocking=False):  # noqa: ASYNC110 (a thread lock: no Event to wait on)
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        _IN_PROCESS_MIGRATION.release()


async def _migrate(
    engine: AsyncEngine, history: MigrationHistory, step: Callable[[Any, str], None], revision: str
) -> None:
    """Run one Alembic command (`command.upgrade` or `command.downgrade`) of `history` on this engine's database:
    one at a time in this process, and on PostgreSQL one at a time across the fleet."""

    def _run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            # Several generators of a fleet may start together: one migrates, the others wait, then find it done.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        _carry_over_the_single_history(connection)
        config = alembic_config(engine.url.render_as_string(hide_password=False), history)
        config.attributes["connection"] = connection
        step(config, revision)

    async with _one_migration_at_a_time(), engine.begin() as connection:
        await connection.run_sync(_run)


def _carry_over_the_single_history(connection: Connection) -> None:
    """A database made before the split: stamp each history at its first revision, drop the old version table."""
    if not inspect(connection).has_table(_SINGLE_HISTORY_TABLE):
        return
    revisions = connection.execute(text(f"SELECT version_num FROM {_SINGLE_HISTORY_TABLE}")).scalars().all()
    if revisions not in ([], [_SINGLE_HISTORY_REVISION]):
        raise MigrationError(
            f"this database's migration history is at {', '.join(revisions)}, which this version of Hanul does not "
            f"know (it knows {_SINGLE_HISTORY_REVISION}); run the Hanul version that made it, or a newer one"
        )
    if revisions:
        from alembic.migration import MigrationContext
        from alembic.script import ScriptDirectory

        for name, first in _FIRST_REVISIONS.items():
            history = MigrationHistory(name)
            context = MigrationContext.configure(connection, opts={"version_table": history.version_table})
            context.stamp(ScriptDirectory(str(history.directory)), first)
        log.info("carried the database's single migration history over to one history per service")
    connection.execute(text(f"DROP TABLE {_SINGLE_HISTORY_TABLE}"))


async def upgrade_database(engine: AsyncEngine, history: MigrationHistory, revision: str = "head") -> None:
    """Run `history`'s migrations up to `revision` on this engine's database (each service, for its own history,
    at start)."""
    from alembic import command

    await _migrate(engine, history, command.upgrade, revision)
    await ensure_wal_mode(engine)
    url = engine.url.render_as_string(hide_password=True)
    log.info("the %s tables of the database at %s are migrated to %s", history.name, url, revision)


async def downgrade_database(engine: AsyncEngine, history: MigrationHistory, revision: str) -> None:
    """Run `history`'s migrations down to `revision` (`base`: none of its tables left)."""
    from alembic import command

    await _migrate(engine, history, command.downgrade, revision)


def run_history(metadata: MetaData, history: MigrationHistory) -> None:
    """The body of a history's `env.py`: migrate on the connection a service hands over (or on the configured URL
    from Alembic's own command line), comparing only `metadata`'s tables and keeping versions in its own table."""
    from alembic import context

    def include_name(name: str | None, kind: str, _parents: dict[str, Any]) -> bool:
        # The other service's tables (and its version table) share the database: they are not this history's.
        return kind != "table" or name in metadata.tables

    def configure(**options: Any) -> None:
        context.configure(
            target_metadata=metadata,
            version_table=history.version_table,
            include_name=include_name,
            compare_type=True,
            **options,
        )

    def run(connection: Connection) -> None:
        # SQLite alters tables by copying them.
        configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()

    url = context.config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    asyncio.run(_run_with_new_engine(url, run))


async def _run_with_new_engine(url: str, run: Callable[[Connection], None]) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()
