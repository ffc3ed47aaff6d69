"""Making videos on Discord: `/video`, refinement by writing in a clip's thread, extension by replying to a
clip (or the "Extend this video" message command), and the actions behind the clip's buttons."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs._common import (
    answer,
    destination_for,
    interaction_requester,
    member_locale,
    refusal_text,
    requester_of,
    upload_limit,
)
from bot.i18n import text
from bot.limits import Refusal
from bot.models import COMPLETED, POSTED
from bot.progress import prompt_source
from bot.studio import ImageInput, Job, Studio, VideoOptions
from bot.ui import MODAL_ID, EditPromptModal, ExtendModal, modal_values, prompt_view, status_view
from bot.videos import ASPECT_SIZES, GeneratorError

if TYPE_CHECKING:
    from bot.app import HanulBot

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 2000
ASPECT_CHOICES = [app_commands.Choice(name=aspect, value=aspect) for aspect in ASPECT_SIZES]
DM_CONTEXTS = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True)


def _clip(content: str) -> str:
    return content if len(content) <= MESSAGE_LIMIT else content[: MESSAGE_LIMIT - 1] + "…"


class VideoCog(commands.Cog, name="Video"):
    """The video commands and the handlers of every clip button and modal (`bot.actions`)."""

    def __init__(self, bot: HanulBot) -> None:
        self.bot = bot
        self.extend_menu = app_commands.ContextMenu(
            name=text("menu.extend", "en"), callback=self._extend_menu, allowed_contexts=DM_CONTEXTS
        )

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.extend_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.extend_menu.name, type=self.extend_menu.type)

    @property
    def studio(self) -> Studio:
        return self.bot.studio

    # --- running a job in a place ----------------------------------------------------------------

    async def launch(
        self,
        job: Job,
        channel: discord.abc.Messageable,
        locale: str | None,
        *,
        reply_to: discord.Message | None = None,
    ) -> discord.Message:
        """Post the status message (and a thread from it in a server channel), show the prompt with its edit
        button, queue the job, and hand it to the delivery task. Returns the status message."""
        record = job.generation
        title = record.display_title
        status = await channel.send(
            text("status.starting", locale, title=title),
            view=status_view(record.id, locale),
            reference=reply_to,  # type: ignore[arg-type]
            mention_author=False,
        )
        thread: discord.Thread | None = channel if isinstance(channel, discord.Thread) else None
        if isinstance(channel, discord.TextChannel):
            try:
                thread = await status.create_thread(name=text("thread.name", locale, title=title)[:100])
            except discord.HTTPException as error:
                # Without the thread permission the conversation continues in the channel itself.
                log.warning("could not create a thread in %s: %s", channel.id, error)
        lines = [text("prompt.show", locale, how=prompt_source(record, locale), prompt=record.expanded_prompt)]
        if job.summary:
            lines.insert(0, text("refine.changed", locale, summary=job.summary))
        if job.notice:
            lines.append(text("prompt.notice", locale, notice=job.notice))
        await (thread or channel).send(_clip("\n".join(lines)), view=prompt_view(record.id, locale))
        await self.studio.attach(record.id, thread_id=thread.id if thread else None, status_message_id=status.id)
        try:
            await self.studio.submit(record.id)
        except Refusal as refusal:
            await status.edit(
                content=text("status.failed", locale, title=title, error=refusal_text(refusal, locale)), view=None
            )
            raise
        except GeneratorError as error:
            # The generator is away: the request stays saved; the delivery tells the member and keeps trying.
            log.warning("generator unreachable for #%d (%s); the delivery will retry", record.id, error)
        self.bot.deliveries.start(record.id)
        return status

    async def _guarded(self, interaction: discord.Interaction, work: Callable[[str | None], Awaitable[None]]) -> None:
        """Run an interaction's work; refusals and surprises become ephemeral answers, never silence."""
        locale = await member_locale(self.bot, interaction.user.id, str(interaction.locale.value))
        try:
            await work(locale)
        except Refusal as refusal:
            await answer(interaction, refusal_text(refusal, locale))
        except Exception:
            log.exception("interaction %s failed", interaction.id)
            await answer(interaction, text("error.unexpected", locale, id=interaction.id))

    async def _defer(self, interaction: discord.Interaction) -> None:
        if not interaction.response.is_done():
            await interaction.response.defer(ephemeral=True, thinking=True)

    async def _started(self, interaction: discord.Interaction, status: discord.Message, locale: str | None) -> None:
        await answer(interaction, f"🎬 {status.jump_url}")

    # --- /video ----------------------------------------------------------------------------------

    @app_commands.command(name="video", description="Make a short video from a description")
    @app_commands.describe(
        prompt="What should happen in the video (any language)",
        seconds="Length in seconds",
        aspect="Frame shape",
        seed="Random seed (same seed + same prompt = same video)",
        negative="What the video should avoid",
        style="A visual style, e.g. 'anime', '35mm film', 'claymation'",
        image="A picture to start the video from",
        enhance="Let the director expand your prompt (default: your /settings)",
    )
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
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)

        async def work(locale: str | None) -> None:
            picture = None
            if image is not None:
                picture = ImageInput(image.filename, await image.read(), (image.content_type or "").split(";")[0])
            options = VideoOptions(seconds, aspect, seed, negative, style, enhance, picture)
            channel = interaction.channel
            assert channel is not None
            destination = destination_for(channel, upload_limit(interaction, interaction.guild))
            job = await self.studio.new_video(interaction_requester(interaction), prompt, options, destination)
            status = await self.launch(job, channel, locale)  # type: ignore[arg-type]
            await self._started(interaction, status, locale)

        await self._guarded(interaction, work)

    # --- Extend this video (message command) and the clip buttons ---------------------------------

    async def _extend_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        record = await self.studio.store.generation_by_message(message.id)
        if record is None or record.result_message_id != message.id:
            locale = await member_locale(self.bot, interaction.user.id, str(interaction.locale.value))
            await answer(interaction, refusal_text(Refusal("not_a_clip"), locale))
            return
        await self.open_extend(interaction, record.id)

    async def open_extend(self, interaction: discord.Interaction, generation_id: int) -> None:
        """A modal can only be the first answer to an interaction, so nothing is deferred here; a clip that
        cannot be extended is refused before the member types anything."""
        locale = await member_locale(self.bot, interaction.user.id, str(interaction.locale.value))
        record = await self.studio.store.generation(generation_id)
        if record is None or record.video_id is None:
            await answer(interaction, refusal_text(Refusal("not_found", {"id": generation_id}), locale))
            return
        if record.status not in (COMPLETED, POSTED):
            await answer(interaction, refusal_text(Refusal("not_finished"), locale))
            return
        await interaction.response.send_modal(ExtendModal(generation_id, locale))

    async def open_edit(self, interaction: discord.Interaction, generation_id: int) -> None:
        """Only the clip's owner (or an admin) may rewrite its prompt: others are refused before the modal."""
        locale = await member_locale(self.bot, interaction.user.id, str(interaction.locale.value))
        record = await self.studio.store.generation(generation_id)
        if record is None:
            await answer(interaction, refusal_text(Refusal("not_found", {"id": generation_id}), locale))
            return
        if not self.studio.limits.may_manage(interaction_requester(interaction), record):
            await answer(interaction, refusal_text(Refusal("not_owner"), locale))
            return
        await interaction.response.send_modal(EditPromptModal(generation_id, record.expanded_prompt, locale))

    async def _again(
        self, interaction: discord.Interaction, start: Callable[..., Awaitable[Job]], *args: object
    ) -> None:
        """Defer, start a follow-up job where the click happened, and say where it is."""
        await self._defer(interaction)

        async def work(locale: str | None) -> None:
            channel = interaction.channel
            assert channel is not None
            destination = destination_for(channel, upload_limit(interaction, interaction.guild))
            job = await start(interaction_requester(interaction), *args, destination)
            status = await self.launch(job, channel, locale)  # type: ignore[arg-type]
            await self._started(interaction, status, locale)

        await self._guarded(interaction, work)

    async def reroll(self, interaction: discord.Interaction, generation_id: int) -> None:
        await self._again(interaction, self.studio.reroll, generation_id)

    async def rerun(self, interaction: discord.Interaction, generation_id: int) -> None:
        await self._again(interaction, self.studio.rerun, generation_id)

    async def smaller(self, interaction: discord.Interaction, generation_id: int) -> None:
        await self._again(interaction, self.studio.smaller, generation_id)

    async def extend(self, interaction: discord.Interaction, generation_id: int, what_next: str) -> None:
        await self._again(interaction, self.studio.extend, generation_id, what_next)

    async def edit(self, interaction: discord.Interaction, generation_id: int, prompt: str) -> None:
        await self._again(interaction, self.studio.edit, generation_id, prompt)

    async def cancel(self, interaction: discord.Interaction, generation_id: int) -> None:
        await self._defer(interaction)

        async def work(locale: str | None) -> None:
            record = await self.studio.cancel(interaction_requester(interaction), generation_id)
            await answer(interaction, text("cancel.done", locale, id=record.id, title=record.display_title))

        await self._guarded(interaction, work)

    async def delete(self, interaction: discord.Interaction, generation_id: int) -> None:
        await self._defer(interaction)

        async def work(locale: str | None) -> None:
            record = await self.studio.store.generation(generation_id)
            await self.studio.delete(interaction_requester(interaction), generation_id)
            message = interaction.message
            if message is not None and record is not None and message.id == record.result_message_id:
                await message.delete()
            await answer(interaction, text("result.deleted", locale))

        await self._guarded(interaction, work)

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
        values = modal_values(data)
        if match["action"] == "extend":
            await self.extend(interaction, int(match["id"]), values.get("what_next", ""))
        else:
            await self.edit(interaction, int(match["id"]), values.get("prompt", ""))

    # --- messages: thread refinement, reply-to-extend, DM reply chains -----------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or not message.content.strip():
            return
        store = self.studio.store
        referenced = message.reference.message_id if message.reference else None
        if referenced is not None:
            record = await store.generation_by_message(referenced)
            if record is not None and record.result_message_id == referenced:
                await self._from_message(message, lambda r, d: self.studio.extend(r, record.id, message.content, d))
                return
            if record is not None and message.guild is None and record.conversation_id is not None:
                # In a DM the reply chain is the conversation: answering a status message refines it.
                if record.user_id == message.author.id:
                    conversation_id = record.conversation_id
                    await self._from_message(
                        message, lambda r, d: self.studio.refine(r, conversation_id, message.content, d)
                    )
                return
        if isinstance(message.channel, discord.Thread):
            conversation = await store.conversation_by_thread(message.channel.id)
            if conversation is not None and conversation.user_id == message.author.id:
                await self._from_message(
                    message, lambda r, d: self.studio.refine(r, conversation.id, message.content, d)
                )

    async def _from_message(self, message: discord.Message, start: Callable[..., Awaitable[Job]]) -> None:
        """Start a job from a member's message; a refusal is a reply (messages have no ephemeral answers)."""
        member = await self.studio.store.member(message.author.id)
        locale = member.reply_locale
        requester = requester_of(message.author, message.channel, member.locale)
        destination = destination_for(message.channel, upload_limit(None, message.guild))
        try:
            job = await start(requester, destination)
            await self.launch(job, message.channel, locale, reply_to=message)
        except Refusal as refusal:
            await message.reply(refusal_text(refusal, locale), mention_author=False)
        except Exception:
            log.exception("handling message %s failed", message.id)
            await message.reply(text("error.unexpected", locale, id=message.id), mention_author=False)
