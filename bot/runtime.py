"""Everything a front end needs, opened and closed in one place: the database, the generator (in-process when
no GENERATOR_URL is set), the director, the video client, and the studio built from them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.director import Director
from bot.limits import Limits
from bot.retry import Backoff
from bot.settings import BotSettings
from bot.store import Store
from bot.studio import Studio
from bot.videos import VideoClient
from generator.db import create_engine, upgrade_database
from generator.settings import GeneratorSettings, load_settings

log = logging.getLogger(__name__)


def generator_settings_for(settings: BotSettings) -> GeneratorSettings:
    """The in-process generator's settings: its own variables from the environment, and the bot's data folder
    and database so that one box keeps one database."""
    overrides: dict[str, Any] = {"HANUL_DATA_DIR": str(settings.data_dir), "LOG_LEVEL": settings.log_level}
    if settings.database_url:
        overrides["DATABASE_URL"] = settings.database_url
    if settings.generator_api_key is not None:
        overrides["GENERATOR_API_KEY"] = settings.generator_api_key.get_secret_value()
    return load_settings(GeneratorSettings, **overrides)


@dataclass
class Runtime:
    """The open resources behind a front end; `close` releases them in reverse order."""

    settings: BotSettings
    engine: AsyncEngine
    store: Store
    studio: Studio
    videos: VideoClient
    director: Director
    generator: Any | None = None  # generator.service.RunningGenerator when started in-process

    async def close(self) -> None:
        await self.videos.close()
        await self.director.close()
        if self.generator is not None:
            await self.generator.stop()
        await self.engine.dispose()


async def open_runtime(
    settings: BotSettings, generator_settings: GeneratorSettings | None = None, *, backoff: Backoff | None = None
) -> Runtime:
    """Migrate the database, reach (or start) the generator, and build the studio (`backoff`: how it waits for
    an unreachable generator or Discord; by default HANUL_RETRY_MINUTES' worth)."""
    backoff = backoff or Backoff(give_up_after=settings.retry_minutes * 60)
    engine = create_engine(settings.resolved_database_url)
    generator = None
    try:
        await upgrade_database(engine)
        base_url = settings.generator_url
        if not base_url:
            from generator.service import start_generator

            generator = await start_generator(generator_settings or generator_settings_for(settings))
            base_url = generator.base_url
            log.info("started the generator in-process at %s", base_url)
        api_key = settings.generator_api_key.get_secret_value() if settings.generator_api_key else None
        videos = VideoClient(base_url, api_key, timeout=settings.generator_timeout)
        director = Director.from_settings(settings)
        store = Store(engine)
        studio = Studio(settings, store, Limits(settings, store), director, videos, backoff=backoff)
    except BaseException:
        if generator is not None:
            await generator.stop()
        await engine.dispose()
        raise
    return Runtime(settings, engine, store, studio, videos, director, generator)
