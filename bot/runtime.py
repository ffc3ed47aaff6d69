"""Everything a front end needs, opened and closed in one place: the database, the generator (in-process when
no GENERATOR_URL is set), the director, the video client, and the studio built from them."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.director import Director
from bot.limits import Limits
from bot.metrics import BotMetrics, serve_metrics
from bot.models import MIGRATIONS
from bot.retry import Backoff
from bot.settings import BotSettings
from bot.store import Store
from bot.studio import Studio
from bot.videos import VideoClient
from generator.embedded import GeneratorSettings, migrate_generator_tables, start_generator
from hanul_core.db import create_engine
from hanul_core.migrate import upgrade_database
from hanul_core.settings import SettingsError, load_settings

log = logging.getLogger(__name__)


class StartupError(Exception):
    """Hanul cannot start; the message says what is wrong and what to do, for a person, without a traceback."""


def generator_settings_for(settings: BotSettings) -> GeneratorSettings:
    """The in-process generator's settings: its own variables from the environment, and the bot's data folder
    and database so that one box keeps one database. Raises SettingsError (naming the variable) when one of
    them is wrong, as `python -m generator` does."""
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
    metrics: BotMetrics = field(default_factory=BotMetrics)
    metrics_server: web.AppRunner | None = None  # HANUL_METRICS_PORT's /metrics, when set

    async def generator_problem(self) -> str | None:
        """Why the in-process generator cannot render anything (its model failed to load), or None: then an
        unanswered request is worth waiting for. A generator elsewhere (GENERATOR_URL) is not asked."""
        if self.generator is None:
            return None
        try:
            health = await self.generator.service.health()
        except Exception:
            log.warning("could not ask the in-process generator how it is", exc_info=True)
            return None
        if health.get("status") != "error":
            return None
        errors = [str(w["error"]) for w in health.get("workers", []) if isinstance(w, dict) and w.get("error")]
        return errors[0] if errors else str(health.get("error") or "the generator reports an error")

    async def close(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.cleanup()
        await self.videos.close()
        await self.director.close()
        if self.generator is not None:
            await self.generator.stop()
        await self.engine.dispose()


async def open_runtime(
    settings: BotSettings, generator_settings: GeneratorSettings | None = None, *, backoff: Backoff | None = None
) -> Runtime:
    """Migrate the database, reach (or start) the generator, and build the studio (`backoff`: how it waits for
    an unreachable generator or Discord; by default HANUL_RETRY_MINUTES' worth). A generator that cannot start
    raises StartupError."""
    backoff = backoff or Backoff(give_up_after=settings.retry_minutes * 60)
    if not settings.generator_url and generator_settings is None:
        try:
            generator_settings = generator_settings_for(settings)
        except SettingsError as error:
            raise StartupError(str(error)) from None
    engine = create_engine(settings.resolved_database_url)
    generator = None
    metrics = BotMetrics()
    metrics_server = None
    try:
        await upgrade_database(engine, MIGRATIONS)  # the bot's tables; the generator migrates its own at start
        base_url = settings.generator_url
        if not base_url:
            assert generator_settings is not None
            generator = await _start_generator(generator_settings)
            base_url = generator.base_url
            log.info("started the generator in-process at %s", base_url)
        api_key = settings.generator_api_key.get_secret_value() if settings.generator_api_key else None
        videos = VideoClient(base_url, api_key, timeout=settings.generator_timeout)
        director = Director.from_settings(settings, metrics=metrics)
        store = Store(engine)
        studio = Studio(settings, store, Limits(settings, store), director, videos, backoff=backoff, metrics=metrics)
        if settings.metrics_port is not None:
            metrics_server = await _serve_metrics(metrics, settings)
    except BaseException:
        if metrics_server is not None:
            await metrics_server.cleanup()
        if generator is not None:
            await generator.stop()
        await engine.dispose()
        raise
    return Runtime(settings, engine, store, studio, videos, director, generator, metrics, metrics_server)


async def _serve_metrics(metrics: BotMetrics, settings: BotSettings) -> web.AppRunner:
    """HANUL_METRICS_PORT's server, its failure to listen said as a StartupError."""
    try:
        return await serve_metrics(metrics, settings.metrics_host, settings.metrics_port or 0)
    except OSError as error:
        raise StartupError(
            f"the bot's metrics cannot listen on {settings.metrics_host}:{settings.metrics_port} "
            f"({error.strerror or error}). Set HANUL_METRICS_PORT to a free port, or leave it empty to turn them off."
        ) from None


async def _start_generator(settings: GeneratorSettings) -> Any:
    """Start the generator in this process, turning the ways it fails to start into StartupError."""
    try:
        return await start_generator(settings)
    except OSError as error:
        if error.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        reasons = {errno.EADDRINUSE: "the port is already in use", errno.EACCES: "permission denied"}
        reason = reasons.get(error.errno or 0, error.strerror or str(error))
        raise StartupError(
            f"the video generator cannot listen on {settings.host}:{settings.port} ({reason}). Set GENERATOR_PORT "
            "to a free port (0 picks one), or stop the program using it."
        ) from None
    except StartupError:
        raise
    except Exception as error:
        log.exception("the in-process generator failed to start")
        raise StartupError(f"the video generator could not start: {one_line(error)}") from None


async def migrate_database(settings: BotSettings) -> None:
    """`python -m bot --migrate`: upgrade the bot's tables, and the generator's when it runs in this process (no
    GENERATOR_URL: it shares this database); a generator elsewhere upgrades its own."""
    engine = create_engine(settings.resolved_database_url)
    try:
        await upgrade_database(engine, MIGRATIONS)
        if not settings.generator_url:
            await migrate_generator_tables(engine)
    finally:
        await engine.dispose()


def one_line(error: BaseException) -> str:
    """An exception as one short line for a person: its message, else its type."""
    words = " ".join(str(error).split())
    return (words[:300] + ("…" if len(words) > 300 else "")) or type(error).__name__
