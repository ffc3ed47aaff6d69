"""Fixtures every test area shares: isolated settings, fresh migrated databases (SQLite, and PostgreSQL when
HANUL_TEST_POSTGRES_URL names a server, as CI's does)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hanul_core.db import create_engine
from tests.support.hub_cache import hub_cache  # noqa: F401  (fixture: an empty Hugging Face cache for the test)
from tests.support.migrations import upgrade_both

POSTGRES_URL = os.environ.get("HANUL_TEST_POSTGRES_URL", "")

# Variables a developer's shell or .env could set that would change what the tests see.
_HANUL_VARIABLES = [
    name
    for name in os.environ
    if name.startswith(("HANUL_", "GENERATOR_", "LLM_", "DISCORD_")) or name in ("DATABASE_URL", "LOG_LEVEL")
]


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the developer's .env or environment; each runs in its own folder."""
    for name in _HANUL_VARIABLES:
        if name != "HANUL_TEST_POSTGRES_URL":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(autouse=True)
async def tasks_end_with_their_test() -> AsyncIterator[None]:
    """Tasks a test leaves running are cancelled when it ends (after its other fixtures). One that will not end
    fails the test with its stack, instead of hanging the event loop's close with nothing to show for it."""
    yield
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    for task in left:
        task.cancel()
    if not left:
        return
    _, stuck = await asyncio.wait(left, timeout=10)
    if stuck:
        report = io.StringIO()
        for task in stuck:
            print(repr(task), file=report)
            task.print_stack(file=report)
        sys.stderr.write(report.getvalue())  # the event loop's close may still hang on them: say it first
        pytest.fail(f"{len(stuck)} task(s) did not end when cancelled:\n{report.getvalue()}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'hanul.db'}"


async def _create_postgres_database() -> str:
    """A brand-new database on the test server, so tests never see each other's rows."""
    import asyncpg

    url = make_url(POSTGRES_URL)
    name = f"hanul_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """An empty database URL, once for SQLite and once for PostgreSQL (skipped when no server is given)."""
    if request.param == "sqlite":
        return sqlite_url
    if not POSTGRES_URL:
        pytest.skip("HANUL_TEST_POSTGRES_URL is not set (scripts/test-postgres.sh starts a server)")
    return await _create_postgres_database()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A database on each backend, both services' histories migrated."""
    engine = create_engine(database_url)
    await upgrade_both(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """A SQLite database with both services' histories migrated, for tests that need only one backend."""
    engine = create_engine(sqlite_url)
    await upgrade_both(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def postgres_url() -> str:
    if not POSTGRES_URL:
        pytest.skip("HANUL_TEST_POSTGRES_URL is not set (scripts/test-postgres.sh starts a server)")
    return await _create_postgres_database()
