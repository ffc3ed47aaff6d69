"""Seeing a generation through on Discord: progress edits on its status message, then the clip posted in its
thread (or as a reply in a DM) as a normal bot message — never through an interaction token, which dies after
15 minutes. Before it is posted the LLM may look at it (its description becomes the attachment's alt text), and
the server's output policy decides whether it is posted, posted as a spoiler, kept for age-restricted channels or
withheld. One task per generation; after a restart `resume_all` picks up every unfinished one."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import discord

from bot.cogs._clips import clip_view, held_view, made_label, smaller_view, status_view
from bot.cogs._common import DEFAULT_UPLOAD_LIMIT, discord_text
from bot.i18n import Quoted, text
from bot.models import COMPLETED
from bot.progress import progress_line
from bot.retry import Backoff, retrying
from bot.store import GenerationRecord
from bot.studio import Outcome, Placement, Progress, StopWaiting, Studio, placement, switch_to
from bot.videos import GeneratorError

log = logging.getLogger(__name__)
T = TypeVar("T")
HISTORY_LOOKBACK = 50  # messages searched for a clip posted just before a crash
UNKNOWN_MESSAGE = 10008  # Discord's error code for a message that does not exist (any more)


# Everything a Discord call can fail with besides the bot's own bugs.
DISCORD_ERRORS = (discord.HTTPException, discord.RateLimited, aiohttp.ClientError, TimeoutError, ConnectionError)


def transient(error: BaseException) -> bool:
    """Discord trouble that passes: rate limits discord.py would not wait out, 5xx, dropped connections."""
    if isinstance(error, discord.RateLimited):
        return True
    if isinstance(error, discord.HTTPException):
        return error.status == 429 or error.status >= 500
    return isinstance(error, aiohttp.ClientError | TimeoutError | ConnectionError)


async def with_retries(what: str, call: Callable[[], Awaitable[T]], backoff: Backoff) -> T:
    """`call()`, retried with backoff while Discord's trouble is transient (on top of discord.py's own retries
    of 429 and 500/502/504); anything else, or trouble lasting `backoff.give_up_after`, is raised."""

    started = time.monotonic()  # Discord's trouble is timed from the first try, not the first failure

    def passes(error: Exception) -> bool:
        return transient(error) and time.monotonic() - started < backoff.give_up_after

    async def said(error: Exception, delay: float) -> None:
        log.warning("%s failed (%s); retrying in %.1fs", what, _describe(error), delay)

    return await retrying(call, backoff=backoff, passes=passes, on_retry=said)


def _describe(error: BaseException) -> str:
    if isinstance(error, discord.HTTPException):
        return f"HTTP {error.status} {error.text[:100]}"
    return type(error).__name__


def _mib(size: int) -> str:
    """A byte count as people read it."""
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KiB" if size >= 1024 else f"{size} bytes"
    return f"{size / (1024 * 1024):.1f} MiB"


def _seconds_label(record: GenerationRecord) -> str:
    """The clip's length as rendered, else as asked."""
    rendered = record.params.get("rendered_seconds")
    if rendered:
        return str(rendered)
    asked = record.params.get("seconds")
    return f"{asked:g}" if isinstance(asked, int | float) else "?"


def _upload_limit(record: GenerationRecord) -> int:
    return int(record.params.get("upload_limit") or DEFAULT_UPLOAD_LIMIT)


def _fits(record: GenerationRecord, outcome: Outcome) -> bool:
    """Whether the clip itself can be posted where it goes (else it is offered smaller)."""
    return outcome.video is not None and len(outcome.video) <= _upload_limit(record)


class Deliveries:
    """Runs one delivery task per generation, never two."""

    def __init__(
        self,
        client: discord.Client,
        studio: Studio,
        *,
        poll_interval: float = 1.0,
        generator_problem: Callable[[], Awaitable[str | None]] | None = None,
    ) -> None:
        self.client = client
        self.studio = studio
        self.backoff: Backoff = studio.backoff
        self.poll_interval = poll_interval
        self.generator_problem = generator_problem  # why the generator cannot render anything, if it cannot
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._previewed: set[int] = set()  # generations whose status message carries a live preview
        self._gone: set[int] = set()  # generations whose status message was deleted: no more edits of it

    def start(self, record: GenerationRecord) -> None:
        """Follow a submitted generation to its posted clip in the background."""
        generation_id = record.id
        if generation_id in self._tasks:
            return
        task = asyncio.create_task(self._deliver(record), name=f"hanul-delivery-{generation_id}")
        self._tasks[generation_id] = task
        task.add_done_callback(lambda _: self._ended(generation_id))

    def _ended(self, generation_id: int) -> None:
        self._tasks.pop(generation_id, None)
        self._gone.discard(generation_id)
        self._previewed.discard(generation_id)

    def running(self) -> list[int]:
        return sorted(self._tasks)

    async def wait_idle(self) -> None:
        """Wait until no delivery is running (tests, and a graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def resume_all(self) -> int:
        """After a restart: follow every generation that was not yet posted, each exactly once."""
        count = 0
        for record in await self.studio.open_requests():
            if record.channel_id is None and record.thread_id is None:
                await self.studio.fail(record, "interrupted before it had a place to go")
                continue
            self.start(record)
            count += 1
        if count:
            log.info("resuming %d unfinished generation(s)", count)
        return count

    async def close(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # --- one generation --------------------------------------------------------------------------

    def _channel(self, record: GenerationRecord, channel_id: int) -> discord.PartialMessageable:
        kind = discord.ChannelType.private if record.guild_id is None else None
        return self.client.get_partial_messageable(channel_id, guild_id=record.guild_id, type=kind)

    def _status_message(self, record: GenerationRecord) -> discord.PartialMessage | None:
        """Where the status message lives: a thread made from it carries its id, so then it sits in the parent
        channel; otherwise in the thread (a refinement) or the channel (a DM)."""
        if record.status_message_id is None:
            return None
        if record.thread_id is not None and record.thread_id != record.status_message_id:
            channel_id = record.thread_id
        else:
            channel_id = record.channel_id or record.thread_id
        assert channel_id is not None
        return self._channel(record, channel_id).get_partial_message(record.status_message_id)

    async def _edit_status(
        self,
        record: GenerationRecord,
        content: str,
        view: discord.ui.View | None,
        *,
        final: bool = False,
        preview: bytes | None = None,
    ) -> None:
        """Edit the status message; a final edit (done, failed, cancelled) is retried through Discord's
        trouble, since nothing would correct it later and the member would see a stuck progress bar. `preview` (a
        live preview of the render) replaces the message's attachment; a final edit takes the preview away."""
        message = self._status_message(record)
        if message is None or record.id in self._gone:
            return
        files: dict[str, Any] = {}
        if final and record.id in self._previewed:
            files["attachments"] = []
            self._previewed.discard(record.id)

        async def edit() -> None:
            if preview is not None:  # a fresh file each try: discord.py closes it after sending
                files["attachments"] = [discord.File(io.BytesIO(preview), filename=f"hanul-preview-{record.id}.webp")]
            await message.edit(content=content, view=view, **files)

        try:
            if final:
                await with_retries(f"editing the status of #{record.id}", edit, self.backoff)
            else:
                await edit()
        except DISCORD_ERRORS as error:
            # A deleted status message must not stop the clip from being posted, nor be edited again.
            if isinstance(error, discord.NotFound) and error.code == UNKNOWN_MESSAGE:
                self._gone.add(record.id)
                log.info("the status message of #%d was deleted; it is no longer updated", record.id)
                return
            log.warning("could not edit the status message of #%d: %s", record.id, _describe(error))
            return
        if preview is not None:
            self._previewed.add(record.id)

    async def _deliver(self, record: GenerationRecord) -> None:
        try:
            await self._deliver_once(record)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("delivering generation #%d failed", record.id)
            await self._end_after_crash(record, error)

    async def _end_after_crash(self, record: GenerationRecord, error: Exception) -> None:
        """A delivery that crashed must not leave its request open (holding the member's place in the queue)
        or its status message saying it is still working."""
        try:
            latest = await self.studio.current(record)
            if latest is None or not latest.is_open:
                return
            failed = await self.studio.fail(latest, f"an unexpected error on my side ({type(error).__name__})")
            locale = await self.studio.reply_locale(latest.user_id, latest.guild_id)
            await self._failed(failed, failed.error or "?", locale)
        except Exception:
            log.exception("could not record the failure of generation #%d", record.id)

    async def _deliver_once(self, record: GenerationRecord) -> None:
        studio = self.studio
        locale = await studio.reply_locale(record.user_id, record.guild_id)
        title = Quoted(record.display_title)
        # Completed before this delivery began: a crash may have come after the upload but before it was noted.
        maybe_posted = record.status == COMPLETED
        waiting = False
        shown_preview: int | None = None  # the generator's `preview_at` of the preview on the status message

        async def on_progress(progress: Progress) -> None:
            nonlocal waiting, shown_preview
            waiting = False
            state = progress.state
            if not state.finished:
                line = progress_line(title, state, locale, say=discord_text)
                preview = None
                if state.preview_at is not None and state.preview_at != shown_preview:
                    # Rides on the progress edit: no more edits than Discord's rate allows (HANUL_PROGRESS_INTERVAL).
                    preview = await studio.preview(state.id)
                    shown_preview = state.preview_at if preview is not None else shown_preview
                await self._edit_status(progress.generation, line, status_view(record.id, locale), preview=preview)

        async def on_unreachable(current: GenerationRecord, error: GeneratorError, delay: float) -> None:
            # Said once per outage (edits are rate-limited); progress edits replace it when the generator is back.
            nonlocal waiting
            problem = await self.generator_problem() if self.generator_problem is not None else None
            if problem:
                raise StopWaiting(problem)  # it answers, but cannot render anything until it is fixed
            if not waiting:
                waiting = True
                await self._edit_status(
                    current, discord_text("status.waiting", locale, title=title), status_view(current.id, locale)
                )

        try:
            outcome = await studio.follow(
                record, on_progress, poll_interval=self.poll_interval, on_unreachable=on_unreachable
            )
        except StopWaiting as stop:
            # The request stays saved (it is made after the restart that follows the fix); the admin reads why.
            log.error("#%d waits for a generator that cannot render: %s", record.id, stop.reason)
            latest = await studio.current(record) or record
            broken = discord_text("status.generator_broken", locale, title=title)
            await self._edit_status(latest, broken, status_view(latest.id, locale), final=True)
            return
        if outcome.cancelled:
            studio.metrics.deliveries.labels("cancelled").inc()
            cancelled = discord_text("status.cancelled", locale, title=title)
            await self._edit_status(outcome.generation, cancelled, None, final=True)
        elif outcome.video is None and outcome.too_big is None:
            if outcome.generation.posted_at is None:
                await self._failed(outcome.generation, outcome.error or outcome.generation.error or "?", locale)
        else:
            await self._post(outcome, locale, maybe_posted=maybe_posted)

    async def _failed(self, record: GenerationRecord, error: str, locale: str | None) -> None:
        self.studio.metrics.deliveries.labels("failed").inc()
        failed = discord_text("status.failed", locale, title=Quoted(record.display_title), error=Quoted(error))
        await self._edit_status(record, failed, None, final=True)

    async def _post(self, outcome: Outcome, locale: str | None, *, maybe_posted: bool = False) -> None:
        """Post the clip exactly once: skipped when the database says it was posted already, or when the channel
        shows it was (a crash between the upload and the database write); each upload carries a nonce Discord
        enforces, so a retry after a lost answer returns the message already made instead of a second one."""
        record = await self.studio.current(outcome.generation)
        if record is None or record.posted_at is not None:
            return
        target = self._channel(record, record.thread_id or record.channel_id or 0)
        earlier = await self._earlier_post(record, target) if maybe_posted else None
        where = Placement.POST
        if earlier is None and outcome.video is not None:
            record = await self.studio.look(record)
            config = await self.studio.config(record.guild_id)
            where = placement(record.verdict, config.output_policy, self._age_restricted(record))
        try:
            sent = earlier or await with_retries(
                f"posting the clip of #{record.id}",
                lambda: self._send(record, target, outcome, locale, where),
                self.backoff,
            )
        except DISCORD_ERRORS as error:
            log.warning("could not post the clip of #%d: %s", record.id, _describe(error))
            failed = await self.studio.fail(record, f"could not post the clip on Discord: {_describe(error)}")
            await self._failed(failed, failed.error or "?", locale)
            return
        if not await self.studio.mark_posted(record, sent.id):
            return
        posted = where in (Placement.POST, Placement.SPOILER)
        outcome_label = ("posted" if _fits(record, outcome) else "too_big") if posted else "held"
        self.studio.metrics.deliveries.labels(outcome_label).inc()
        title = Quoted(record.display_title)
        done = discord_text("status.done" if posted else "status.held", locale, title=title, link=sent.jump_url)
        await self._edit_status(record, done, None, final=True)

    def _age_restricted(self, record: GenerationRecord) -> bool:
        """Whether the clip's channel is age-restricted (a thread is when its channel is); a DM never is."""
        if record.guild_id is None:
            return False
        for channel_id in (record.thread_id, record.channel_id):
            channel = self.client.get_channel(channel_id) if channel_id else None
            if channel is not None and hasattr(channel, "is_nsfw"):
                return bool(channel.is_nsfw())
        return False

    def _age_restricted_channels(self, record: GenerationRecord, allowed: tuple[int, ...]) -> list[int]:
        """The server's age-restricted text channels where Hanul may be used."""
        guild = self.client.get_guild(record.guild_id) if record.guild_id else None
        if guild is None:
            return []
        return [c.id for c in guild.text_channels if c.is_nsfw() and (not allowed or c.id in allowed)]

    async def _earlier_post(
        self, record: GenerationRecord, target: discord.PartialMessageable
    ) -> discord.Message | None:
        """The clip (or its too-big notice) if this bot already posted it in the target channel."""
        me = self.client.user
        filenames = {f"hanul-{record.id}.mp4", f"SPOILER_hanul-{record.id}.mp4"}
        # A too-big notice carries the smaller-version button; a withheld clip's notice its delete button.
        markers = {f"hanul:smaller:{record.id}", f"hanul:delete:{record.id}"}
        try:
            async for message in target.history(limit=HISTORY_LOOKBACK):
                if me is None or message.author.id != me.id:
                    continue
                if any(a.filename in filenames for a in message.attachments):
                    return message
                ids = [
                    getattr(c, "custom_id", None) for row in message.components for c in getattr(row, "children", [])
                ]
                if markers & set(ids):
                    return message
        except (discord.HTTPException, aiohttp.ClientError, TimeoutError) as error:
            log.warning("could not read the history of %s to check #%d: %s", target.id, record.id, _describe(error))
        return None

    async def _send(
        self,
        record: GenerationRecord,
        target: discord.PartialMessageable,
        outcome: Outcome,
        locale: str | None,
        where: Placement = Placement.POST,
    ) -> discord.Message:
        """One upload attempt (a fresh file each time: discord.py closes it after sending)."""
        reference = None
        if record.thread_id is None and record.status_message_id is not None:
            # No threads in DMs: the clip answers its status message, keeping the reply chain.
            reference = discord.MessageReference(
                message_id=record.status_message_id, channel_id=target.id, fail_if_not_exists=False
            )
        limit = _upload_limit(record)
        mention = discord.AllowedMentions(users=[discord.Object(record.user_id)], roles=False, everyone=False)
        size = outcome.too_big or len(outcome.video or b"")
        if not _fits(record, outcome):
            shown = _mib(size) if outcome.too_big_exact else f"> {_mib(limit)}"
            return await target.send(
                text("result.too_big", locale, size=shown, limit=_mib(limit)),
                view=smaller_view(record.id, locale),
                reference=reference,  # type: ignore[arg-type]
                allowed_mentions=mention,
                nonce=f"hanul-big-{record.id}",
            )
        if where in (Placement.WITHHOLD, Placement.ELSEWHERE):
            return await target.send(
                await self._held_notice(record, where, locale),
                view=held_view(record.id, locale),
                reference=reference,  # type: ignore[arg-type]
                allowed_mentions=mention,
                nonce=f"hanul-held-{record.id}",
            )
        caption = discord_text(
            "result.caption",
            locale,
            title=Quoted(record.display_title),
            seconds=_seconds_label(record),
            size=record.params.get("rendered_size") or record.params.get("size") or "?",
            seed=record.seed,
            member=f"<@{record.user_id}>",
        )
        made = made_label(record, locale)
        if made:
            caption = f"{caption} · {made}"
        return await target.send(
            caption,
            file=discord.File(
                io.BytesIO(outcome.video),
                filename=f"hanul-{record.id}.mp4",
                spoiler=where is Placement.SPOILER,
                description=record.description or None,  # the LLM's one line: the clip's alt text
            ),
            view=clip_view(record.id, locale, switch=switch_to(record)),
            reference=reference,  # type: ignore[arg-type]
            allowed_mentions=mention,
            nonce=f"hanul-clip-{record.id}",
        )

    async def _held_notice(self, record: GenerationRecord, where: Placement, locale: str | None) -> str:
        """Why the clip is not here: withheld, or only for the server's age-restricted channels (named)."""
        member, title = f"<@{record.user_id}>", Quoted(record.display_title)
        if where is Placement.WITHHOLD:
            return discord_text("result.withheld", locale, member=member, title=title)
        config = await self.studio.config(record.guild_id)
        channels = self._age_restricted_channels(record, config.allowed_channel_ids)
        if not channels:
            return discord_text("result.no_age_restricted_channel", locale, member=member, title=title)
        places = ", ".join(f"<#{c}>" for c in channels)
        return discord_text("result.elsewhere", locale, member=member, title=title, channels=places)
