"""The generator run inside another program: the one door through which the bot starts it in its own process
(with no GENERATOR_URL). Every other part of the bot reaches the generator over HTTP only (import-linter's
contracts in pyproject.toml hold both to that)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from generator.settings import GeneratorSettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from generator.service import RunningGenerator

__all__ = ["GeneratorSettings", "migrate_generator_tables", "start_generator"]


async def start_generator(settings: GeneratorSettings) -> RunningGenerator:
    """Start the generator (it migrates its own tables, then serves on settings.host:port) in this event loop."""
    # Imported here: the service pulls in the media and model libraries, which a bot whose generator runs
    # elsewhere never needs.
    from generator.service import start_generator as start

    return await start(settings)


async def migrate_generator_tables(engine: AsyncEngine) -> None:
    """Upgrade the generator's migration history on this database (what its start does first)."""
    from generator.models import MIGRATIONS
    from hanul_core.migrate import upgrade_database

    await upgrade_database(engine, MIGRATIONS)
