"""The studio: turns a member's words into a generation — director → generator → store — as plain data.

Both front ends (the Discord cogs and the terminal console) drive the same steps:

1. `new_video` / `refine` / `extend` / `reroll` / `edit` check the request, admit it against the limits
   (recording it as *pending*) and have the director write the prompt;
2. the front end says where the result will go (`attach`: thread, status message), so a restart knows;
3. `submit` queues the job on the generator;
4. `follow` polls it, reporting progress, and downloads the clip;
5. the front end posts the clip and calls `Store.mark_posted`, which succeeds once only.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.director import Director, PromptResult, Refused, Turn
from bot.limits import Limits, Refusal, Requester
from bot.models import CANCELLED, COMPLETED, FAILED, PENDING, POSTED, QUEUED, RENDERING
from bot.retry import DEFAULT_BACKOFF, Backoff
from bot.settings import BotSettings
from bot.store import GenerationRecord, NewGeneration, Store
from bot.videos import (
    ASPECT_SIZES,
    TRANSIENT,
    GeneratorError,
    GeneratorModel,
    TooBig,
    VideoClient,
    VideoSpec,
    VideoState,
)

log = logging.getLogger(__name__)

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
MAX_IMAGE_BYTES = 16 * 1024 * 1024
DEFAULT_ASPECT = "16:9"
UPLOAD_MARGIN = 0.97  # leave room for the multipart envelope under the channel's upload limit
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
SHRINK_FACTOR = 0.5  # a "smaller version" aims at half the byte cap
MIN_MAX_BYTES = 64 * 1024  # the generator's smallest byte cap
# The most downloaded for a place with no upload limit (the console): Discord's largest (boost tier 3).
MAX_DOWNLOAD_BYTES = 100 * 1024 * 1024
MAX_SEED = 2**31 - 2
# The longest member text each field takes (the slash command declares the same; Discord does not re-check).
MAX_REQUEST_CHARS = 1500
MAX_NEGATIVE_CHARS = 500
MAX_STYLE_CHARS = 200
MAX_PROMPT_CHARS = 4000  # an edited prompt (the modal's limit)
# Control characters (NUL, escapes, …) but not newline and tab: they break PostgreSQL text and Discord's layout.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(value: str) -> str:
    """Member text without control characters, trimmed."""
    return _CONTROL.sub(" ", value).strip()


def _check_length(value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise Refusal("too_long", {"length": len(value), "limit": limit})


@dataclass(frozen=True)
class ImageInput:
    """A picture to start the video from."""

    filename: str
    data: bytes
    mime: str


@dataclass(frozen=True)
class VideoOptions:
    """What the member chose for one request; None means "my default"."""

    seconds: float | None = None
    aspect: str | None = None
    seed: int | None = None
    negative: str | None = None
    style: str | None = None
    enhance: bool | None = None
    image: ImageInput | None = None


@dataclass(frozen=True)
class Destination:
    """Where a result goes, as plain ids, and how large a file may be there."""

    guild_id: int | None = None
    channel_id: int | None = None
    thread_id: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class Job:
    """An admitted request with its prompt written, ready to be attached and submitted."""

    generation: GenerationRecord
    notice: str | None = None  # why the prompt was not LLM-written, for the member
    summary: str | None = None  # what a refinement changed


@dataclass(frozen=True)
class Outcome:
    """How a generation ended: a clip to post, a failure to explain, or a cancellation."""

    generation: GenerationRecord
    video: bytes | None = None
    error: str | None = None
    too_big: int | None = None  # the clip's size when it is larger than where it goes accepts
    too_big_exact: bool = True  # False: the generator did not say; `too_big` is only what was read before stopping

    @property
    def cancelled(self) -> bool:
        return self.generation.status == CANCELLED


@dataclass(frozen=True)
class Progress:
    """One progress report for a generation."""

    generation: GenerationRecord
    state: VideoState


ProgressCallback = Callable[[Progress], Awaitable[None]]
# Told each time the generator cannot be reached: the generation (still open), the error, the seconds until
# the next try.
UnreachableCallback = Callable[[GenerationRecord, GeneratorError, float], Awaitable[None]]


class _Cancelled(Exception):
    """The member cancelled while the generator was away: stop waiting for it."""


class StopWaiting(Exception):
    """Raised by a front end's `on_unreachable` to stop following a request that cannot be made now (the
    generator's model failed to load); the request stays open, to be made after the next start."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Prompt:
    prompt: str
    negative_prompt: str | None
    title: str
    language: str | None
    llm_written: bool
    notice: str | None = None
    summary: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _from_director(result: PromptResult, negative: str | None = None) -> _Prompt:
    negatives = [n for n in (result.negative_prompt, negative) if n]
    return _Prompt(
        prompt=result.prompt,
        negative_prompt=", ".join(negatives) or None,
        title=result.title,
        language=result.language,
        llm_written=result.llm_written,
        notice=result.notice,
        summary=getattr(result, "summary", None),
    )


def _as_typed(text: str, negative: str | None, style: str | None) -> _Prompt:
    prompt = f"{text.strip()}, {style.strip()}" if style else text.strip()
    return _Prompt(prompt=prompt, negative_prompt=negative, title=_short_title(text), language=None, llm_written=False)


def _short_title(text: str) -> str:
    words = text.strip().split()
    title = " ".join(words[:8])
    return title if len(title) <= 60 else title[:59] + "…"


def new_seed() -> int:
    """A fresh random seed the member can see and reuse."""
    return secrets.randbelow(2**31 - 1)


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
    ) -> None:
        self.settings = settings
        self.backoff = backoff
        self.store = store
        self.limits = limits
        self.director = director
        self.videos = videos
        # Start images live in memory from admission to submission only; they are not worth a table.
        self._images: dict[int, ImageInput] = {}
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

    # --- checks ----------------------------------------------------------------------------------

    def _check_options(self, text: str, options: VideoOptions) -> None:
        if not text.strip():
            raise Refusal("empty")
        _check_length(text, MAX_REQUEST_CHARS)
        _check_length(options.negative, MAX_NEGATIVE_CHARS)
        _check_length(options.style, MAX_STYLE_CHARS)
        # Discord checks option types and ranges in its client only; a forged or buggy payload is checked here.
        seed = options.seed
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
            raise Refusal("seed", {"seed": str(seed)[:40], "max": MAX_SEED})
        seconds = options.seconds
        if seconds is not None and not isinstance(seconds, int | float):
            raise Refusal("seconds", {"seconds": str(seconds)[:40], "max": f"{self.settings.max_seconds:g}"})
        if options.aspect is not None and not isinstance(options.aspect, str):
            raise Refusal("aspect", {"aspect": str(options.aspect)[:40], "choices": ", ".join(ASPECT_SIZES)})
        if options.seconds is not None and not 1 <= options.seconds <= self.settings.max_seconds:
            raise Refusal("seconds", {"seconds": f"{options.seconds:g}", "max": f"{self.settings.max_seconds:g}"})
        if options.aspect is not None and options.aspect not in ASPECT_SIZES:
            raise Refusal("aspect", {"aspect": options.aspect, "choices": ", ".join(ASPECT_SIZES)})
        image = options.image
        if image is not None and (image.mime not in IMAGE_TYPES or len(image.data) > MAX_IMAGE_BYTES):
            raise Refusal("image", {"limit": f"{MAX_IMAGE_BYTES // (1024 * 1024)} MiB"})

    async def _admit(self, requester: Requester, new: NewGeneration, *, follow_up: bool = False) -> GenerationRecord:
        await self.store.ensure_member(requester.user_id, requester.name, requester.locale)
        record = await self.limits.admit(requester, lambda: self.store.create_generation(new), follow_up=follow_up)
        assert isinstance(record, GenerationRecord)
        return record

    async def _owned(self, requester: Requester, generation_id: int) -> GenerationRecord:
        record = await self.store.generation(generation_id)
        if record is None:
            raise Refusal("not_found", {"id": generation_id})
        if not self.limits.may_manage(requester, record):
            raise Refusal("not_owner")
        return record

    async def _visible(self, requester: Requester, generation_id: int, destination: Destination) -> GenerationRecord:
        """The generation to act on, if it may be shown where the result goes: a member's own anywhere, others'
        only in the server they were made in. Otherwise it does not exist, as far as this member can tell: its
        prompt must never be copied into another server or a DM."""
        record = await self.store.generation(generation_id)
        if record is None or not self.limits.may_see(requester, record, destination.guild_id):
            raise Refusal("not_found", {"id": generation_id})
        return record

    async def _write(self, record: GenerationRecord, write: Callable[[], Awaitable[_Prompt]]) -> _Prompt:
        """Run the director; a refusal or a crash leaves the request recorded as failed, never half-done."""
        try:
            return await write()
        except Refused as refused:
            await self.store.mark_failed(record.id, f"refused: {refused.reason}")
            raise Refusal("director", {"reason": refused.reason}) from refused
        except Exception:
            await self.store.mark_failed(record.id, "the prompt director crashed")
            raise

    async def _save_prompt(self, record: GenerationRecord, written: _Prompt, **more: Any) -> GenerationRecord:
        return await self.store.update_generation(
            record.id,
            expanded_prompt=written.prompt,
            negative_prompt=written.negative_prompt,
            title=(written.title or _short_title(record.request_text))[:200],
            language=written.language,
            llm_written=written.llm_written,
            **more,
        )

    # --- requests --------------------------------------------------------------------------------

    async def new_video(self, requester: Requester, text: str, options: VideoOptions, destination: Destination) -> Job:
        """A brand-new clip (and a new conversation) from a member's request."""
        text = clean_text(text)
        options = dataclasses.replace(
            options,
            negative=clean_text(options.negative) or None if options.negative is not None else None,
            style=clean_text(options.style) or None if options.style is not None else None,
        )
        self._check_options(text, options)
        member = await self.store.ensure_member(requester.user_id, requester.name, requester.locale)
        seconds = options.seconds or member.seconds or self.settings.default_seconds
        seconds = min(seconds, self.settings.max_seconds)
        aspect = options.aspect or member.aspect or DEFAULT_ASPECT
        style = options.style if options.style is not None else member.style
        enhance = options.enhance if options.enhance is not None else member.enhance
        params = {
            "seconds": seconds,
            "aspect": aspect,
            "size": await self.size_for(aspect),
            "style": style,
            "enhance": enhance,
            **self._size_caps(destination),
            "image": options.image.filename if options.image else None,
        }
        record = await self._admit(
            requester,
            NewGeneration(
                user_id=requester.user_id,
                kind="generate",
                request_text=text.strip(),
                params=params,
                seed=options.seed if options.seed is not None else new_seed(),
                guild_id=destination.guild_id,
                channel_id=destination.channel_id,
                thread_id=destination.thread_id,
            ),
        )
        if options.image is not None:
            self._images[record.id] = options.image

        async def write() -> _Prompt:
            if not enhance:
                await self.director.screen(text, style)  # posted as typed: the same screen as any request
                return _as_typed(text, options.negative, style)
            result = await self.director.expand(text.strip(), style=style, aspect=aspect, seconds=seconds)
            return _from_director(result, options.negative)

        written = await self._write(record, write)
        conversation = await self.store.create_conversation(
            requester.user_id,
            guild_id=destination.guild_id,
            channel_id=destination.channel_id,
            thread_id=destination.thread_id,
            prompt=written.prompt,
            negative_prompt=written.negative_prompt,
        )
        await self.store.add_turn(conversation.id, "user", text.strip())
        await self.store.add_turn(conversation.id, "assistant", written.prompt)
        record = await self._save_prompt(record, written, conversation_id=conversation.id)
        return Job(record, notice=written.notice)

    async def refine(self, requester: Requester, conversation_id: int, message: str, destination: Destination) -> Job:
        """The member said how to change the clip: the director revises the prompt; render again, same seed."""
        message = clean_text(message)
        if not message:
            raise Refusal("empty")
        _check_length(message, MAX_REQUEST_CHARS)
        conversation = await self.store.conversation(conversation_id)
        if conversation is None or conversation.user_id != requester.user_id:
            raise Refusal("not_found", {"id": conversation_id})
        latest = await self._latest_in(conversation_id)
        params = dict(latest.params) if latest else {"seconds": self.settings.default_seconds}
        params.update(self._size_caps(destination))
        record = await self._admit(
            requester,
            NewGeneration(
                user_id=requester.user_id,
                kind="refine",
                request_text=message.strip(),
                conversation_id=conversation_id,
                parent_id=latest.id if latest else None,
                params=params,
                seed=latest.seed if latest and latest.seed is not None else new_seed(),
                guild_id=destination.guild_id,
                channel_id=destination.channel_id,
                thread_id=destination.thread_id,
            ),
            follow_up=True,
        )
        history = [Turn(role=t.role, content=t.content) for t in await self.store.turns(conversation_id)]

        async def write() -> _Prompt:
            result = await self.director.refine(conversation.current_prompt, history, message.strip())
            return _from_director(result)

        written = await self._write(record, write)
        if written.negative_prompt is None:
            written.negative_prompt = conversation.current_negative_prompt
        await self.store.update_conversation(
            conversation_id, prompt=written.prompt, negative_prompt=written.negative_prompt
        )
        await self.store.add_turn(conversation_id, "user", message.strip())
        await self.store.add_turn(conversation_id, "assistant", written.summary or written.prompt)
        record = await self._save_prompt(record, written)
        return Job(record, notice=written.notice, summary=written.summary)

    async def extend(self, requester: Requester, parent_id: int, what_next: str, destination: Destination) -> Job:
        """Continue a finished clip with what happens next."""
        what_next = clean_text(what_next)
        if not what_next:
            raise Refusal("empty")
        _check_length(what_next, MAX_REQUEST_CHARS)
        parent = await self._visible(requester, parent_id, destination)
        if parent.video_id is None:
            raise Refusal("not_found", {"id": parent_id})
        if parent.status not in (COMPLETED, POSTED):
            raise Refusal("not_finished")
        params = dict(parent.params)
        params["seconds"] = min(
            float(params.get("seconds") or self.settings.default_seconds), self.settings.max_seconds
        )
        params.update(self._size_caps(destination))
        record = await self._admit(
            requester,
            NewGeneration(
                user_id=requester.user_id,
                kind="extend",
                request_text=what_next.strip(),
                conversation_id=parent.conversation_id,
                parent_id=parent.id,
                params=params,
                seed=new_seed(),
                guild_id=destination.guild_id,
                channel_id=destination.channel_id,
                thread_id=destination.thread_id,
            ),
            follow_up=parent.user_id == requester.user_id,
        )

        async def write() -> _Prompt:
            return _from_director(await self.director.extend(parent.expanded_prompt, what_next.strip()))

        written = await self._write(record, write)
        if parent.conversation_id is not None:
            await self.store.add_turn(parent.conversation_id, "user", what_next.strip())
            await self.store.add_turn(parent.conversation_id, "assistant", written.prompt)
        record = await self._save_prompt(record, written)
        return Job(record, notice=written.notice)

    async def reroll(self, requester: Requester, generation_id: int, destination: Destination) -> Job:
        """The same prompt again with a new seed."""
        return await self._again(requester, generation_id, destination, kind="reroll", seed=new_seed())

    async def rerun(self, requester: Requester, generation_id: int, destination: Destination) -> Job:
        """The same request again, same prompt and seed (from /history)."""
        return await self._again(requester, generation_id, destination, kind="rerun")

    async def edit(self, requester: Requester, generation_id: int, prompt: str, destination: Destination) -> Job:
        """The member's own wording of the prompt, rendered with the same seed; an unfinished original is
        cancelled, since the edit replaces it."""
        prompt = clean_text(prompt)
        if not prompt:
            raise Refusal("empty")
        _check_length(prompt, MAX_PROMPT_CHARS)
        original = await self._owned(requester, generation_id)
        try:
            await self.director.screen(prompt)  # a hand-written prompt is posted and rendered as it is
        except Refused as refused:
            raise Refusal("director", {"reason": refused.reason}) from refused
        job = await self._again(requester, generation_id, destination, kind="edit", prompt=prompt.strip())
        if original.is_open:
            await self._cancel_record(original)
        if original.conversation_id is not None:
            await self.store.update_conversation(original.conversation_id, prompt=prompt.strip())
            await self.store.add_turn(original.conversation_id, "user", prompt.strip())
        return job

    async def smaller(self, requester: Requester, generation_id: int, destination: Destination) -> Job:
        """The same clip under a tighter byte cap, for a channel whose upload limit the first one missed; the
        generator's encoder picks the bitrate and resolution that fit."""
        return await self._again(requester, generation_id, destination, kind="smaller", shrink=True)

    async def _again(
        self,
        requester: Requester,
        generation_id: int,
        destination: Destination,
        *,
        kind: str,
        seed: int | None = None,
        prompt: str | None = None,
        shrink: bool = False,
    ) -> Job:
        original = await self._visible(requester, generation_id, destination)
        if not original.expanded_prompt:
            raise Refusal("not_found", {"id": generation_id})
        params = dict(original.params)
        params.update(self._size_caps(destination))
        if shrink:
            cap = int(params.get("max_bytes") or params.get("upload_limit") or DEFAULT_UPLOAD_LIMIT)
            params["max_bytes"] = max(MIN_MAX_BYTES, int(cap * SHRINK_FACTOR))
        record = await self._admit(
            requester,
            NewGeneration(
                user_id=requester.user_id,
                kind=kind,
                request_text=prompt or original.request_text,
                conversation_id=original.conversation_id,
                parent_id=original.id,
                params=params,
                seed=seed if seed is not None else original.seed,
                guild_id=destination.guild_id,
                channel_id=destination.channel_id,
                thread_id=destination.thread_id,
            ),
            follow_up=original.user_id == requester.user_id,
        )
        record = await self.store.update_generation(
            record.id,
            expanded_prompt=prompt or original.expanded_prompt,
            negative_prompt=original.negative_prompt,
            title=original.title,
            language=original.language,
            llm_written=original.llm_written and prompt is None,
        )
        return Job(record)

    # --- the job's life --------------------------------------------------------------------------

    async def attach(
        self,
        generation_id: int,
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
        record = await self.store.update_generation(generation_id, **changes)
        if thread_id is not None and record.conversation_id is not None:
            conversation = await self.store.conversation(record.conversation_id)
            if conversation is not None and conversation.thread_id is None:
                await self.store.update_conversation(record.conversation_id, thread_id=thread_id)
        return record

    async def submit(self, generation_id: int) -> GenerationRecord:
        """Queue the job on the generator; a refusal there marks it failed and says why (Refusal). An unreachable
        generator raises GeneratorError("generator_down") and leaves the request pending, to be tried again."""
        record = await self.store.generation(generation_id)
        if record is None:
            raise Refusal("not_found", {"id": generation_id})
        if record.video_id is not None or record.status != PENDING:
            return record
        spec = VideoSpec(
            prompt=record.expanded_prompt,
            seconds=float(record.params.get("seconds") or self.settings.default_seconds),
            size=str(record.params.get("size") or ASPECT_SIZES[DEFAULT_ASPECT]),
            seed=record.seed,
            negative_prompt=record.negative_prompt,
            max_bytes=record.params.get("max_bytes"),
            user=f"discord:{record.user_id}",
            image=self._image_for(record),
            # One key per generation, whatever the number of attempts: the generator makes one job for it.
            request_key=f"hanul-{record.id}-{record.created_at.timestamp():.6f}",
        )
        try:
            if record.kind == "extend":
                parent = await self.store.generation(record.parent_id) if record.parent_id else None
                if parent is None or parent.video_id is None:
                    raise GeneratorError("not_found", "the clip to extend is gone")
                state = await self.videos.extend(parent.video_id, spec)
            else:
                state = await self.videos.create(spec)
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

    def _image_for(self, record: GenerationRecord) -> tuple[str, bytes, str] | None:
        image = self._images.pop(record.id, None)
        return (image.filename, image.data, image.mime) if image else None

    async def follow(
        self,
        generation_id: int,
        on_progress: ProgressCallback | None = None,
        *,
        poll_interval: float = 1.0,
        on_unreachable: UnreachableCallback | None = None,
    ) -> Outcome:
        """Wait for the job, reporting progress, and download the finished clip (status `completed`).

        While the generator cannot be reached the request stays open (pending, queued or rendering) and every
        step is tried again with backoff, `on_unreachable` telling the member; only after
        `backoff.give_up_after` seconds does it fail."""
        record = await self.store.generation(generation_id)
        if record is None:
            raise LookupError(f"generation {generation_id} does not exist")

        async def unreachable(error: GeneratorError, delay: float) -> None:
            latest = await self.store.generation(generation_id)
            if latest is None or latest.status == CANCELLED:
                raise _Cancelled
            if on_unreachable is not None:
                await on_unreachable(latest, error, delay)

        try:
            return await self._follow(record, on_progress, poll_interval, unreachable)
        except _Cancelled:
            latest = await self.store.generation(generation_id)
            assert latest is not None
            return Outcome(latest)
        except StopWaiting:
            raise
        except Exception as error:
            # Whatever went wrong, the request must end (never stay open, holding the member's queue place) and
            # the member must be told.
            log.exception("following generation #%d failed", generation_id)
            failed = await self.store.mark_failed(
                generation_id, f"an unexpected error on my side ({type(error).__name__})"
            )
            return Outcome(failed, error=failed.error)

    async def _follow(
        self,
        record: GenerationRecord,
        on_progress: ProgressCallback | None,
        poll_interval: float,
        unreachable: Callable[[GeneratorError, float], Awaitable[None]],
    ) -> Outcome:
        if record.status == PENDING and record.video_id is None:
            if not record.expanded_prompt or (record.params.get("image") and record.id not in self._images):
                failed = await self.store.mark_failed(record.id, "interrupted by a restart before it was queued")
                return Outcome(failed, error=failed.error)
            image = self._images.get(record.id)
            try:
                record = await self.videos.retrying(
                    lambda: self._submit_keeping(record.id, image), backoff=self.backoff, on_unreachable=unreachable
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
                    report_interval=self.settings.progress_edit_interval,
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
            params = dict(latest.params) | {"rendered_seconds": state.seconds, "rendered_size": state.size}
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

    async def _submit_keeping(self, generation_id: int, image: ImageInput | None) -> GenerationRecord:
        """Submit, putting the start image back when the generator was unreachable (it is needed next time)."""
        try:
            return await self.submit(generation_id)
        except GeneratorError:
            if image is not None:
                self._images[generation_id] = image
            raise

    async def _unreachable_too_long(self, record: GenerationRecord, error: GeneratorError) -> Outcome:
        waited = self.backoff.give_up_after
        length = f"{round(waited / 60)} min" if waited >= 90 else f"{waited:.2g} s"
        failed = await self.store.mark_failed(
            record.id, f"{error.code}: the generator could not be reached for {length} ({error.detail})"
        )
        return Outcome(failed, error=failed.error)

    async def cancel(self, requester: Requester, generation_id: int) -> GenerationRecord:
        """Stop an unfinished job (its owner or an admin only)."""
        record = await self._owned(requester, generation_id)
        if not record.is_open:
            raise Refusal("already_finished")
        return await self._cancel_record(record)

    async def _cancel_record(self, record: GenerationRecord) -> GenerationRecord:
        cancelled = await self.store.mark_cancelled(record.id)
        if record.video_id is not None:
            try:
                await self.videos.cancel(record.video_id)
            except GeneratorError as error:
                log.warning("could not cancel %s on the generator: %s", record.video_id, error)
        return cancelled

    async def delete(self, requester: Requester, generation_id: int) -> GenerationRecord:
        """Remove a clip (its owner or an admin only): cancelled if unfinished, deleted on the generator."""
        record = await self._owned(requester, generation_id)
        if record.is_open:
            return await self._cancel_record(record)
        if record.video_id is not None:
            try:
                await self.videos.cancel(record.video_id)
            except GeneratorError as error:
                log.warning("could not delete %s on the generator: %s", record.video_id, error)
        return await self.store.update_generation(record.id, error="deleted", result_message_id=None)

    # --- helpers ---------------------------------------------------------------------------------

    async def _latest_in(self, conversation_id: int) -> GenerationRecord | None:
        """The newest generation of a conversation that got a prompt written."""
        for record in await self.store.history_of_conversation(conversation_id):
            if record.expanded_prompt:
                return record
        return None

    @staticmethod
    def _size_caps(destination: Destination) -> dict[str, int]:
        """The byte cap asked of the generator, and the upload limit the clip is checked against later."""
        if not destination.max_bytes:
            return {}
        cap = max(MIN_MAX_BYTES, int(destination.max_bytes * UPLOAD_MARGIN))
        return {"max_bytes": cap, "upload_limit": destination.max_bytes}
