"""Following: a submitted request watched on the generator until it ends, progress reported, the clip
downloaded; a generator that is away is waited for with backoff, and the member told."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from bot.limits import Refusal
from bot.models import CANCELLED, COMPLETED, FAILED, PENDING, POSTED, RENDERING
from bot.retry import Backoff
from bot.settings import BotSettings
from bot.store import GenerationRecord, Store
from bot.studio.data import Outcome, Progress, ProgressCallback, StopWaiting, UnreachableCallback
from bot.studio.submit import Submitting
from bot.videos import TRANSIENT, GeneratorError, TooBig, VideoClient, VideoState

log = logging.getLogger(__name__)

# The most downloaded for a place with no upload limit (the console): Discord's largest (boost tier 3).
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024


class _Cancelled(Exception):
    """The member cancelled while the generator was away: stop waiting for it."""


class Following:
    """Sees one request through on the generator, from pending (or wherever a restart found it) to its clip."""

    def __init__(
        self, settings: BotSettings, store: Store, videos: VideoClient, submitting: Submitting, backoff: Backoff
    ) -> None:
        self.settings = settings
        self.store = store
        self.videos = videos
        self.submitting = submitting
        self.backoff = backoff

    async def follow(
        self,
        record: GenerationRecord,
        on_progress: ProgressCallback | None = None,
        *,
        poll_interval: float = 1.0,
        on_unreachable: UnreachableCallback | None = None,
        report_interval: float | None = None,
    ) -> Outcome:
        """Wait for the generator's job, reporting progress, and download the finished clip (status `completed`).

        While the generator cannot be reached the request stays open (pending, queued or rendering) and every
        step is tried again with backoff, `on_unreachable` telling the member; only after
        `backoff.give_up_after` seconds does it fail. Progress is reported at most every `report_interval` seconds
        (by default HANUL_PROGRESS_INTERVAL, Discord's edit rate; a terminal can take more)."""

        async def unreachable(error: GeneratorError, delay: float) -> None:
            latest = await self.store.generation(record.id)
            if latest is None or latest.status == CANCELLED:
                raise _Cancelled
            if on_unreachable is not None:
                await on_unreachable(latest, error, delay)

        try:
            interval = self.settings.progress_edit_interval if report_interval is None else report_interval
            return await self._follow(record, on_progress, poll_interval, interval, unreachable)
        except _Cancelled:
            latest = await self.store.generation(record.id)
            assert latest is not None
            return Outcome(latest)
        except StopWaiting:
            raise
        except Exception as error:
            # Whatever went wrong, the request must end (never stay open, holding the member's queue place) and
            # the member must be told.
            log.exception("following generation #%d failed", record.id)
            failed = await self.store.mark_failed(record.id, f"an unexpected error on my side ({type(error).__name__})")
            return Outcome(failed, error=failed.error)

    async def _follow(
        self,
        record: GenerationRecord,
        on_progress: ProgressCallback | None,
        poll_interval: float,
        report_interval: float,
        unreachable: Callable[[GeneratorError, float], Awaitable[None]],
    ) -> Outcome:
        if record.status == PENDING and record.video_id is None:
            if not record.expanded_prompt or (record.params.get("image") and record.id not in self.submitting.images):
                failed = await self.store.mark_failed(record.id, "interrupted by a restart before it was queued")
                return Outcome(failed, error=failed.error)
            pending = record
            try:
                record = await self.videos.retrying(
                    lambda: self.submitting.submit_again(pending), backoff=self.backoff, on_unreachable=unreachable
                )
            except Refusal as refusal:
                failed = await self.store.generation(record.id)
                assert failed is not None
                return Outcome(failed, error=str(refusal.values.get("detail") or refusal.code))
            except GeneratorError as error:
                return await self._unreachable_too_long(record, error)
        if record.status in (FAILED, CANCELLED, POSTED) or record.video_id is None:
            return Outcome(record, error=record.error)
        current = record

        async def report(state: VideoState) -> None:
            nonlocal current
            status = RENDERING if state.status == "in_progress" else current.status
            if state.status in ("queued", "in_progress") and (status, state.progress) != (
                current.status,
                current.progress,
            ):
                updated = await self.store.update_if_unfinished(current.id, status=status, progress=state.progress)
                current = updated or current
            if on_progress is not None:
                await on_progress(Progress(current, state))

        video_id = record.video_id
        if record.status != COMPLETED:
            try:
                state = await self.videos.track(
                    video_id,
                    report,
                    poll_interval=poll_interval,
                    report_interval=report_interval,
                    backoff=self.backoff,
                    on_unreachable=unreachable,
                )
            except GeneratorError as error:
                latest = await self.store.generation(record.id)
                assert latest is not None
                if latest.status == CANCELLED:
                    return Outcome(latest)
                if error.code in TRANSIENT:
                    return await self._unreachable_too_long(record, error)
                failed = await self.store.mark_failed(record.id, f"{error.code}: {error.detail}")
                return Outcome(failed, error=error.detail or error.code)
            latest = await self.store.generation(record.id)
            assert latest is not None
            if latest.status == CANCELLED:
                return Outcome(latest)
            if state.status == "failed":
                failed = await self.store.mark_failed(record.id, state.error or "the generator gave no reason")
                return Outcome(failed, error=failed.error)
            params = dict(latest.params) | {
                "rendered_seconds": state.seconds,
                "rendered_size": state.size,
                "has_audio": state.has_audio,
            }
            record = await self.store.mark_completed(
                record.id,
                completed_at=datetime.now(UTC),
                seed=state.seed if state.seed is not None else latest.seed,
                params=params,
            )
        # No more than the place accepts is downloaded: a larger clip is offered smaller, never held in memory.
        cap = int(record.params.get("upload_limit") or MAX_DOWNLOAD_BYTES)
        try:
            video = await self.videos.retrying(
                lambda: self.videos.download_video(video_id, cap), backoff=self.backoff, on_unreachable=unreachable
            )
        except TooBig as too_big:
            return Outcome(record, too_big=too_big.size, too_big_exact=too_big.exact)
        except GeneratorError as error:
            if error.code in TRANSIENT:
                return await self._unreachable_too_long(record, error)
            failed = await self.store.mark_failed(record.id, f"download failed: {error.detail}")
            return Outcome(failed, error=error.detail or error.code)
        return Outcome(record, video=video)

    async def _unreachable_too_long(self, record: GenerationRecord, error: GeneratorError) -> Outcome:
        waited = self.backoff.give_up_after
        length = f"{round(waited / 60)} min" if waited >= 90 else f"{waited:.2g} s"
        failed = await self.store.mark_failed(
            record.id, f"{error.code}: the generator could not be reached for {length} ({error.detail})"
        )
        return Outcome(failed, error=failed.error)
