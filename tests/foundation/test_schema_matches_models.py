from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import bot.models  # noqa: F401
import generator.models  # noqa: F401
from hanul_core.db import Base


async def test_migrations_produce_exactly_the_models_schema(engine):
    """A model change without a reviewed revision fails here."""

    def diff(connection):
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []
