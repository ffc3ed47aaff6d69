"""The Alembic environment of the single history before the split, cut to what the carry-over test needs: it runs
the old revision 0001 (kept here unchanged) on the connection the test hands over, versions in `alembic_version`."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
