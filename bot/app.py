"""`python -m bot`: the discord.py client — intents, cogs, persistent buttons, command sync, and the runtime
(database, in-process generator, director) opened in `setup_hook` and closed with the bot."""

from __future__ import annotations

import asyncio
import logging
import sys

import discord
from discord.ext import commands

from bot.cogs.library import LibraryCog
from bot.cogs.member import MemberCog
from bot.cogs.video import VideoCog
from bot.delivery import Deliveries
from bot.limits import Refusal
from bot.retry import Backoff
from bot.runtime import GeneratorSettings, Runtime, StartupError, open_runtime
from bot.settings import BotSettings
from bot.studio import Studio
from bot.ui import DYNAMIC_ITEMS

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
    """The Discord bot. `actions` handles the persistent buttons; `deliveries` posts finished clips."""

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
        self.deliveries = Deliveries(self)
        self.actions: VideoCog | None = None

    @property
    def studio(self) -> Studio:
        assert self.runtime is not None, "the bot has not started"
        return self.runtime.studio

    async def setup_hook(self) -> None:
        if self.runtime is None:
            self.runtime = await open_runtime(self.settings, self.generator_settings, backoff=self.backoff)
        self.tree.on_error = self.on_app_command_error  # type: ignore[method-assign]
        self.actions = VideoCog(self)
        await self.add_cog(self.actions)
        await self.add_cog(LibraryCog(self))
        await self.add_cog(MemberCog(self))
        self.add_dynamic_items(*DYNAMIC_ITEMS)
        await self.sync_commands()
        # Channels are addressed by id, so unfinished work resumes before the gateway is even up.
        await self.deliveries.resume_all()

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: discord.app_commands.AppCommandError
    ) -> None:
        """A command that failed before its own handler ran (an option Discord sent that does not convert, a
        check) gets an ephemeral answer, never silence; only real surprises are logged as errors."""
        from bot.cogs._common import answer, refusal_text

        locale = str(interaction.locale.value)
        if isinstance(error, discord.app_commands.TransformerError):
            log.warning("interaction %s: option %r did not convert: %s", interaction.id, error.value, error)
            refusal = Refusal("bad_option", {"option": getattr(error.transformer, "_error_display_name", "?")})
            content = refusal_text(refusal, locale)
        else:
            log.error("interaction %s failed", interaction.id, exc_info=error)
            from bot.i18n import text

            content = text("error.unexpected", locale, id=interaction.id)
        try:
            await answer(interaction, content)
        except discord.HTTPException as failure:
            log.warning("could not answer interaction %s: %s", interaction.id, failure)

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
