"""The studio: turns a member's words into a generation — director → generator → store — as plain data.

Both front ends (the Discord cogs and the terminal console) drive the same steps, each an operation of its own
module:

1. drafting (`drafts.py`): `new_video` / `refine` / `extend` / `animate` / `reroll` / `rerun` / `smaller` / `edit`
   check the request, admit it against the limits (recording it as *pending*) and have the director write the prompt;
2. submitting (`submit.py`): the front end says where the result will go (`attach`), so a restart knows, then
   `submit` queues it on the generator;
3. following (`follow.py`): `follow` polls it, reporting progress, and downloads the clip;
4. looking (`look.py`): `look` shows the finished clip to the LLM when it sees images, and `placement` says
   where it may go under the server's output policy;
5. posting: the front end posts the clip and calls `mark_posted`, which succeeds once only;
6. cancelling (`cancel.py`): `cancel` and `delete`, for the owner or an admin.

Each server's own settings (its /config over the operator's environment) are read through `config` and changed
through `configure`.

Beside them: `edits.py` (a refinement that changes only the look edits the clip, keeping its motion; the clip's
button switches between an edit and a new render) and `characters.py` (members' reusable subjects).

`Studio` is the one object the front ends hold: it builds the parts and hands each call to its part; the
store stays behind it, the front ends asking it for what they show (history, queue, a member's settings).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from bot.director import Director
from bot.guild_config import BadConfig, GuildConfig
from bot.limits import Limits, Refusal, Requester
from bot.metrics import BotMetrics
from bot.models import COMPLETED, POSTED
from bot.retry import DEFAULT_BACKOFF, Backoff
from bot.settings import BotSettings
from bot.store import (
    ANYWHERE,
    UNCHANGED,
    CharacterRecord,
    ConversationRecord,
    GenerationRecord,
    MemberSettings,
    Store,
)
from bot.studio.access import Access
from bot.studio.cancel import Cancelling
from bot.studio.characters import Characters, CharacterSource
from bot.studio.data import (
    Destination,
    Draft,
    HistoryPage,
    ImageInput,
    Outcome,
    Progress,
    ProgressCallback,
    StopWaiting,
    UnreachableCallback,
    VideoOptions,
)
from bot.studio.drafts import Drafting, check_picture, clean_text, new_seed
from bot.studio.edits import Edits, switch_to
from bot.studio.follow import MAX_DOWNLOAD_BYTES, Following
from bot.studio.look import Looking, Placement, placement
from bot.studio.submit import Submitting
from bot.videos import GeneratorError, VideoClient

__all__ = [
    "MAX_DOWNLOAD_BYTES",
    "CharacterSource",
    "Destination",
    "Draft",
    "HistoryPage",
    "ImageInput",
    "Outcome",
    "Placement",
    "Progress",
    "StopWaiting",
    "Studio",
    "VideoOptions",
    "check_picture",
    "clean_text",
    "new_seed",
    "placement",
    "switch_to",
]


log = logging.getLogger(__name__)


class Studio:
    """The service behind every front end: no Discord types in or out."""

    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        limits: Limits,
        director: Director,
        videos: VideoClient,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or BotMetrics()  # the front ends count their deliveries here too
        self.backoff = backoff
        self.store = store  # for tests and the composition root; front ends use the operations below
        self.director = director
        self.videos = videos
        self._limits = limits
        access = Access(store, limits)
        self._submitting = Submitting(settings, store, director, videos)
        self._cancelling = Cancelling(store, access, videos)
        self._characters = Characters(store, director, videos)
        self._drafting = Drafting(
            settings, store, access, director, self._submitting, self._cancelling.cancel_record, self._characters
        )
        self._edits = Edits(store, access, self._drafting.again)
        self._following = Following(settings, store, videos, self._submitting, backoff)
        self._looking = Looking(store, director, videos)
        self._access = access

    # --- drafting --------------------------------------------------------------------------------

    async def new_video(
        self, requester: Requester, text: str, options: VideoOptions, destination: Destination
    ) -> Draft:
        """A brand-new clip (and a new conversation) from a member's request."""
        return await self._counted("new", self._drafting.new_video(requester, text, options, destination))

    async def refine(self, requester: Requester, conversation_id: int, message: str, destination: Destination) -> Draft:
        """The member said how to change the clip: the director revises the prompt; render again, same seed."""
        return await self._counted("refine", self._drafting.refine(requester, conversation_id, message, destination))

    async def extend(self, requester: Requester, parent_id: int, what_next: str, destination: Destination) -> Draft:
        """Continue a finished clip with what happens next."""
        return await self._counted("extend", self._drafting.extend(requester, parent_id, what_next, destination))

    async def animate(
        self,
        requester: Requester,
        picture: ImageInput,
        words: str,
        destination: Destination,
        *,
        clip_id: int | None = None,
        conversation_id: int | None = None,
    ) -> Draft:
        """Start the video from a picture posted in a clip's thread (`conversation_id`) or in a reply to a clip
        (`clip_id`), as `/video image:` does; the member's words, or else the thread's prompt, are the request."""
        return await self._drafting.animate(
            requester, picture, words, destination, clip_id=clip_id, conversation_id=conversation_id
        )

    async def reroll(self, requester: Requester, generation_id: int, destination: Destination) -> Draft:
        """The same prompt again with a new seed."""
        return await self._counted(
            "reroll", self._drafting.again(requester, generation_id, destination, kind="reroll", seed=new_seed())
        )

    async def rerun(self, requester: Requester, generation_id: int, destination: Destination) -> Draft:
        """The same request again, same prompt and seed (from /history)."""
        return await self._counted("rerun", self._drafting.again(requester, generation_id, destination, kind="rerun"))

    async def smaller(self, requester: Requester, generation_id: int, destination: Destination) -> Draft:
        """The same clip under a tighter byte cap, for a channel whose upload limit the first one missed; the
        generator's encoder picks the bitrate and resolution that fit."""
        return await self._counted(
            "smaller", self._drafting.again(requester, generation_id, destination, kind="smaller", shrink=True)
        )

    async def edit(self, requester: Requester, generation_id: int, prompt: str, destination: Destination) -> Draft:
        """The member's own wording of the prompt, rendered with the same seed (the original, if unfinished,
        cancelled)."""
        return await self._counted("edit", self._drafting.edit(requester, generation_id, prompt, destination))

    async def _counted(self, kind: str, drafting: Awaitable[Draft]) -> Draft:
        """A request of `kind` for the metrics, and its refusal by reason when it is refused."""
        self.metrics.requests.labels(kind).inc()
        try:
            return await drafting
        except Refusal as refusal:
            self.metrics.refusals.labels(refusal.code).inc()
            raise

    async def switch(self, requester: Requester, generation_id: int, mode: str, destination: Destination) -> Draft:
        """A refinement made the other way: an edit of the clip it refined, keeping the motion (`VIDEO_EDIT`), or
        its prompt rendered anew (`RENDER`)."""
        return await self._edits.switch(requester, generation_id, mode, destination)

    # --- characters ------------------------------------------------------------------------------

    async def create_character(
        self,
        requester: Requester,
        name: str,
        source: CharacterSource,
        *,
        description: str | None = None,
        share: bool = False,
    ) -> CharacterRecord:
        """Make a character from an image or one of the member's clips (see `Characters.create`)."""
        return await self._characters.create(requester, name, source, description=description, share=share)

    async def characters(self, requester: Requester, guild_id: int | None) -> list[CharacterRecord]:
        """The characters the member may use here: their own, and those shared in this server."""
        return await self._characters.usable(requester, guild_id)

    async def delete_character(self, requester: Requester, character: str) -> CharacterRecord:
        """Delete one of the member's own characters (by id or name)."""
        return await self._characters.delete(requester, character)

    async def recent_clips(self, requester: Requester, limit: int = 25) -> list[GenerationRecord]:
        """The member's newest finished clips (to make a character from), newest first."""
        records = await self.store.history(requester.user_id, limit=limit * 2)
        return [r for r in records if r.video_id is not None and r.status == POSTED and r.error != "deleted"][:limit]

    # --- submitting, following, posting ------------------------------------------------------------

    async def attach(
        self, record: GenerationRecord, *, thread_id: int | None = None, status_message_id: int | None = None
    ) -> GenerationRecord:
        """Remember where the result goes before it is queued, so a restart can post it there."""
        return await self._submitting.attach(record, thread_id=thread_id, status_message_id=status_message_id)

    async def submit(self, record: GenerationRecord) -> GenerationRecord:
        """Queue the request on the generator (Refusal: it refused, and the request failed; GeneratorError: it is
        away, and the request stays pending for `follow` to submit)."""
        try:
            return await self._submitting.submit(record)
        except Refusal as refusal:
            self.metrics.refusals.labels(refusal.code).inc()
            raise

    async def follow(
        self,
        record: GenerationRecord,
        on_progress: ProgressCallback | None = None,
        *,
        poll_interval: float = 1.0,
        on_unreachable: UnreachableCallback | None = None,
        report_interval: float | None = None,
    ) -> Outcome:
        """See the request through on the generator to its clip (see `Following.follow`)."""
        return await self._following.follow(
            record,
            on_progress,
            poll_interval=poll_interval,
            on_unreachable=on_unreachable,
            report_interval=report_interval,
        )

    async def preview(self, video_id: str) -> bytes | None:
        """The latest live preview of a clip being rendered (a small animated WebP), or None when there is none or
        the generator cannot give it now (a preview is never worth waiting for)."""
        try:
            return await self.videos.download_preview(video_id)
        except GeneratorError as error:
            log.info("no preview of %s: %s", video_id, error)
            return None

    async def look(self, record: GenerationRecord) -> GenerationRecord:
        """The finished clip with the LLM's look at it recorded (verdict, one-line description), when it sees
        images; otherwise as it was (the prompt checks stand)."""
        return await self._looking.look(record)

    async def mark_posted(self, record: GenerationRecord, message_id: int | None) -> bool:
        """Record the clip as posted (as `message_id`); False when it was already: post each clip once."""
        return await self.store.mark_posted(record.id, message_id)

    async def fail(self, record: GenerationRecord, reason: str) -> GenerationRecord:
        """End a request as failed, saying why."""
        return await self.store.mark_failed(record.id, reason)

    async def current(self, record: GenerationRecord) -> GenerationRecord | None:
        """The request as it is now (another task, a click, may have changed it since `record` was read)."""
        return await self.store.generation(record.id)

    async def open_requests(self, user_id: int | None = None) -> list[GenerationRecord]:
        """Unfinished requests, oldest first: all members' (None), or one member's."""
        return await self.store.open_generations(user_id)

    # --- cancelling ------------------------------------------------------------------------------

    async def cancel(self, requester: Requester, generation_id: int | None) -> GenerationRecord:
        """Stop an unfinished request (its owner or an admin only); None: the member's newest one."""
        return await self._cancelling.cancel(requester, generation_id)

    async def delete(self, requester: Requester, generation_id: int) -> GenerationRecord:
        """Remove a clip (its owner or an admin only); returns it as it was."""
        return await self._cancelling.delete(requester, generation_id)

    # --- what the front ends show and look up ------------------------------------------------------

    async def owned(self, requester: Requester, generation_id: int) -> GenerationRecord:
        """A generation the member may manage (Refusal `not_found` or `not_owner` otherwise)."""
        return await self._access.owned(requester, generation_id)

    async def clip_to_extend(self, generation_id: int) -> GenerationRecord:
        """A finished clip that can be extended (Refusal `not_found` or `not_finished` otherwise)."""
        record = await self.store.generation(generation_id)
        if record is None or record.video_id is None:
            raise Refusal("not_found", {"id": generation_id})
        if record.status not in (COMPLETED, POSTED):
            raise Refusal("not_finished")
        return record

    async def generation_by_message(self, message_id: int) -> GenerationRecord | None:
        """The generation whose status message or posted clip `message_id` is."""
        return await self.store.generation_by_message(message_id)

    async def clip_by_message(self, message_id: int) -> GenerationRecord | None:
        """The generation whose posted clip `message_id` is."""
        record = await self.store.generation_by_message(message_id)
        return record if record is not None and record.result_message_id == message_id else None

    async def conversation_in_thread(self, thread_id: int) -> ConversationRecord | None:
        return await self.store.conversation_by_thread(thread_id)

    async def history_page(
        self, viewer_id: int, owner_id: int, guild_id: int | None, page: int, page_size: int
    ) -> HistoryPage | None:
        """One page of what `owner_id` made, as `viewer_id` may see it from `guild_id`: a member sees all of
        their own; others only what was made in this server (a DM: nothing of theirs). None: nothing at all."""
        made_in = ANYWHERE if owner_id == viewer_id else guild_id
        total = await self.store.count_history(owner_id, made_in=made_in)
        if total == 0:
            return None
        pages = -(-total // page_size)
        page = max(0, min(page, pages - 1))
        records = await self.store.history(owner_id, limit=page_size, offset=page * page_size, made_in=made_in)
        return HistoryPage(records, page, pages)

    async def open_requests_seen_by(self, requester: Requester, guild_id: int | None) -> list[GenerationRecord]:
        """What is running, as the member may see it: everything for a global admin, this server's for its admins,
        otherwise their own."""
        if self._limits.is_global_admin(requester):
            return await self.store.open_generations()
        if self._limits.is_guild_admin(requester, guild_id):
            return await self.store.open_generations(guild_id=guild_id)  # this server's only
        return await self.store.open_generations(requester.user_id)

    async def member(self, user_id: int) -> MemberSettings:
        """A member's settings (defaults when never seen)."""
        return await self.store.member(user_id)

    async def reply_locale(self, user_id: int, guild_id: int | None, discord_locale: str | None = None) -> str | None:
        """The language to answer a member in: the one they chose (/settings), else their server's (/config),
        else their Discord language."""
        member = await self.store.member(user_id)
        if member.language:
            return member.language
        config = await self.config(guild_id)
        return config.language or discord_locale or member.locale

    # --- each server's settings --------------------------------------------------------------------

    async def config(self, guild_id: int | None) -> GuildConfig:
        """The settings in force in a server (the operator's defaults for a DM or the console)."""
        return await self._limits.configs.effective(guild_id)

    async def configure(
        self, requester: Requester, guild_id: int | None, changes: dict[str, Any], *, reset: tuple[str, ...] = ()
    ) -> GuildConfig:
        """Change a server's settings: only someone who manages that server, asking from inside it (Refusal
        `config_not_manager` otherwise); a value the server may not choose is refused (`config_value`), and nothing
        is saved."""
        if guild_id is None:
            raise Refusal("config_no_server")
        if not self._limits.is_guild_admin(requester, guild_id) and not self._limits.is_global_admin(requester):
            raise Refusal("config_not_manager")
        if not changes and not reset:
            return await self.config(guild_id)
        try:
            return await self._limits.configs.change(guild_id, requester.user_id, changes, reset=reset)
        except BadConfig as error:
            raise Refusal(f"config_{error.code}", {"field": "?", **error.values}) from error

    async def enrol(self, requester: Requester) -> MemberSettings:
        """The member's settings, recording them (name, locale) when first seen."""
        return await self.store.ensure_member(requester.user_id, requester.name, requester.locale)

    async def change_settings(self, requester: Requester, **changes: Any) -> MemberSettings:
        """Change some of a member's defaults (`UNCHANGED` leaves one, None clears it); a default length over
        the limit is refused."""
        await self.enrol(requester)
        seconds = changes.get("seconds", UNCHANGED)
        limit = self.settings.max_seconds
        if seconds is not UNCHANGED and seconds is not None and seconds > limit:
            raise Refusal("seconds", {"seconds": f"{seconds:g}", "max": f"{limit:g}"})
        return await self.store.update_member(requester.user_id, **changes)
