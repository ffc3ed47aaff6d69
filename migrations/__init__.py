"""Alembic migrations for every Hanul table (one history for the bot's and the generator's tables)."""
