"""Edits: a refinement that only changes a clip's look edits the clip itself, keeping its motion
(`POST /v1/videos/edits`); one that changes its subject or action is rendered anew. The director judges which;
the member can switch with the posted clip's button ("Keep the motion" / "Start over")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bot.director import LOCAL
from bot.limits import Refusal, Requester
from bot.models import COMPLETED, POSTED, RENDER, VIDEO_EDIT
from bot.store import GenerationRecord, Store
from bot.studio.access import Access
from bot.studio.data import Destination, Draft

# Kinds of generation a refinement produced: only these have a clip they could be an edit of.
REFINEMENTS = ("refine",)
SOURCE_KEY = "source_id"  # params: the finished clip a refinement may edit (the newest when it was asked)

# Makes a follow-up of a generation with the same prompt and seed, of the given kind (Drafting.again).
Again = Callable[..., Awaitable[Draft]]


def finished(record: GenerationRecord | None) -> bool:
    """Whether a generation is a clip the generator still has (it can be edited)."""
    return record is not None and record.video_id is not None and record.status in (COMPLETED, POSTED)


async def source_clip(store: Store, conversation_id: int) -> GenerationRecord | None:
    """The newest finished clip of a conversation: what a local change edits."""
    for record in await store.history_of_conversation(conversation_id):
        if finished(record):
            return record
    return None


def refinement_mode(change: str | None, source: GenerationRecord | None) -> str:
    """Edit the clip when the change is local and there is a finished clip to edit; render anew otherwise."""
    return VIDEO_EDIT if change == LOCAL and source is not None else RENDER


def switch_to(record: GenerationRecord) -> str | None:
    """The mode the clip's switch button offers: an edit of a clip rendered anew ("Keep the motion"), a new
    render of an edited clip ("Start over"); None when there is nothing to switch."""
    if record.kind not in REFINEMENTS:
        return None
    if record.mode == VIDEO_EDIT:
        return RENDER
    return VIDEO_EDIT if record.params.get(SOURCE_KEY) else None


class Edits:
    """Switches a refinement between an edit of its source clip and a new render."""

    def __init__(self, store: Store, access: Access, again: Again) -> None:
        self.store = store
        self.access = access
        self.again = again

    async def switch(self, requester: Requester, generation_id: int, mode: str, destination: Destination) -> Draft:
        """The same refinement made the other way: `VIDEO_EDIT` edits the clip it refined (keeping the motion),
        `RENDER` renders its prompt anew. Its owner (or an admin) only; the prompt and seed stay."""
        original = await self.access.owned(requester, generation_id)
        if original.kind not in REFINEMENTS or mode not in (RENDER, VIDEO_EDIT):
            raise Refusal("not_switchable")
        changes: dict[str, Any] = {"mode": mode}
        if mode == VIDEO_EDIT:
            source = await self.store.generation(int(original.params.get(SOURCE_KEY) or 0))
            if source is None or not finished(source):
                raise Refusal("nothing_to_edit")
            changes["parent_id"] = source.id
        draft = await self.again(requester, generation_id, destination, kind=original.kind)
        params = dict(draft.generation.params) | {"switched_from": original.id}
        params.pop("edit_fallback", None)
        record = await self.store.update_generation(draft.generation.id, params=params, **changes)
        return Draft(record, summary=draft.summary)
