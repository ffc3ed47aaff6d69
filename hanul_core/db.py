"""Database plumbing both services use: the column types and naming rules, engine creation, sessions, and the
checks that a SQLite file and its folder can be written. (Each service's tables and its declarative base are its
own; `hanul_core.migrate` runs their migration histories.)"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, TypeDecorator, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)

_SQLITE_BUSY_SECONDS = 30  # how long a SQLite connection waits for another's write lock
_READ_ONLY = "hanul_read_only"  # execution option of read-only sessions

# Stable constraint names, so Alembic revisions can drop and alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# 64-bit surrogate keys; SQLite only auto-increments a column declared exactly INTEGER.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


# What each service's declarative base maps Python annotations to.
TYPE_ANNOTATION_MAP: dict[Any, Any] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def new_metadata() -> MetaData:
    """A fresh MetaData with Hanul's constraint names, for one service's declarative base (each service has its
    own tables and its own migration history, so its own metadata)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class StorageError(Exception):
    """A folder or database file Hanul must write cannot be written; the message names it and what to do."""


def ensure_writable_folder(folder: Path, setting: str) -> None:
    """Create `folder` if needed and prove it takes a file, or raise StorageError naming it and `setting`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".hanul-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise StorageError(
            f"cannot write to the folder {folder}: {error.strerror or error}.\n"
            f"Set {setting} to a place this user can write, or give this user write access to it."
        ) from None


def _ensure_writable_sqlite(path: Path) -> None:
    """The SQLite file's folder takes new files (its journal) and the file, when it exists, opens for writing."""
    setting = "HANUL_DATA_DIR (which holds hanul.db unless DATABASE_URL names another file) or DATABASE_URL"
    ensure_writable_folder(path.parent, setting)
    try:
        if path.exists():
            with path.open("r+b"):
                pass
    except OSError as error:
        raise StorageError(
            f"cannot write to the database file {path}: {error.strerror or error}.\n"
            f"Give this user write access to it, or set {setting} to a place this user can write."
        ) from None


def ensure_writable_database(url: str) -> None:
    """For a SQLite file: create its folder and check the folder and the file can be written (StorageError)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and _is_sqlite_file(parsed):
        _ensure_writable_sqlite(Path(parsed.database))


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout, and its folder is created (StorageError
    when the folder or the file cannot be written)."""
    parsed = make_url(url)
    ensure_writable_database(url)
    if parsed.get_backend_name() == "sqlite":
        kwargs.setdefault("connect_args", {"timeout": _SQLITE_BUSY_SECONDS})
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_async_engine(url, **kwargs)


def _is_sqlite_file(url: URL) -> bool:
    return bool(url.database) and url.database != ":memory:"


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling defers BEGIN and breaks SELECT-then-UPDATE atomicity;
        # take control of BEGIN ourselves (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_SECONDS * 1000}")
        _try_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            # A reader needs no lock: in WAL mode it sees the last commit while a writer works.
            connection.exec_driver_sql("BEGIN")
        else:
            # IMMEDIATE takes the write lock up front, so two claimers never both read the same free job.
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _try_wal(cursor: Any) -> bool:
    """Switch the file to WAL (it stays so for every later connection); True when it is in WAL mode.

    SQLite refuses the switch at once, without waiting out the busy timeout, while another connection holds a
    write lock (waiting could deadlock). That happens when services start together on a new file: the one
    migrating holds the lock. The switch is then left to `ensure_wal_mode`, which retries it after migrating.
    """
    cursor.execute("PRAGMA journal_mode")
    if cursor.fetchone()[0] == "wal":
        return True
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        return cursor.fetchone()[0] == "wal"
    except sqlite3.OperationalError as error:
        if "locked" not in str(error) and "busy" not in str(error):
            raise
        log.debug("the SQLite file is busy; WAL mode is switched on later")
        return False


async def ensure_wal_mode(engine: AsyncEngine) -> None:
    """On a SQLite file: wait until it is in WAL mode (a switch refused while another process migrated is retried
    until it takes); other databases are left as they are."""
    if engine.dialect.name != "sqlite" or not _is_sqlite_file(engine.url):
        return

    def attempt(connection: Connection) -> bool:
        cursor = connection.connection.dbapi_connection.cursor()  # bare cursor: no BEGIN before the PRAGMA
        try:
            return _try_wal(cursor)
        finally:
            cursor.close()

    try:
        async with asyncio.timeout(_SQLITE_BUSY_SECONDS), engine.connect() as connection:
            while not await connection.run_sync(attempt):  # noqa: ASYNC110 (polls another process's lock)
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"could not switch the SQLite database to WAL mode in {_SQLITE_BUSY_SECONDS} s") from None


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def read_only_session_factory(engine: AsyncEngine) -> async_sessionmaker:
    """Sessions that only read. On SQLite they do not queue for the write lock behind claims and lease renewals
    (a write in one would fail with "database is locked" instead of waiting); elsewhere they are plain sessions."""
    return async_sessionmaker(engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False)
