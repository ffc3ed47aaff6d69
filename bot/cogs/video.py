"""Making videos on Discord: `/video`, refinement by writing in a clip's thread, extension by replying to a
clip (or the "Extend this video" message command), a video started from a picture posted in either place, and the
submitted extend and edit-prompt modals. The clip's buttons act on their own (`bot.cogs._clips`)."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs._clips import DYNAMIC_ITEMS, MODAL_ID, StartDraft, launch, modal_submitted, modal_values, open_extend
from bot.cogs._common import (
    Services,
    answer,
    check_can_post,
    destination_for,
    failure_text,
    interaction_destination,
    interaction_locale,
    interaction_requester,
    requester_of,
    services_of,
    upload_limit,
)
from bot.cogs._translate import described, english, keyed
from bot.cogs.characters import character_choices, downloaded
from bot.limits import Refusal, Requester
from bot.studio import Destination, Draft, ImageInput, VideoOptions, check_picture
from bot.videos import ASPECT_SIZES

log = logging.getLogger(__name__)

ASPECT_CHOICES = [app_commands.Choice(name=aspect, value=aspect) for aspect in ASPECT_SIZES]
VIDEO_OPTIONS = ("prompt", "seconds", "aspect", "seed", "negative", "style", "image", "enhance", "sound", "character")
DM_CONTEXTS = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True)


async def picture_of(attachment: discord.Attachment) -> ImageInput:
    """A member's attached picture, refused before it is downloaded when it is no image or too large."""
    mime = (attachment.content_type or "").split(";")[0].strip().lower()
    check_picture(mime, attachment.size)
    return ImageInput(attachment.filename, await downloaded(attachment), mime)


def _picture_among(attachments: list[discord.Attachment]) -> discord.Attachment | None:
    """The attachment a message starts a video from: its first picture (a file posted beside it is no reason to
    refuse it), else its first attachment, which then gets the refusal that says what a picture must be."""
    pictures = [a for a in attachments if (a.content_type or "").split(";")[0].strip().lower().startswith("image/")]
    return (pictures or attachments or [None])[0]


class VideoCog(commands.Cog, name="Video"):
    """The video commands, the message listeners and the modal submissions."""

    def __init__(self, services: Services, tree: app_commands.CommandTree) -> None:
        self.services = services
        self.studio = services.studio
        self.tree = tree
        self.extend_menu = app_commands.ContextMenu(
            name=keyed("menu.extend"), callback=self._extend_menu, allowed_contexts=DM_CONTEXTS
        )

    async def cog_load(self) -> None:
        self.tree.add_command(self.extend_menu)

    async def cog_unload(self) -> None:
        self.tree.remove_command(self.extend_menu.name, type=self.extend_menu.type)

    # --- /video ----------------------------------------------------------------------------------

    @app_commands.command(name=english("command.video.name"), description=english("command.video.description"))
    @app_commands.describe(**described("video", *VIDEO_OPTIONS))
    @app_commands.choices(aspect=ASPECT_CHOICES)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def video(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 1500],
        seconds: app_commands.Range[float, 1, 60] | None = None,
        aspect: str | None = None,
        seed: app_commands.Range[int, 0, 2_147_483_646] | None = None,
        negative: app_commands.Range[str, 1, 500] | None = None,
        style: app_commands.Range[str, 1, 200] | None = None,
        image: discord.Attachment | None = None,
        enhance: bool | None = None,
        sound: bool | None = None,
        character: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        """A refusal raised here is answered by the tree's error handler (`bot.cogs._common`)."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        locale = await interaction_locale(interaction)
        check_can_post(interaction, locale)
        picture = await picture_of(image) if image is not None else None
        options = VideoOptions(
            seconds,
            aspect,
            seed,
            negative,
            style,
            enhance,
            picture,
            sound,
            characters=(character,) if character else (),
        )
        destination = interaction_destination(interaction)
        draft = await self.studio.new_video(interaction_requester(interaction), prompt, options, destination)
        status = await launch(self.services, draft, interaction.channel, locale)  # type: ignore[arg-type]
        await answer(interaction, f"🎬 {status.jump_url}")

    @video.autocomplete("character")
    async def _character_choices(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await character_choices(interaction, current)

    # --- Extend this video (message command) and submitted modals ---------------------------------

    async def _extend_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        record = await self.studio.clip_by_message(message.id)
        if record is None:
            raise Refusal("not_a_clip")
        await open_extend(interaction, record.id)

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """A submitted extend or edit-prompt modal, routed by the generation id in its custom_id (the Modal
        objects only draw the form: one opened before a restart still works)."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: dict = interaction.data or {}  # type: ignore[assignment]
        match = MODAL_ID.fullmatch(str(data.get("custom_id", "")))
        if match is None:
            return
        await modal_submitted(interaction, match["action"], int(match["id"]), modal_values(data))

    # --- messages: thread refinement, reply-to-extend, DM reply chains -----------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Words in a clip's thread refine it and a reply to a clip extends it; a picture posted there (the words,
        if any, its request) starts a video from it instead, as `/video image:` does."""
        if message.author.bot:
            return
        studio = self.studio
        words = message.content
        attachment = _picture_among(message.attachments)
        if attachment is None and not words.strip():
            return
        referenced = message.reference.message_id if message.reference else None
        if referenced is not None:
            record = await studio.generation_by_message(referenced)
            if record is not None and record.result_message_id == referenced:
                await self._from_message(message, self._next_draft(attachment, words, clip_id=record.id))
                return
            if record is not None and message.guild is None and record.conversation_id is not None:
                # In a DM the reply chain is the conversation: answering a status message refines it.
                if record.user_id == message.author.id:
                    start = self._next_draft(attachment, words, conversation_id=record.conversation_id)
                    await self._from_message(message, start)
                return
        if isinstance(message.channel, discord.Thread):
            conversation = await studio.conversation_in_thread(message.channel.id)
            if conversation is not None and conversation.user_id == message.author.id:
                await self._from_message(message, self._next_draft(attachment, words, conversation_id=conversation.id))

    def _next_draft(
        self,
        attachment: discord.Attachment | None,
        words: str,
        *,
        clip_id: int | None = None,
        conversation_id: int | None = None,
    ) -> StartDraft:
        """What a message in reply to a clip (`clip_id`) or in a clip's conversation starts: a video from its
        picture when it has one, else an extension of the clip or a refinement of the conversation."""
        studio = self.studio
        if attachment is not None:

            async def from_picture(requester: Requester, destination: Destination) -> Draft:
                picture = await picture_of(attachment)
                return await studio.animate(
                    requester, picture, words, destination, clip_id=clip_id, conversation_id=conversation_id
                )

            return from_picture
        if clip_id is not None:
            return lambda r, d: studio.extend(r, clip_id, words, d)
        assert conversation_id is not None
        return lambda r, d: studio.refine(r, conversation_id, words, d)

    async def _from_message(self, message: discord.Message, start: StartDraft) -> None:
        """Start a request from a member's message; what goes wrong is a reply (messages have no ephemeral
        answers), worded as for an interaction."""
        member = await self.studio.member(message.author.id)
        locale = await self.studio.reply_locale(member.user_id, message.guild.id if message.guild else None)
        requester = requester_of(message.author, message.channel, member.locale)
        destination = destination_for(message.channel, upload_limit(None, message.guild))
        try:
            draft = await start(requester, destination)
            await launch(self.services, draft, message.channel, locale, reply_to=message)
        except Exception as error:
            content = failure_text(error, locale, f"handling message {message.id}", message.id)
            try:
                reference = message.to_reference(fail_if_not_exists=False)
                await message.channel.send(content, reference=reference, mention_author=False)
            except discord.HTTPException as failure:  # not allowed to post here either: the log says why
                log.warning("could not answer message %s: %s", message.id, failure)


async def setup(bot: commands.Bot) -> None:
    """Loaded by name (`bot.load_extension("bot.cogs.video")`); the clip buttons are registered with it."""
    await bot.add_cog(VideoCog(services_of(bot), bot.tree))
    bot.add_dynamic_items(*DYNAMIC_ITEMS)


async def teardown(bot: commands.Bot) -> None:
    """Unloading the extension takes its buttons with it (the cog goes by itself)."""
    bot.remove_dynamic_items(*DYNAMIC_ITEMS)
