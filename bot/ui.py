"""Buttons, views and modals. Buttons are `DynamicItem`s whose `custom_id` carries the generation id
(`hanul:<action>:<id>`), so a click works after a restart; each hands the click to `bot.actions`. Modals carry
the id the same way (`hanul:<action>-modal:<id>`) and their submissions are routed by it (see MODAL_ID)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

import discord

from bot.i18n import text

if TYPE_CHECKING:
    from bot.app import HanulBot

PROMPT_INPUT_MAX = 4000  # Discord's limit for a text input
MODAL_ID = re.compile(r"hanul:(?P<action>extend|edit)-modal:(?P<id>[0-9]{1,20})")


def modal_values(data: dict[str, Any]) -> dict[str, str]:
    """A submitted modal's text inputs by custom_id (in action rows, or in the newer label components)."""
    values: dict[str, str] = {}
    for row in data.get("components") or []:
        children = row.get("components") or ([row["component"]] if "component" in row else [])
        for child in children:
            if "custom_id" in child:
                values[str(child["custom_id"])] = str(child.get("value") or "")
    return values


def _actions(interaction: discord.Interaction) -> Any:
    bot: HanulBot = interaction.client  # type: ignore[assignment]
    return bot.actions


class GenerationButton(discord.ui.DynamicItem[discord.ui.Button], template=r"hanul:base:(?P<id>[0-9]+)"):
    """A button that acts on one generation; subclasses name the action."""

    key: ClassVar[str] = "base"  # the custom_id's middle part
    action: ClassVar[str] = "base"  # the method of `bot.actions` that handles a click
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
        await getattr(_actions(interaction), self.action)(interaction, self.generation_id)


class RerollButton(GenerationButton, template=r"hanul:reroll:(?P<id>[0-9]+)"):
    key = "reroll"
    action = "reroll"
    label_key = "button.reroll"
    emoji = "🎲"


class ExtendButton(GenerationButton, template=r"hanul:extend:(?P<id>[0-9]+)"):
    key = "extend"
    action = "open_extend"
    label_key = "button.extend"
    emoji = "➕"


class EditButton(GenerationButton, template=r"hanul:edit:(?P<id>[0-9]+)"):
    key = "edit"
    action = "open_edit"
    label_key = "button.edit"
    emoji = "✏️"


class DeleteButton(GenerationButton, template=r"hanul:delete:(?P<id>[0-9]+)"):
    key = "delete"
    action = "delete"
    label_key = "button.delete"
    emoji = "🗑️"
    button_style = discord.ButtonStyle.danger


class CancelButton(GenerationButton, template=r"hanul:cancel:(?P<id>[0-9]+)"):
    key = "cancel"
    action = "cancel"
    label_key = "button.cancel"
    emoji = "🛑"


class RerunButton(GenerationButton, template=r"hanul:rerun:(?P<id>[0-9]+)"):
    key = "rerun"
    action = "rerun"
    label_key = "button.rerun"
    emoji = "🔁"


class SmallerButton(GenerationButton, template=r"hanul:smaller:(?P<id>[0-9]+)"):
    key = "smaller"
    action = "smaller"
    label_key = "button.smaller"
    emoji = "📉"
    button_style = discord.ButtonStyle.primary


DYNAMIC_ITEMS: tuple[type[GenerationButton], ...] = (
    RerollButton,
    ExtendButton,
    EditButton,
    DeleteButton,
    CancelButton,
    RerunButton,
    SmallerButton,
)


def _view(*items: discord.ui.Item[Any]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


def clip_view(generation_id: int, locale: str | None) -> discord.ui.View:
    """The buttons under a posted clip."""
    return _view(
        RerollButton(generation_id, locale),
        ExtendButton(generation_id, locale),
        EditButton(generation_id, locale),
        DeleteButton(generation_id, locale),
    )


def prompt_view(generation_id: int, locale: str | None) -> discord.ui.View:
    return _view(EditButton(generation_id, locale))


def status_view(generation_id: int, locale: str | None) -> discord.ui.View:
    return _view(CancelButton(generation_id, locale))


def smaller_view(generation_id: int, locale: str | None) -> discord.ui.View:
    return _view(SmallerButton(generation_id, locale))


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
        # Submitting is handled by custom_id in `VideoCog.on_interaction`, so it works after a restart too.


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
        # Submitting is handled by custom_id in `VideoCog.on_interaction`, so it works after a restart too.


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
