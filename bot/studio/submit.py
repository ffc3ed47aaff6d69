"""Submitting: what the generator renders, where a result goes (`attach`), and queueing a request on the
generator (`submit`)."""

from __future__ import annotations

import logging
from typing import Any

from bot.director import Director
from bot.guild_config import DEFAULT_ASPECT
from bot.limits import Refusal
from bot.models import PENDING, QUEUED, RENDER, RENDERING, VIDEO_EDIT
from bot.settings import BotSettings
from bot.store import GenerationRecord, Store
from bot.studio.data import ImageInput
from bot.videos import ASPECT_SIZES, GeneratorError, GeneratorModel, VideoClient, VideoOrder, VideoState

log = logging.getLogger(__name__)


class Submitting:
    """Queues admitted requests on the generator, keeping their start images until then."""

    def __init__(self, settings: BotSettings, store: Store, director: Director, videos: VideoClient) -> None:
        self.settings = settings
        self.store = store
        self.director = director
        self.videos = videos
        # Start images live in memory from admission to submission only; they are not worth a table.
        self.images: dict[int, ImageInput] = {}
        self._model: GeneratorModel | None = None  # what the generator renders, once it has said

    async def video_model(self) -> GeneratorModel | None:
        """The generator's model (asked once, again after a failure); the director follows its family.
        None while the generator cannot say: sizes then go as the generic aspect sizes, which it maps itself."""
        if self._model is None:
            try:
                self._model = await self.videos.model()
            except GeneratorError as error:
                log.info("the generator did not say which model it renders (%s); asking again later", error.code)
                return None
            self.director.follow_model(self._model.family)
            log.info("the generator renders %s (%s prompts)", self._model.id, self._model.family)
        return self._model

    async def size_for(self, aspect: str) -> str:
        """The size to ask for `aspect`: the model's native one when known."""
        model = await self.video_model()
        return model.size_for(aspect) if model else ASPECT_SIZES[aspect]

    async def attach(
        self,
        record: GenerationRecord,
        *,
        channel_id: int | None = None,
        thread_id: int | None = None,
        status_message_id: int | None = None,
    ) -> GenerationRecord:
        """Remember where the result goes before it is queued, so a restart can post it there."""
        changes: dict[str, Any] = {}
        if channel_id is not None:
            changes["channel_id"] = channel_id
        if thread_id is not None:
            changes["thread_id"] = thread_id
        if status_message_id is not None:
            changes["status_message_id"] = status_message_id
        record = await self.store.update_generation(record.id, **changes)
        if thread_id is not None and record.conversation_id is not None:
            conversation = await self.store.conversation(record.conversation_id)
            if conversation is not None and conversation.thread_id is None:
                await self.store.update_conversation(record.conversation_id, thread_id=thread_id)
        return record

    async def submit(self, record: GenerationRecord) -> GenerationRecord:
        """Queue the request on the generator; a refusal there marks it failed and says why (Refusal). An
        unreachable generator raises GeneratorError("generator_down") and leaves the request pending, to be tried
        again."""
        if record.video_id is not None or record.status != PENDING:
            return record
        image = self.images.pop(record.id, None)
        # A character deleted since it was named (a refinement, extension or re-roll names its clip's) is left out:
        # the generator no longer has it, and the request renders from its description alone.
        named = record.params.get("characters") or ()
        kept = [c for c in named if "id" not in c or await self.store.character(int(c["id"])) is not None]
        order = VideoOrder(
            prompt=record.expanded_prompt,
            seconds=float(record.params.get("seconds") or self.settings.default_seconds),
            size=str(record.params.get("size") or ASPECT_SIZES[DEFAULT_ASPECT]),
            seed=record.seed,
            negative_prompt=record.negative_prompt,
            max_bytes=record.params.get("max_bytes"),
            sound=record.params.get("sound") is not False,
            user=f"discord:{record.user_id}",
            image=(image.filename, image.data, image.mime) if image else None,
            characters=tuple(str(c["generator_id"]) for c in kept),
            # One key per generation, whatever the number of attempts: the generator makes one job for it.
            request_key=f"hanul-{record.id}-{record.created_at.timestamp():.6f}",
        )
        try:
            if record.kind == "extend":
                parent = await self.store.generation(record.parent_id) if record.parent_id else None
                if parent is None or parent.video_id is None:
                    raise GeneratorError("not_found", "the clip to extend is gone")
                state = await self.videos.extend(parent.video_id, order)
            elif record.mode == VIDEO_EDIT:
                record, state = await self._edit(record, order)
            else:
                state = await self.videos.create(order)
        except GeneratorError as error:
            if error.code == "generator_down":
                raise  # nothing was queued: the request stays pending and is submitted again later
            await self.store.mark_failed(record.id, f"{error.code}: {error.detail}")
            code = "not_found" if error.code == "not_found" else error.code
            raise Refusal(code, {"detail": error.detail, "id": record.id}) from error
        queued = await self.store.update_if_unfinished(
            record.id,
            video_id=state.id,
            status=QUEUED if state.status == "queued" else RENDERING,
            seed=state.seed if state.seed is not None else record.seed,
        )
        if queued is None:  # cancelled while it was being queued: the job must not render for nothing
            await self.videos.cancel(state.id)
            return await self.store.update_generation(record.id, video_id=state.id)
        return queued

    async def _edit(self, record: GenerationRecord, order: VideoOrder) -> tuple[GenerationRecord, VideoState]:
        """Queue an edit of the record's source clip; a generator without edits (405) or without the source any
        more (it expired there) renders the prompt anew instead, and the record says so."""
        source = await self.store.generation(record.parent_id) if record.parent_id else None
        try:
            if source is None or source.video_id is None:
                raise GeneratorError("not_found", "the clip to edit is gone")
            return record, await self.videos.edit(source.video_id, order)
        except GeneratorError as error:
            if error.code not in ("not_supported", "not_found"):
                raise
            log.info("#%d: the clip could not be edited (%s); rendering it anew", record.id, error.code)
            why = "not_supported" if error.code == "not_supported" else "gone"
        state = await self.videos.create(order)
        params = dict(record.params) | {"edit_fallback": why}
        return await self.store.update_generation(record.id, mode=RENDER, params=params), state

    async def submit_again(self, record: GenerationRecord) -> GenerationRecord:
        """Submit while following, putting the start image back when the generator was unreachable (it is
        needed for the next try)."""
        image = self.images.get(record.id)
        try:
            return await self.submit(record)
        except GeneratorError:
            if image is not None:
                self.images[record.id] = image
            raise
