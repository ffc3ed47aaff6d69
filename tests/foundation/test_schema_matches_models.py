import pytest

from hanul_core.db import create_engine
from hanul_core.migrate import upgrade_database
from tests.support.migrations import HISTORIES, schema_differences, table_names


@pytest.mark.parametrize("service", sorted(HISTORIES))
async def test_migrations_produce_exactly_the_models_schema(engine, service):
    """A model change without a reviewed revision in its service's history fails here."""
    _, metadata = HISTORIES[service]
    assert await schema_differences(engine, metadata) == []


@pytest.mark.parametrize("service", sorted(HISTORIES))
async def test_each_history_alone_creates_exactly_its_services_tables(database_url, service):
    """A generator-only host has no bot tables (and a bot whose generator runs elsewhere no generator tables)."""
    history, metadata = HISTORIES[service]
    engine = create_engine(database_url)
    try:
        await upgrade_database(engine, history)
        assert await table_names(engine) == set(metadata.tables) | {history.version_table}
        assert await schema_differences(engine, metadata) == []
    finally:
        await engine.dispose()
