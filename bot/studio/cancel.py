"""Cancelling and deleting: a member stops an unfinished request or removes a clip (their own, or as an admin)."""

from __future__ import annotations

import logging

from bot.limits import Refusal, Requester
from bot.store import GenerationRecord, Store
from bot.studio.access import DELETED, Access
from bot.videos import GeneratorError, VideoClient

log = logging.getLogger(__name__)


class Cancelling:
    """Stops requests here and on the generator."""

    def __init__(self, store: Store, access: Access, videos: VideoClient) -> None:
        self.store = store
        self.access = access
        self.videos = videos

    async def cancel(self, requester: Requester, generation_id: int | None) -> GenerationRecord:
        """Stop an unfinished request (its owner or an admin only); None: the member's newest one."""
        if generation_id is None:
            mine = await self.store.open_generations(requester.user_id)
            if not mine:
                raise Refusal("nothing_to_cancel")
            generation_id = mine[-1].id
        record = await self.access.owned(requester, generation_id)
        if not record.is_open:
            raise Refusal("already_finished")
        return await self.cancel_record(record)

    async def cancel_record(self, record: GenerationRecord) -> GenerationRecord:
        """Stop an unfinished request, whoever asks (the caller has checked)."""
        cancelled = await self.store.mark_cancelled(record.id)
        if record.video_id is not None:
            try:
                await self.videos.cancel(record.video_id)
            except GeneratorError as error:
                log.warning("could not cancel %s on the generator: %s", record.video_id, error)
        return cancelled

    async def delete(self, requester: Requester, generation_id: int) -> GenerationRecord:
        """Remove a clip (its owner or an admin only): cancelled if unfinished, deleted on the generator.
        Returns the clip as it was, so that the front end knows which post to take down."""
        record = await self.access.owned(requester, generation_id)
        if record.is_open:
            await self.cancel_record(record)
            return record
        if record.video_id is not None:
            try:
                await self.videos.cancel(record.video_id)
            except GeneratorError as error:
                log.warning("could not delete %s on the generator: %s", record.video_id, error)
        await self.store.update_generation(record.id, error=DELETED, result_message_id=None)
        return record
