"""What a member has made and what is running: `/history`, `/queue`, `/cancel`."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs._clips import PagerView, RerunButton
from bot.cogs._common import (
    MESSAGE_LIMIT,
    answer,
    discord_text,
    fit,
    interaction_locale,
    interaction_requester,
    services_of,
)
from bot.cogs._translate import described, english
from bot.i18n import Quoted, status_word, template, text
from bot.store import GenerationRecord
from bot.studio import Studio
from bot.studio.access import DELETED

PAGE_SIZE = 5  # one re-run button per line, five to a row


def clip_link(record: GenerationRecord) -> str | None:
    """A jump link to the posted clip, when there is one."""
    if record.result_message_id is None:
        return None
    place = record.thread_id or record.channel_id
    return f"https://discord.com/channels/{record.guild_id or '@me'}/{place}/{record.result_message_id}"


def history_line(record: GenerationRecord, locale: str | None, limit: int = MESSAGE_LIMIT) -> str:
    """One clip in /history, in at most `limit` characters (its title and the LLM's description are cut to fit)."""
    link = clip_link(record)
    when = f"<t:{int(record.created_at.timestamp())}:R>" if record.created_at else ""
    return fit(
        template("history.line", locale) + _look(record, locale),
        limit,
        id=record.id,
        when=when,
        status=status_word(record.status, locale),
        title=Quoted(record.display_title),
        link=f" · {link}" if link else "",
        description=Quoted(record.description or ""),
    )


def _look(record: GenerationRecord, locale: str | None) -> str:
    """What the LLM saw in the clip (its alt text), or that it was not posted: a sentence to fill in."""
    if record.verdict == "withhold":
        return template("history.withheld", locale)
    return template("history.look", locale) if record.description else ""


class LibraryCog(commands.Cog, name="Library"):
    """History, queue and cancel; a refusal raised here is answered by the tree's error handler."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    @app_commands.command(name=english("command.history.name"), description=english("command.history.description"))
    @app_commands.describe(**described("history", "member"))
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def history(self, interaction: discord.Interaction, member: discord.User | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        owner = member or interaction.user
        locale = await interaction_locale(interaction)
        content, view = await self._page(interaction, owner, 0, locale)
        await answer(interaction, content, view=view)

    async def _page(
        self, interaction: discord.Interaction, owner: discord.abc.User, page: int, locale: str | None
    ) -> tuple[str, discord.ui.View | None]:
        shown = await self.studio.history_page(interaction.user.id, owner.id, interaction.guild_id, page, PAGE_SIZE)
        if shown is None:
            return text("history.empty", locale), None
        page, pages, records = shown.page, shown.pages, shown.records
        head = discord_text("history.title", locale, member=Quoted(owner.display_name))
        foot = text("history.page", locale, page=page + 1, pages=pages)
        each = (MESSAGE_LIMIT - len(head) - len(foot)) // len(records) - 1  # a line's share, with its newline
        lines = [head, *(history_line(record, locale, each) for record in records), foot]

        async def turn(click: discord.Interaction, to: int) -> None:
            content, view = await self._page(click, owner, to, locale)
            await click.response.edit_message(content=content, view=view)

        view = PagerView(interaction.user.id, turn, page, pages, locale)
        for record in records:
            # Another member's deleted clip cannot be made again (`Access.visible`): no button that would fail.
            if record.expanded_prompt and (record.error != DELETED or owner.id == interaction.user.id):
                view.add_item(RerunButton(record.id, locale))
        return "\n".join(lines), view

    @app_commands.command(name=english("command.queue.name"), description=english("command.queue.description"))
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def queue(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        locale = await interaction_locale(interaction)
        records = await self.studio.open_requests_seen_by(interaction_requester(interaction), interaction.guild_id)
        if not records:
            await answer(interaction, text("queue.empty", locale))
            return
        lines = [text("queue.title", locale)]
        for shown, record in enumerate(records[:20]):
            line = discord_text(
                "queue.line",
                locale,
                id=record.id,
                member=f"<@{record.user_id}>",
                status=status_word(record.status, locale),
                progress=record.progress,
                title=Quoted(record.display_title),
            )
            more = text("queue.more", locale, count=len(records) - shown)
            if len("\n".join([*lines, line, more])) > MESSAGE_LIMIT:  # a busy server's queue: what fits, and a count
                lines.append(more)
                break
            lines.append(line)
        else:
            if len(records) > 20:
                lines.append(text("queue.more", locale, count=len(records) - 20))
        await answer(interaction, "\n".join(lines))

    @app_commands.command(name=english("command.cancel.name"), description=english("command.cancel.description"))
    @app_commands.describe(**described("cancel", "video"))
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def cancel(self, interaction: discord.Interaction, video: int | None = None) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        record = await self.studio.cancel(interaction_requester(interaction), video)
        locale = await interaction_locale(interaction)
        await answer(interaction, discord_text("cancel.done", locale, id=record.id, title=Quoted(record.display_title)))


async def setup(bot: commands.Bot) -> None:
    """Loaded by name (`bot.load_extension("bot.cogs.library")`)."""
    await bot.add_cog(LibraryCog(services_of(bot).studio))
