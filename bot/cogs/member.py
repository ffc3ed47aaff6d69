"""A member's own defaults (`/settings`) and `/help`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs._common import answer, member_locale, refusal_text
from bot.i18n import LANGUAGES, text
from bot.limits import Refusal
from bot.store import UNCHANGED, MemberSettings
from bot.videos import ASPECT_SIZES

if TYPE_CHECKING:
    from bot.app import HanulBot

CLEAR_WORDS = ("none", "-", "clear", "off", "없음")
LANGUAGE_CHOICES = [app_commands.Choice(name="auto (Discord)", value="auto")] + [
    app_commands.Choice(name=language, value=language) for language in LANGUAGES
]


def describe(member: MemberSettings, settings_seconds: float, locale: str | None) -> str:
    none = text("settings.none", locale)
    return text(
        "settings.show",
        locale,
        seconds=f"{member.seconds or settings_seconds:g}",
        aspect=member.aspect or "16:9",
        style=member.style or none,
        enhance=text("settings.on" if member.enhance else "settings.off", locale),
        language=member.language or text("settings.auto", locale),
    )


class MemberCog(commands.Cog, name="Member"):
    """Per-member defaults and help."""

    def __init__(self, bot: HanulBot) -> None:
        self.bot = bot

    @app_commands.command(name="settings", description="Your defaults for new videos (no options: show them)")
    @app_commands.describe(
        seconds="Default length in seconds",
        aspect="Default frame shape",
        style="Default style ('none' clears it)",
        enhance="Let the director expand your prompts",
        language="Language Hanul answers you in",
    )
    @app_commands.choices(
        aspect=[app_commands.Choice(name=a, value=a) for a in ASPECT_SIZES], language=LANGUAGE_CHOICES
    )
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def settings(
        self,
        interaction: discord.Interaction,
        seconds: app_commands.Range[float, 1, 60] | None = None,
        aspect: str | None = None,
        style: app_commands.Range[str, 1, 200] | None = None,
        enhance: bool | None = None,
        language: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        store = self.bot.studio.store
        limit = self.bot.settings.max_seconds
        await store.ensure_member(interaction.user.id, interaction.user.display_name, str(interaction.locale.value))
        if seconds is not None and seconds > limit:
            locale = await member_locale(self.bot, interaction.user.id, str(interaction.locale.value))
            refusal = Refusal("seconds", {"seconds": f"{seconds:g}", "max": f"{limit:g}"})
            await answer(interaction, refusal_text(refusal, locale))
            return
        changed = any(value is not None for value in (seconds, aspect, style, enhance, language))
        member = await store.update_member(
            interaction.user.id,
            seconds=seconds if seconds is not None else UNCHANGED,
            aspect=aspect if aspect is not None else UNCHANGED,
            style=UNCHANGED if style is None else (None if style.strip().lower() in CLEAR_WORDS else style.strip()),
            enhance=enhance if enhance is not None else UNCHANGED,
            language=UNCHANGED if language is None else (None if language == "auto" else language),
        )
        locale = member.language or str(interaction.locale.value)
        lines = [text("settings.saved", locale)] if changed else []
        lines.append(describe(member, self.bot.settings.default_seconds, locale))
        await answer(interaction, "\n".join(lines))

    @app_commands.command(name="help", description="How to use Hanul")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def help(self, interaction: discord.Interaction) -> None:
        locale = await member_locale(self.bot, interaction.user.id, str(interaction.locale.value))
        settings = self.bot.settings
        quota = settings.daily_quota or text("quota.unlimited", locale)
        await answer(
            interaction,
            text(
                "help.text",
                locale,
                queued=settings.max_queued_per_user,
                cooldown=text("help.cooldown", locale, seconds=f"{settings.cooldown_seconds:g}")
                if settings.cooldown_seconds > 0
                else "",
                quota=quota,
            ),
        )
