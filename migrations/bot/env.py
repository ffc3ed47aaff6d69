"""Alembic environment of the bot's history: its tables only, its revisions in `alembic_version_bot`."""

from bot.models import MIGRATIONS, Base
from hanul_core.migrate import run_history

run_history(Base.metadata, MIGRATIONS)
