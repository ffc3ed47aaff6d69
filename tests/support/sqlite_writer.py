"""A migrated SQLite database with a second, plain connection that can hold the write lock from outside, as the
generator's claims and lease renewals (or another process) do mid-transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from hanul_core.db import create_engine
from tests.support.migrations import upgrade_both


@asynccontextmanager
async def sqlite_with_outside_writer(folder: Path) -> AsyncIterator[tuple[AsyncEngine, sqlite3.Connection]]:
    """(engine, writer): `writer.execute("BEGIN IMMEDIATE")` takes the lock the engine's writers wait for."""
    path = folder / "hanul.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade_both(engine)
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        yield engine, writer
    finally:
        writer.close()
        await engine.dispose()
