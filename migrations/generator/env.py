"""Alembic environment of the generator's history: its tables only, its revisions in `alembic_version_generator`."""

from generator.models import MIGRATIONS, Base
from hanul_core.migrate import run_history

run_history(Base.metadata, MIGRATIONS)
