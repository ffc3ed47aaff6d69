"""The composition root of the Discord front end: the runtime (database, in-process generator, director, studio)
is opened, the delivery built on it, the cogs loaded by name with these services, the commands synced; all of it
closed with the bot. Nothing imports this module back: cogs reach their services through `bot.cogs._common`."""

from __future__ import annotations

import asyncio
import logging
import sys

import discord
from discord.ext import commands

from bot.cogs import EXTENSIONS
from bot.cogs._common import Services, on_app_command_error
from bot.cogs._translate import CatalogTranslator
from bot.delivery import Deliveries
from bot.retry import Backoff
from bot.runtime import GeneratorSettings, Runtime, StartupError, open_runtime
from bot.settings import BotSettings
from bot.studio import Studio

log = logging.getLogger(__name__)

INTENT_HELP = """\
hanul: Discord refused the message content intent.
  Enable it in the developer portal (Applications → your app → Bot → Privileged Gateway Intents →
  Message Content Intent), or set DISCORD_MESSAGE_CONTENT=false (thread refinement and reply-to-extend
  then stop working; /video, buttons and "Extend this video" keep working)."""


def build_intents(settings: BotSettings) -> discord.Intents:
    """Guilds and messages; message content only when configured (it is privileged)."""
    intents = discord.Intents.default()
    intents.message_content = settings.message_content_intent
    intents.members = False
    intents.presences = False
    return intents


class HanulBot(commands.Bot):
    """The Discord bot: builds `services` (the studio, the delivery that posts finished clips) once the runtime
    is open, then loads the cogs, which take what they need from them."""

    def __init__(
        self,
        settings: BotSettings,
        *,
        generator_settings: GeneratorSettings | None = None,
        poll_interval: float = 1.0,
        backoff: Backoff | None = None,  # None: HANUL_RETRY_MINUTES
        runtime: Runtime | None = None,  # opened already (run_bot does, before connecting); closed with the bot
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=build_intents(settings),
            help_command=None,
            # Titles, prompts and thread messages carry member text: by default nothing in a bot message pings
            # anyone (not everyone, no role, no user); the clip's caption names its requester explicitly.
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.settings = settings
        self.generator_settings = generator_settings
        self.poll_interval = poll_interval
        self.backoff = backoff
        self.runtime: Runtime | None = runtime
        self.deliveries: Deliveries | None = None
        self.services: Services | None = None  # read by the cogs' `setup` and the clip buttons (`services_of`)

    @property
    def studio(self) -> Studio:
        assert self.runtime is not None, "the bot has not started"
        return self.runtime.studio

    async def setup_hook(self) -> None:
        if self.runtime is None:
            self.runtime = await open_runtime(self.settings, self.generator_settings, backoff=self.backoff)
        deliveries = Deliveries(
            self,
            self.runtime.studio,
            poll_interval=self.poll_interval,
            generator_problem=self.runtime.generator_problem,
        )
        self.deliveries = deliveries
        self.services = Services(self.settings, self.runtime.studio, deliveries.start)
        self.tree.on_error = on_app_command_error  # type: ignore[method-assign]
        await self.tree.set_translator(CatalogTranslator())  # command names in each catalog's language
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        await self.sync_commands()
        # Channels are addressed by id, so unfinished work resumes before the gateway is even up.
        await deliveries.resume_all()

    async def sync_commands(self) -> None:
        """Guild commands appear at once (DISCORD_GUILD_IDS); global ones can take a while the first time."""
        if self.settings.discord_guild_ids:
            for guild_id in self.settings.discord_guild_ids:
                guild = discord.Object(id=guild_id)
                self.tree.copy_global_to(guild=guild)
                synced = await self.tree.sync(guild=guild)
                log.info("synced %d commands to guild %s", len(synced), guild_id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d global commands", len(synced))

    async def close(self) -> None:
        if self.deliveries is not None:
            await self.deliveries.close()
        if self.runtime is not None:
            await self.runtime.close()
            self.runtime = None
        await super().close()


def run_bot(settings: BotSettings) -> int:
    """Open the database and the generator (a problem there is said before Discord is contacted), then run the
    bot until interrupted; returns the process exit code."""
    assert settings.discord_token is not None
    token = settings.discord_token.get_secret_value()

    async def main() -> int:
        try:
            runtime = await open_runtime(settings)
        except StartupError as error:
            print(f"hanul: {error}", file=sys.stderr)
            return 2
        async with HanulBot(settings, runtime=runtime) as bot:
            await bot.start(token)
        return 0

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0
    except discord.LoginFailure:
        print(
            "hanul: Discord rejected DISCORD_TOKEN; copy the bot token again from the developer portal.",
            file=sys.stderr,
        )
        return 2
    except discord.PrivilegedIntentsRequired:
        print(INTENT_HELP, file=sys.stderr)
        return 2
