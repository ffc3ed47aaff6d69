"""Small translations shared by the cogs: who is asking, where the answer goes, and how a refusal is said."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import discord

from bot.i18n import text
from bot.limits import Refusal, Requester
from bot.studio import Destination

if TYPE_CHECKING:
    from bot.app import HanulBot

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # Discord's per-file cap without boosts (2025 onwards)


def requester_of(user: discord.abc.User, channel: object, locale: str | None) -> Requester:
    """The asking member as plain data; roles and admin rights come from the guild member when there is one."""
    roles: tuple[int, ...] = ()
    server_admin = False
    if isinstance(user, discord.Member):
        roles = tuple(role.id for role in user.roles if not role.is_default())
        permissions = user.guild_permissions
        server_admin = permissions.administrator or permissions.manage_guild
    guild_id = getattr(getattr(channel, "guild", None), "id", None)
    parent_id = getattr(channel, "parent_id", None) if isinstance(channel, discord.Thread) else None
    return Requester(
        user_id=user.id,
        name=user.display_name,
        locale=locale,
        guild_id=guild_id,
        channel_id=getattr(channel, "id", None),
        parent_channel_id=parent_id,
        role_ids=roles,
        server_admin=server_admin,
    )


def interaction_requester(interaction: discord.Interaction) -> Requester:
    """The asking member; Discord resolves their permissions in this channel into the interaction itself."""
    requester = requester_of(interaction.user, interaction.channel, str(interaction.locale.value))
    permissions = interaction.permissions
    return dataclasses.replace(
        requester,
        # The guild may not be cached (a user-installed app); the id still decides the allow-lists.
        guild_id=requester.guild_id if requester.guild_id is not None else interaction.guild_id,
        server_admin=interaction.guild_id is not None and (permissions.administrator or permissions.manage_guild),
    )


def upload_limit(interaction: discord.Interaction | None, guild: discord.Guild | None) -> int:
    """The channel's real per-file upload limit."""
    if interaction is not None and interaction.filesize_limit:
        return interaction.filesize_limit
    if guild is not None:
        return guild.filesize_limit
    return DEFAULT_UPLOAD_LIMIT


def destination_for(channel: discord.abc.Messageable | object, limit: int) -> Destination:
    """Where a result goes: a thread (and its parent channel), a channel, or a DM."""
    guild = getattr(channel, "guild", None)
    if isinstance(channel, discord.Thread):
        return Destination(guild.id if guild else None, channel.parent_id, channel.id, limit)
    return Destination(guild.id if guild else None, getattr(channel, "id", None), None, limit)


def refusal_text(refusal: Refusal, locale: str | None) -> str:
    return "⚠️ " + text(f"refusal.{refusal.code}", locale, **{"detail": "", "id": "?", **refusal.values})


async def member_locale(bot: HanulBot, user_id: int, fallback: str | None) -> str | None:
    """The language to answer a member in: their /settings choice, else the Discord locale."""
    member = await bot.studio.store.member(user_id)
    return member.language or fallback or member.locale


async def answer(interaction: discord.Interaction, content: str, *, view: discord.ui.View | None = None) -> None:
    """An ephemeral answer, whether or not the interaction was deferred already."""
    kwargs: dict[str, object] = {"ephemeral": True}
    if view is not None:
        kwargs["view"] = view
    if interaction.response.is_done():
        await interaction.followup.send(content, **kwargs)  # type: ignore[arg-type]
    else:
        await interaction.response.send_message(content, **kwargs)  # type: ignore[arg-type]


async def refuse(interaction: discord.Interaction, refusal: Refusal, locale: str | None) -> None:
    """Every refusal is ephemeral and says why and what to do."""
    await answer(interaction, refusal_text(refusal, locale))
