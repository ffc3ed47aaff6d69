"""Characters on Discord: `/character create name [image] [from_clip] [description] [share]`, `/character list`,
`/character delete` (autocomplete over the member's own), and the autocomplete of `/video`'s `character` option
(the member's own characters and those shared in this server)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs._common import (
    MESSAGE_LIMIT,
    answer,
    discord_text,
    interaction_locale,
    interaction_requester,
    services_of,
)
from bot.i18n import Quoted, text
from bot.limits import Refusal
from bot.store import CharacterRecord
from bot.studio import CharacterSource, ImageInput, Studio, check_picture

MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices
CHOICE_NAME_CHARS = 100


def _choice_name(value: str) -> str:
    return value if len(value) <= CHOICE_NAME_CHARS else value[: CHOICE_NAME_CHARS - 1] + "…"


async def downloaded(attachment: discord.Attachment) -> bytes:
    """An attachment's bytes; one Discord no longer serves (its message deleted at once, or its link expired) is a
    refusal that asks for it again, not an error."""
    try:
        return await attachment.read()
    except discord.HTTPException as error:
        raise Refusal("attachment_gone") from error


def _matches(typed: str, *names: str) -> bool:
    typed = typed.strip().casefold()
    return not typed or any(typed in name.casefold() for name in names)


async def character_choices(
    interaction: discord.Interaction, current: str, *, own_only: bool = False
) -> list[app_commands.Choice[str]]:
    """Characters the member may use here whose name contains what they typed (their own only, to delete); the
    value is the character's id."""
    studio = services_of(interaction.client).studio
    characters = await studio.characters(interaction_requester(interaction), interaction.guild_id)
    if own_only:
        characters = [c for c in characters if c.user_id == interaction.user.id]
    return [
        app_commands.Choice(name=_choice_name(c.name), value=str(c.id)) for c in characters if _matches(current, c.name)
    ][:MAX_CHOICES]


def character_line(character: CharacterRecord, viewer_id: int, locale: str | None) -> str:
    if character.user_id != viewer_id:
        whose = text("character.whose_shared", locale, owner=f"<@{character.user_id}>")
    elif character.shared:
        whose = text("character.whose_own_shared", locale)
    else:
        whose = ""
    description = character.description if len(character.description) <= 160 else character.description[:159] + "…"
    return discord_text(
        "character.line",
        locale,
        id=character.id,
        name=Quoted(character.name),
        whose=whose,
        description=Quoted(description),
    )


class CharactersCog(commands.Cog, name="Characters"):
    """`/character …`; a refusal raised here is answered by the tree's error handler."""

    character = app_commands.Group(
        name="character",
        description="Reusable subjects for your videos",
        allowed_contexts=app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True),
    )

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    @character.command(name="create", description="Make a character from a picture or one of your clips")
    @app_commands.describe(
        name="What to call it",
        image="A picture of the subject",
        from_clip="One of your clips (start typing its title)",
        description="The subject in a few words (used when the director can't look at pictures)",
        share="Let everyone in this server use it",
    )
    async def create(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 80],
        image: discord.Attachment | None = None,
        from_clip: str | None = None,
        description: app_commands.Range[str, 1, 400] | None = None,
        share: bool = False,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        picture = None
        if image is not None:
            mime = (image.content_type or "").split(";")[0].strip().lower()
            check_picture(mime, image.size)  # no picture, or too large: refused before it is downloaded
            picture = ImageInput(image.filename, await downloaded(image), mime)
        clip_id = None
        if from_clip is not None:
            clip_id = int(from_clip.strip().lstrip("#")) if from_clip.strip().lstrip("#").isdigit() else 0
        made = await self.studio.create_character(
            interaction_requester(interaction),
            name,
            CharacterSource(image=picture, clip_id=clip_id),
            description=description,
            share=share,
        )
        locale = await interaction_locale(interaction)
        await answer(
            interaction,
            discord_text(
                "character.created",
                locale,
                name=Quoted(made.name),
                shared=text("character.shared", locale) if made.shared else "",
                by=text("character.by_director" if made.described_by == "director" else "character.by_member", locale),
                description=Quoted(made.description),
            ),
        )

    @create.autocomplete("from_clip")
    async def _clip_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        """The member's own recent finished clips, by title; the value is the clip's number."""
        locale = await interaction_locale(interaction)
        clips = await self.studio.recent_clips(interaction_requester(interaction))
        return [
            app_commands.Choice(
                name=_choice_name(text("character.clip_choice", locale, id=c.id, title=c.display_title)),
                value=str(c.id),
            )
            for c in clips
            if _matches(current, c.display_title, f"#{c.id}")
        ][:MAX_CHOICES]

    @character.command(name="list", description="Characters you can use here")
    async def list_characters(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        locale = await interaction_locale(interaction)
        characters = await self.studio.characters(interaction_requester(interaction), interaction.guild_id)
        if not characters:
            await answer(interaction, text("character.empty", locale))
            return
        lines = [text("character.list_title", locale)]
        for shown, character in enumerate(characters):
            line = character_line(character, interaction.user.id, locale)
            more = text("queue.more", locale, count=len(characters) - shown)
            if shown == MAX_CHOICES or len("\n".join([*lines, line, more])) > MESSAGE_LIMIT:  # what fits, and a count
                lines.append(more)
                break
            lines.append(line)
        await answer(interaction, "\n".join(lines))

    @character.command(name="delete", description="Delete one of your characters")
    @app_commands.describe(character="Which one (start typing its name)")
    async def delete(self, interaction: discord.Interaction, character: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        deleted = await self.studio.delete_character(interaction_requester(interaction), character)
        locale = await interaction_locale(interaction)
        await answer(interaction, discord_text("character.deleted", locale, name=Quoted(deleted.name)))

    @delete.autocomplete("character")
    async def _own_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await character_choices(interaction, current, own_only=True)


async def setup(bot: commands.Bot) -> None:
    """Loaded by name (`bot.load_extension("bot.cogs.characters")`)."""
    await bot.add_cog(CharactersCog(services_of(bot).studio))
