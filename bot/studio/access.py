"""Who may do what with a generation: admitting a new one against the limits, and finding one a member may act
on (their own, or one they may see where the result goes)."""

from __future__ import annotations

import dataclasses

from bot.limits import Limits, Refusal, Requester
from bot.store import GenerationRecord, NewGeneration, Store
from bot.studio.data import Destination

DELETED = "deleted"  # the error of a clip its owner (or an admin) deleted


class Access:
    """The limits and the ownership rules, over the store."""

    def __init__(self, store: Store, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    async def admit(self, requester: Requester, new: NewGeneration, *, follow_up: bool = False) -> GenerationRecord:
        """Record the request as pending if the member's limits allow it (Refusal otherwise). A follow-up copies its
        clip's length, which another server (or this one, before it chose a shorter longest clip) may have allowed:
        it is cut to the longest clip of the server asked from."""
        await self.store.ensure_member(requester.user_id, requester.name, requester.locale)
        config = await self.limits.configs.effective(requester.guild_id)
        seconds = new.params.get("seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > config.max_seconds:
            new = dataclasses.replace(new, params={**new.params, "seconds": config.max_seconds})
        record = await self.limits.admit(
            requester, lambda: self.store.create_generation(new), follow_up=follow_up, config=config
        )
        assert isinstance(record, GenerationRecord)
        return record

    async def owned(self, requester: Requester, generation_id: int) -> GenerationRecord:
        """The generation, if the member may manage it (its owner or an admin)."""
        record = await self.store.generation(generation_id)
        if record is None:
            raise Refusal("not_found", {"id": generation_id})
        if not self.limits.may_manage(requester, record):
            raise Refusal("not_owner")
        return record

    async def visible(self, requester: Requester, generation_id: int, destination: Destination) -> GenerationRecord:
        """The generation to act on, if it may be shown where the result goes: a member's own anywhere, others'
        only in the server they were made in. Otherwise it does not exist, as far as this member can tell: its
        prompt must never be copied into another server or a DM. A deleted clip is gone for all but its owner: nobody
        else may make it again (a re-run is the same clip)."""
        record = await self.store.generation(generation_id)
        if record is None or not self.limits.may_see(requester, record, destination.guild_id):
            raise Refusal("not_found", {"id": generation_id})
        if record.error == DELETED and record.user_id != requester.user_id:
            raise Refusal("not_found", {"id": generation_id})
        return record
