"""A clip on Discord: the request posted with its status message (and a thread from it), the buttons under a clip
and its status, and the extend and edit-prompt modals.

The buttons are `DynamicItem`s whose `custom_id` carries the generation id (`hanul:<action>:<id>`), so a click
works after a restart; each button's `callback` does its own work with the bot's services. Modals carry the id the
same way (`hanul:<action>-modal:<id>`) and their submissions are routed by it (see `MODAL_ID`)."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import discord

from bot.cogs._common import (
    MESSAGE_LIMIT,
    Services,
    answer,
    cannot_post,
    check_can_post,
    defer,
    discord_text,
    guarded,
    interaction_destination,
    interaction_locale,
    interaction_requester,
    services_of,
)
from bot.i18n import Quoted, text
from bot.limits import Refusal, Requester
from bot.models import RENDER, VIDEO_EDIT
from bot.progress import prompt_source
from bot.store import GenerationRecord
from bot.studio import Destination, Draft, switch_to
from bot.videos import GeneratorError

log = logging.getLogger(__name__)

PROMPT_INPUT_MAX = 4000  # Discord's limit for a text input
MODAL_ID = re.compile(r"hanul:(?P<action>extend|edit)-modal:(?P<id>[0-9]{1,20})")

# Starts a follow-up draft for the asking member, its result going to the destination.
StartDraft = Callable[[Requester, Destination], Awaitable[Draft]]


# --- a request, posted ------------------------------------------------------------------------------------


async def launch(
    services: Services,
    draft: Draft,
    channel: discord.abc.Messageable,
    locale: str | None,
    *,
    reply_to: discord.Message | None = None,
) -> discord.Message:
    """Post the status message (and a thread from it in a server channel), show the prompt with its edit
    button, queue the request on the generator, and hand it to the delivery. Returns the status message."""
    record = draft.generation
    title = Quoted(record.display_title)  # plain in the thread's name: Discord shows no Markdown there
    studio = services.studio
    status: discord.Message | None = None
    try:
        status = await channel.send(
            discord_text("status.starting", locale, title=title),
            view=status_view(record.id, locale),
            # A reply whose message was deleted meanwhile is still answered, as a plain message.
            reference=reply_to.to_reference(fail_if_not_exists=False) if reply_to else None,  # type: ignore[arg-type]
            mention_author=False,
        )
        thread: discord.Thread | None = channel if isinstance(channel, discord.Thread) else None
        if isinstance(channel, discord.TextChannel):
            try:
                thread = await status.create_thread(name=text("thread.name", locale, title=title)[:100])
            except discord.HTTPException as error:
                # Without the thread permission the conversation continues in the channel itself.
                log.warning("could not create a thread in %s: %s", channel.id, error)
        summary = Quoted(draft.summary or "")
        before = [
            discord_text("refine.changed", locale, max_chars=MESSAGE_LIMIT // 4, summary=summary) if summary else None,
            how_refined(record, draft, locale),
        ]
        before = [line for line in before if line]
        after = [text("prompt.notice", locale, notice=draft.notice)] if draft.notice else []
        room = MESSAGE_LIMIT - sum(len(line) + 1 for line in (*before, *after))  # the prompt is cut, not the rest
        how, prompt = prompt_source(record, locale), Quoted(record.expanded_prompt)
        lines = [*before, discord_text("prompt.show", locale, max_chars=room, how=how, prompt=prompt), *after]
        await (thread or channel).send("\n".join(lines), view=prompt_view(record.id, locale))
    except discord.HTTPException as error:
        # Nothing was queued: the request must not stay open, holding the member's place in the queue.
        await studio.fail(record, f"could not post on Discord: {error.status} {error.text}"[:500])
        if status is not None:
            with contextlib.suppress(discord.HTTPException):
                failed = discord_text("status.failed", locale, title=title, error=Quoted(error.text))
                await status.edit(content=failed, view=None)
        if isinstance(error, discord.Forbidden):
            raise cannot_post(locale) from error
        raise
    record = await studio.attach(record, thread_id=thread.id if thread else None, status_message_id=status.id)
    try:
        record = await studio.submit(record)
    except Refusal as refusal:
        said = refusal.said(locale, lambda key, locale, **values: discord_text(key, locale, max_chars=1000, **values))
        await status.edit(content=discord_text("status.failed", locale, title=title, error=said), view=None)
        raise
    except GeneratorError as error:
        # The generator is away: the request stays saved; the delivery tells the member and keeps trying.
        log.warning("generator unreachable for #%d (%s); the delivery will retry", record.id, error)
    services.deliver(record)
    return status


def how_refined(record: GenerationRecord, draft: Draft, locale: str | None) -> str | None:
    """For a refinement: whether the clip is edited keeping its motion or rendered anew, and how to switch."""
    if record.kind != "refine":
        return None
    if "switched_from" in record.params:
        return text("refine.switched_edit" if record.mode == VIDEO_EDIT else "refine.switched_render", locale)
    if record.mode == VIDEO_EDIT:
        return text("refine.edited", locale)
    return text("refine.rendered", locale) if switch_to(record) == VIDEO_EDIT else None


def made_label(record: GenerationRecord, locale: str | None) -> str | None:
    """How a refinement's clip was made, for its caption (it may differ from the plan: a generator that cannot
    edit renders anew)."""
    if record.kind != "refine":
        return None
    if record.params.get("edit_fallback"):
        return text("result.made_fallback", locale)
    return text("result.made_edit" if record.mode == VIDEO_EDIT else "result.made_render", locale)


async def start_here(interaction: discord.Interaction, start: StartDraft) -> None:
    """Defer, start a follow-up where the click (or modal) happened, and say where it is."""
    await defer(interaction)

    async def work() -> None:
        services = services_of(interaction.client)
        locale = await interaction_locale(interaction)
        check_can_post(interaction, locale)
        draft = await start(interaction_requester(interaction), interaction_destination(interaction))
        status = await launch(services, draft, interaction.channel, locale)  # type: ignore[arg-type]
        await answer(interaction, f"🎬 {status.jump_url}")

    await guarded(interaction, work)


async def open_extend(interaction: discord.Interaction, generation_id: int) -> None:
    """A modal can only be the first answer to an interaction, so nothing is deferred here; a clip that cannot
    be extended is refused before the member types anything."""
    await services_of(interaction.client).studio.clip_to_extend(generation_id)
    await interaction.response.send_modal(ExtendModal(generation_id, await interaction_locale(interaction)))


async def modal_submitted(
    interaction: discord.Interaction, action: str, generation_id: int, values: dict[str, str]
) -> None:
    """A submitted extend or edit-prompt modal (see `MODAL_ID`)."""
    studio = services_of(interaction.client).studio
    if action == "extend":
        what_next = values.get("what_next", "")
        await start_here(interaction, lambda r, d: studio.extend(r, generation_id, what_next, d))
    else:
        prompt = values.get("prompt", "")
        await start_here(interaction, lambda r, d: studio.edit(r, generation_id, prompt, d))


def modal_values(data: dict[str, Any]) -> dict[str, str]:
    """A submitted modal's text inputs by custom_id (in action rows, or in the newer label components)."""
    values: dict[str, str] = {}
    for row in data.get("components") or []:
        children = row.get("components") or ([row["component"]] if "component" in row else [])
        for child in children:
            if "custom_id" in child:
                values[str(child["custom_id"])] = str(child.get("value") or "")
    return values


# --- the persistent buttons ---------------------------------------------------------------------------


class GenerationButton(discord.ui.DynamicItem[discord.ui.Button], template=r"hanul:base:(?P<id>[0-9]+)"):
    """A button that acts on one generation; subclasses name the action and do it in `act`."""

    key: ClassVar[str] = "base"  # the custom_id's middle part
    label_key: ClassVar[str] = "button.reroll"
    emoji: ClassVar[str | None] = None
    button_style: ClassVar[discord.ButtonStyle] = discord.ButtonStyle.secondary

    def __init__(self, generation_id: int, locale: str | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=text(self.label_key, locale, id=generation_id),
                emoji=self.emoji,
                style=self.button_style,
                custom_id=f"hanul:{self.key}:{generation_id}",
            )
        )
        self.generation_id = generation_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> GenerationButton:
        return cls(int(match["id"]), str(interaction.locale.value))

    async def callback(self, interaction: discord.Interaction) -> None:
        await guarded(interaction, lambda: self.act(interaction, services_of(interaction.client)))

    async def act(self, interaction: discord.Interaction, services: Services) -> None:
        raise NotImplementedError


class RerollButton(GenerationButton, template=r"hanul:reroll:(?P<id>[0-9]+)"):
    """The same prompt again with a new seed."""

    key = "reroll"
    label_key = "button.reroll"
    emoji = "🎲"

    async def act(self, interaction: discord.Interaction, services: Services) -> None:
        await start_here(interaction, lambda r, d: services.studio.reroll(r, self.generation_id, d))


class ExtendButton(GenerationButton, template=r"hanul:extend:(?P<id>[0-9]+)"):
    """Asks what happens next, then continues the clip."""

    key = "extend"
    label_key = "button.extend"
    emoji = "➕"

    async def act(self, interaction: discord.Interaction, services: Services) -> None:
        await open_extend(interaction, self.generation_id)


class EditButton(GenerationButton, template=r"hanul:edit:(?P<id>[0-9]+)"):
    """Only the clip's owner (or an admin) may rewrite its prompt: others are refused before the modal."""

    key = "edit"
    label_key = "button.edit"
    emoji = "✏️"

    async def act(self, interaction: discord.Interaction, services: Services) -> None:
        record = await services.studio.owned(interaction_requester(interaction), self.generation_id)
        locale = await interaction_locale(interaction)
        await interaction.response.send_modal(EditPromptModal(record.id, record.expanded_prompt, locale))


class DeleteButton(GenerationButton, template=r"hanul:delete:(?P<id>[0-9]+)"):
    """Removes the clip (its owner or an admin), and its post when clicked under it."""

    key = "delete"
    label_key = "button.delete"
    emoji = "🗑️"
    button_style = discord.ButtonStyle.danger

    async def act(self, interaction: discord.Interaction, services: Services) -> None:
        await defer(interaction)
        deleted = await services.studio.delete(interaction_requester(interaction), self.generation_id)
        message = interaction.message
        if message is not None and message.id == deleted.result_message_id:
            await message.delete()
        await answer(interaction, text("result.deleted", await interaction_locale(interaction)))


class CancelButton(GenerationButton, template=r"hanul:cancel:(?P<id>[0-9]+)"):
    """Stops a request that is still being made."""

    key = "cancel"
    label_key = "button.cancel"
    emoji = "🛑"

    async def act(self, interaction: discord.Interaction, services: Services) -> None:
        await defer(interaction)
        record = await services.studio.cancel(interaction_requester(interaction), self.generation_id)
        locale = await interaction_locale(interaction)
        await answer(interaction, discord_text("cancel.done", locale, id=record.id, title=Quoted(record.display_title)))


class RerunButton(GenerationButton, template=r"hanul:rerun:(?P<id>[0-9]+)"):
    """The same request again, same prompt and seed (from /history)."""

    key = "rerun"
    label_key = "button.rerun"
    emoji = "🔁"

    async def act(self, interaction: discord.Interaction, services: Services) -> None:
        await start_here(interaction, lambda r, d: services.studio.rerun(r, self.generation_id, d))


class SmallerButton(GenerationButton, template=r"hanul:smaller:(?P<id>[0-9]+)"):
    """The same clip under a tighter byte cap, for a channel whose upload limit the first one missed."""

    key = "smaller"
    label_key = "button.smaller"
    emoji = "📉"
    button_style = discord.ButtonStyle.primary

    async def act(self, interaction: discord.Interaction, services: Services) -> None:
        await start_here(interaction, lambda r, d: services.studio.smaller(r, self.generation_id, d))


class KeepMotionButton(GenerationButton, template=r"hanul:keep:(?P<id>[0-9]+)"):
    """A refinement rendered anew, made instead as an edit of the clip it refined, keeping its motion."""

    key = "keep"
    label_key = "button.keep_motion"
    emoji = "🎨"
    button_style = discord.ButtonStyle.primary

    async def act(self, interaction: discord.Interaction, services: Services) -> None:
        await start_here(interaction, lambda r, d: services.studio.switch(r, self.generation_id, VIDEO_EDIT, d))


class StartOverButton(GenerationButton, template=r"hanul:restart:(?P<id>[0-9]+)"):
    """A refinement made as an edit, rendered anew from its prompt instead."""

    key = "restart"
    label_key = "button.start_over"
    emoji = "🎬"
    button_style = discord.ButtonStyle.primary

    async def act(self, interaction: discord.Interaction, services: Services) -> None:
        await start_here(interaction, lambda r, d: services.studio.switch(r, self.generation_id, RENDER, d))


DYNAMIC_ITEMS: tuple[type[GenerationButton], ...] = (
    RerollButton,
    ExtendButton,
    EditButton,
    DeleteButton,
    CancelButton,
    RerunButton,
    SmallerButton,
    KeepMotionButton,
    StartOverButton,
)


def _view(*items: discord.ui.Item[Any]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


def clip_view(generation_id: int, locale: str | None, *, switch: str | None = None) -> discord.ui.View:
    """The buttons under a posted clip; `switch` (a refinement's, see `switch_to`) adds "Keep the motion" or
    "Start over"."""
    buttons: list[discord.ui.Item[Any]] = [
        RerollButton(generation_id, locale),
        ExtendButton(generation_id, locale),
        EditButton(generation_id, locale),
        DeleteButton(generation_id, locale),
    ]
    if switch == VIDEO_EDIT:
        buttons.append(KeepMotionButton(generation_id, locale))
    elif switch == RENDER:
        buttons.append(StartOverButton(generation_id, locale))
    return _view(*buttons)


def held_view(generation_id: int, locale: str | None) -> discord.ui.View:
    """Under a clip that was not posted (withheld, or kept for age-restricted channels): its owner may drop it."""
    return _view(DeleteButton(generation_id, locale))


def prompt_view(generation_id: int, locale: str | None) -> discord.ui.View:
    return _view(EditButton(generation_id, locale))


def status_view(generation_id: int, locale: str | None) -> discord.ui.View:
    return _view(CancelButton(generation_id, locale))


def smaller_view(generation_id: int, locale: str | None) -> discord.ui.View:
    return _view(SmallerButton(generation_id, locale))


# --- modals and the history pager ------------------------------------------------------------------------


class ExtendModal(discord.ui.Modal):
    """ "What happens next?" for extending a clip (from its button or the message command)."""

    def __init__(self, generation_id: int, locale: str | None) -> None:
        super().__init__(title=text("modal.extend.title", locale), custom_id=f"hanul:extend-modal:{generation_id}")
        self.generation_id = generation_id
        self.what_next: discord.ui.TextInput[ExtendModal] = discord.ui.TextInput(
            label=text("modal.extend.label", locale),
            style=discord.TextStyle.paragraph,
            max_length=1000,
            custom_id="what_next",
        )
        self.add_item(self.what_next)
        # Submitting is handled by custom_id (`modal_submitted`), so it works after a restart too.


class EditPromptModal(discord.ui.Modal):
    """The prompt, editable; submitting renders it again with the same seed."""

    def __init__(self, generation_id: int, prompt: str, locale: str | None) -> None:
        super().__init__(title=text("modal.edit.title", locale), custom_id=f"hanul:edit-modal:{generation_id}")
        self.generation_id = generation_id
        self.prompt: discord.ui.TextInput[EditPromptModal] = discord.ui.TextInput(
            label=text("modal.edit.label", locale),
            style=discord.TextStyle.paragraph,
            default=prompt[:PROMPT_INPUT_MAX],
            max_length=PROMPT_INPUT_MAX,
            custom_id="prompt",
        )
        self.add_item(self.prompt)
        # Submitting is handled by custom_id (`modal_submitted`), so it works after a restart too.


class PagerView(discord.ui.View):
    """Newer/older buttons for /history; the rerun buttons on the page are dynamic and outlive it."""

    def __init__(self, owner_id: int, turn_page: Any, page: int, pages: int, locale: str | None) -> None:
        super().__init__(timeout=600)
        self.owner_id = owner_id
        self.turn_page = turn_page
        self.page = page
        newer = discord.ui.Button(label=text("button.previous", locale), disabled=page <= 0, row=4)
        older = discord.ui.Button(label=text("button.next", locale), disabled=page >= pages - 1, row=4)
        newer.callback = self._newer  # type: ignore[method-assign]
        older.callback = self._older  # type: ignore[method-assign]
        self.add_item(newer)
        self.add_item(older)

    async def _newer(self, interaction: discord.Interaction) -> None:
        await self.turn_page(interaction, self.page - 1)

    async def _older(self, interaction: discord.Interaction) -> None:
        await self.turn_page(interaction, self.page + 1)
