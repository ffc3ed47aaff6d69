"""`/config`: a server's own settings for Hanul, for members who manage the server (Discord hides the command from
others by default, and every use is checked again here: a server may have changed who sees it). Each subcommand
shows the settings in force afterwards; `/config reset` puts a field back to the operator's default."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs._common import answer, interaction_locale, interaction_requester, services_of
from bot.guild_config import FIELDS, GuildConfig
from bot.i18n import LANGUAGES, text
from bot.settings import OUTPUT_POLICIES
from bot.studio import Studio
from bot.videos import ASPECT_SIZES

POLICY_CHOICES = [app_commands.Choice(name=policy.replace("_", " "), value=policy) for policy in OUTPUT_POLICIES]
LANGUAGE_CHOICES = [app_commands.Choice(name="auto (each member's Discord language)", value="auto")] + [
    app_commands.Choice(name=language, value=language) for language in LANGUAGES
]
ACTION_CHOICES = [app_commands.Choice(name=action, value=action) for action in ("add", "remove")]
FIELD_CHOICES = [app_commands.Choice(name="everything", value="all")] + [
    app_commands.Choice(name=name, value=name) for name in FIELDS
]


def describe(config: GuildConfig, vision: str, locale: str | None) -> str:
    """The settings in force in a server, as its admins read them (✎: chosen by the server itself)."""

    def mark(*fields: str) -> str:
        return " ✎" if set(fields) & config.overridden else ""

    channels = ", ".join(f"<#{c}>" for c in config.allowed_channel_ids) or text("config.everywhere", locale)
    everyone = text("config.everyone", locale)  # also @everyone on the list, whose id is the server's
    roles = ", ".join(everyone if r == config.guild_id else f"<@&{r}>" for r in config.allowed_role_ids) or everyone
    limits = text(
        "config.limits",
        locale,
        queued=config.max_queued_per_user,
        quota=text("quota.count", locale, count=config.daily_quota)
        if config.daily_quota
        else text("quota.unlimited", locale),
        cooldown=f"{config.cooldown_seconds:g}",
    )
    lengths = text(
        "config.lengths",
        locale,
        longest=f"{config.max_seconds:g}",
        seconds=f"{config.default_seconds:g}",
        aspect=config.default_aspect,
        style=config.default_style or text("settings.none", locale),
    )
    language = text("language.name", config.language) if config.language else text("config.language.auto", locale)
    return "\n".join(
        [
            text("config.title", locale),
            text("config.channels", locale, value=channels) + mark("allowed_channel_ids"),
            text("config.roles", locale, value=roles) + mark("allowed_role_ids"),
            limits + mark("max_queued_per_user", "daily_quota", "cooldown_seconds"),
            lengths + mark("max_seconds", "default_seconds", "default_aspect", "default_style"),
            text("config.output", locale, policy=text(f"config.policy.{config.output_policy}", locale))
            + mark("output_policy"),
            text("config.language", locale, value=language) + mark("language"),
            text(f"config.vision.{vision}", locale),
        ]
    )


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class ConfigCog(commands.GroupCog, group_name="config", group_description="Hanul's settings for this server"):
    """The server's settings; a refusal raised here is answered by the tree's error handler."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        super().__init__()

    async def _apply(
        self, interaction: discord.Interaction, changes: dict[str, Any], reset: tuple[str, ...] = ()
    ) -> None:
        """Check who asks, save, and show the settings now in force (nothing to save: only show them)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        requester = interaction_requester(interaction)
        guild_id = interaction.guild_id
        config = await self.studio.configure(requester, guild_id, changes, reset=reset)  # no changes: only shown
        locale = await interaction_locale(interaction)
        lines = [text("config.saved", locale)] if changes or reset else []
        lines.append(describe(config, self.studio.director.vision, locale))
        await answer(interaction, "\n".join(lines))

    @app_commands.command(name="show", description="Show Hanul's settings for this server")
    async def show(self, interaction: discord.Interaction) -> None:
        await self._apply(interaction, {})

    @app_commands.command(name="limits", description="Limits per member in this server")
    @app_commands.describe(
        queue="Videos one member may have in progress at once",
        daily_quota="Videos per member per day (0: unlimited, where the operator allows it)",
        cooldown="Seconds between two new requests of one member",
        longest="Longest clip a member may ask for, in seconds",
    )
    async def limits(
        self,
        interaction: discord.Interaction,
        queue: app_commands.Range[int, 1, 100] | None = None,
        daily_quota: app_commands.Range[int, 0, 10_000] | None = None,
        cooldown: app_commands.Range[float, 0, 86_400] | None = None,
        longest: app_commands.Range[float, 1, 60] | None = None,
    ) -> None:
        changes = {
            "max_queued_per_user": queue,
            "daily_quota": daily_quota,
            "cooldown_seconds": cooldown,
            "max_seconds": longest,
        }
        await self._apply(interaction, {k: v for k, v in changes.items() if v is not None})

    @app_commands.command(name="defaults", description="Defaults for new videos in this server")
    @app_commands.describe(
        seconds="Default length in seconds", aspect="Default frame shape", style="Default visual style"
    )
    @app_commands.choices(aspect=[app_commands.Choice(name=a, value=a) for a in ASPECT_SIZES])
    async def defaults(
        self,
        interaction: discord.Interaction,
        seconds: app_commands.Range[float, 1, 60] | None = None,
        aspect: str | None = None,
        style: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        changes = {"default_seconds": seconds, "default_aspect": aspect, "default_style": style}
        await self._apply(interaction, {k: v for k, v in changes.items() if v is not None})

    @app_commands.command(name="output", description="What happens to a clip the LLM's look says is for adults")
    @app_commands.describe(policy="Post it, post it as a spoiler, only in age-restricted channels, or withhold it")
    @app_commands.choices(policy=POLICY_CHOICES)
    async def output(self, interaction: discord.Interaction, policy: str) -> None:
        await self._apply(interaction, {"output_policy": policy})

    @app_commands.command(name="language", description="The language Hanul answers in here")
    @app_commands.describe(language="auto: each member's Discord language (a member's /settings still wins)")
    @app_commands.choices(language=LANGUAGE_CHOICES)
    async def language(self, interaction: discord.Interaction, language: str) -> None:
        if language == "auto":
            await self._apply(interaction, {}, reset=("language",))
        else:
            await self._apply(interaction, {"language": language})

    @app_commands.command(name="channel", description="Allow or stop Hanul in a channel (none listed: everywhere)")
    @app_commands.choices(action=ACTION_CHOICES)
    async def channel(self, interaction: discord.Interaction, action: str, channel: discord.TextChannel) -> None:
        config = await self.studio.config(interaction.guild_id)
        await self._apply(interaction, {"allowed_channel_ids": _edited(config.allowed_channel_ids, action, channel.id)})

    @app_commands.command(name="role", description="Allow a role to make videos (none listed: everyone)")
    @app_commands.choices(action=ACTION_CHOICES)
    async def role(self, interaction: discord.Interaction, action: str, role: discord.Role) -> None:
        config = await self.studio.config(interaction.guild_id)
        await self._apply(interaction, {"allowed_role_ids": _edited(config.allowed_role_ids, action, role.id)})

    @app_commands.command(name="reset", description="Put a setting (or all of them) back to the operator's default")
    @app_commands.choices(setting=FIELD_CHOICES)
    async def reset(self, interaction: discord.Interaction, setting: str) -> None:
        await self._apply(interaction, {}, reset=FIELDS if setting == "all" else (setting,))


def _edited(current: tuple[int, ...], action: str, item: int) -> list[int]:
    if action == "add":
        return [*current, item] if item not in current else list(current)
    return [i for i in current if i != item]


async def setup(bot: commands.Bot) -> None:
    """Loaded by name (`bot.load_extension("bot.cogs.config")`)."""
    await bot.add_cog(ConfigCog(services_of(bot).studio))
