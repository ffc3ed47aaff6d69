"""A member's own defaults (`/settings`) and `/help`."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs._common import answer, interaction_locale, interaction_requester, services_of
from bot.cogs._translate import described, english, keyed
from bot.guild_config import GuildConfig
from bot.i18n import LANGUAGES, text
from bot.settings import BotSettings
from bot.store import UNCHANGED, MemberSettings
from bot.studio import Studio
from bot.videos import ASPECT_SIZES

CLEAR_WORDS = ("none", "-", "clear", "off", "없음")
# Each language is offered under its own name, whatever the member's Discord language.
LANGUAGE_CHOICES = [app_commands.Choice(name=keyed("choice.language.auto"), value="auto")] + [
    app_commands.Choice(name=text("language.name", language), value=language) for language in LANGUAGES
]


def daily_quota(quota: int, locale: str | None) -> str:
    """A daily quota as a limit reads it ("10", Korean "10개"; none: unlimited)."""
    return text("quota.count", locale, count=quota) if quota else text("quota.unlimited", locale)


def help_text(server: GuildConfig, locale: str | None) -> str:
    """`/help`: what Hanul does, and this server's limits."""
    return text(
        "help.text",
        locale,
        queued=server.max_queued_per_user,
        cooldown=text("help.cooldown", locale, seconds=f"{server.cooldown_seconds:g}")
        if server.cooldown_seconds > 0
        else "",
        quota=daily_quota(server.daily_quota, locale),
    )


def describe(member: MemberSettings, server: GuildConfig, locale: str | None) -> str:
    """A member's defaults; where they chose none, the server's (its /config over the operator's)."""
    none = text("settings.none", locale)
    return text(
        "settings.show",
        locale,
        seconds=f"{member.seconds or server.default_seconds:g}",
        aspect=member.aspect or server.default_aspect,
        style=member.style or server.default_style or none,
        enhance=text("settings.on" if member.enhance else "settings.off", locale),
        language=text("language.name", member.language) if member.language else text("settings.auto", locale),
        sound=text("settings.on" if member.sound else "settings.off", locale),
    )


class MemberCog(commands.Cog, name="Member"):
    """Per-member defaults and help; a refusal raised here is answered by the tree's error handler."""

    def __init__(self, settings: BotSettings, studio: Studio) -> None:
        self.settings = settings
        self.studio = studio

    @app_commands.command(name=english("command.settings.name"), description=english("command.settings.description"))
    @app_commands.describe(**described("settings", "seconds", "aspect", "style", "enhance", "language", "sound"))
    @app_commands.choices(
        aspect=[app_commands.Choice(name=a, value=a) for a in ASPECT_SIZES], language=LANGUAGE_CHOICES
    )
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def settings_command(
        self,
        interaction: discord.Interaction,
        seconds: app_commands.Range[float, 1, 60] | None = None,
        aspect: str | None = None,
        style: app_commands.Range[str, 1, 200] | None = None,
        enhance: bool | None = None,
        language: str | None = None,
        sound: bool | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        changed = any(value is not None for value in (seconds, aspect, style, enhance, language, sound))
        member = await self.studio.change_settings(
            interaction_requester(interaction),
            seconds=seconds if seconds is not None else UNCHANGED,
            aspect=aspect if aspect is not None else UNCHANGED,
            style=UNCHANGED if style is None else (None if style.strip().lower() in CLEAR_WORDS else style.strip()),
            enhance=enhance if enhance is not None else UNCHANGED,
            language=UNCHANGED if language is None else (None if language == "auto" else language),
            sound=sound if sound is not None else UNCHANGED,
        )
        locale = await self.studio.reply_locale(member.user_id, interaction.guild_id, str(interaction.locale.value))
        lines = [text("settings.saved", locale)] if changed else []
        lines.append(describe(member, await self.studio.config(interaction.guild_id), locale))
        await answer(interaction, "\n".join(lines))

    @app_commands.command(name=english("command.help.name"), description=english("command.help.description"))
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def help(self, interaction: discord.Interaction) -> None:
        locale = await interaction_locale(interaction)
        await answer(interaction, help_text(await self.studio.config(interaction.guild_id), locale))


async def setup(bot: commands.Bot) -> None:
    """Loaded by name (`bot.load_extension("bot.cogs.member")`)."""
    services = services_of(bot)
    await bot.add_cog(MemberCog(services.settings, services.studio))
