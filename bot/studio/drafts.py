"""Drafting: a member's words checked, admitted against the limits (recorded as *pending*) and given a prompt by
the director — a new video, a refinement, an extension, a picture animated in a clip's conversation, or a follow-up
of an earlier clip (re-roll, re-run, a smaller version, an edited prompt). Every draft is built by one request
builder (`_new_generation`)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.director import CharacterNote, Director, PromptResult, Refused, Turn
from bot.guild_config import GuildConfig
from bot.limits import Refusal, Requester
from bot.models import COMPLETED, POSTED, VIDEO_EDIT
from bot.settings import BotSettings
from bot.store import GenerationRecord, NewGeneration, Store
from bot.studio.access import Access
from bot.studio.characters import Characters
from bot.studio.data import Destination, Draft, ImageInput, VideoOptions
from bot.studio.edits import SOURCE_KEY, refinement_mode, source_clip
from bot.studio.submit import DEFAULT_ASPECT, Submitting
from bot.videos import ASPECT_SIZES

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
MAX_IMAGE_BYTES = 16 * 1024 * 1024
UPLOAD_MARGIN = 0.97  # leave room for the multipart envelope under the channel's upload limit
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
SHRINK_FACTOR = 0.5  # a "smaller version" aims at half the byte cap
MIN_MAX_BYTES = 64 * 1024  # the generator's smallest byte cap
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


def _checked_words(value: str, limit: int = MAX_REQUEST_CHARS) -> str:
    """Member words cleaned, refused when empty or too long."""
    value = clean_text(value)
    if not value:
        raise Refusal("empty")
    _check_length(value, limit)
    return value


def _check_length(value: str | None, limit: int) -> None:
    if value is not None and len(value) > limit:
        raise Refusal("too_long", {"length": len(value), "limit": limit})


def check_picture(mime: str, size: int) -> None:
    """Refuse a start picture that is not a PNG, JPEG or WebP image, or too large (checked before it is even
    downloaded, when its size is known)."""
    if mime not in IMAGE_TYPES or size > MAX_IMAGE_BYTES:
        raise Refusal("image", {"limit": f"{MAX_IMAGE_BYTES // (1024 * 1024)} MiB"})


def new_seed() -> int:
    """A fresh random seed the member can see and reuse."""
    return secrets.randbelow(2**31 - 1)


def size_caps(destination: Destination) -> dict[str, int]:
    """The byte cap asked of the generator, and the upload limit the clip is checked against later."""
    if not destination.max_bytes:
        return {}
    cap = max(MIN_MAX_BYTES, int(destination.max_bytes * UPLOAD_MARGIN))
    return {"max_bytes": cap, "upload_limit": destination.max_bytes}


def _new_generation(
    requester: Requester,
    destination: Destination,
    *,
    kind: str,
    request_text: str,
    params: dict[str, Any],
    seed: int | None,
    based_on: GenerationRecord | None = None,
    conversation_id: int | None = None,
) -> NewGeneration:
    """The request builder: a generation of `kind` for the member, its result going to `destination`, continuing
    `based_on` (the clip it starts from) and its conversation when there is one and it is the member's own (another
    member's extension in the owner's thread must not become what the owner's next refinement builds on)."""
    if conversation_id is None and based_on is not None and based_on.user_id == requester.user_id:
        conversation_id = based_on.conversation_id
    return NewGeneration(
        user_id=requester.user_id,
        kind=kind,
        request_text=request_text,
        conversation_id=conversation_id,
        parent_id=based_on.id if based_on else None,
        params=params,
        seed=seed,
        guild_id=destination.guild_id,
        channel_id=destination.channel_id,
        thread_id=destination.thread_id,
    )


@dataclass
class _Prompt:
    prompt: str
    negative_prompt: str | None
    title: str
    language: str | None
    llm_written: bool
    notice: str | None = None
    summary: str | None = None
    change: str | None = None
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
        change=getattr(result, "change", None),
    )


def _as_typed(text: str, negative: str | None, style: str | None, descriptions: Sequence[str] = ()) -> _Prompt:
    prompt = f"{text.strip()}, {style.strip()}" if style else text.strip()
    if descriptions:  # a character is shown as its description says, even in a prompt posted as typed
        prompt = " ".join([prompt.rstrip(".") + ".", *(d.strip() for d in descriptions)])
    return _Prompt(prompt=prompt, negative_prompt=negative, title=_short_title(text), language=None, llm_written=False)


def _short_title(text: str) -> str:
    words = text.strip().split()
    title = " ".join(words[:8])
    return title if len(title) <= 60 else title[:59] + "…"


class Drafting:
    """Turns a member's words into a draft: checked, admitted, its prompt written and saved."""

    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        access: Access,
        director: Director,
        submitting: Submitting,
        cancel: Callable[[GenerationRecord], Awaitable[GenerationRecord]],
        characters: Characters,
    ) -> None:
        self.settings = settings
        self.characters = characters
        self.store = store
        self.access = access
        self.director = director
        self.submitting = submitting
        self.cancel = cancel  # stops an unfinished generation that an edit replaces
        # One refinement of a conversation at a time: the next one revises the prompt the previous one wrote.
        self._refining: dict[int, tuple[asyncio.Lock, int]] = {}  # the lock, and how many hold or await it

    # --- checks and the prompt -------------------------------------------------------------------

    def _check_options(self, text: str, options: VideoOptions, config: GuildConfig) -> None:
        """The options as the server asked from allows them (its longest clip)."""
        longest = config.max_seconds
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
            raise Refusal("seconds", {"seconds": str(seconds)[:40], "max": f"{longest:g}"})
        if options.aspect is not None and not isinstance(options.aspect, str):
            raise Refusal("aspect", {"aspect": str(options.aspect)[:40], "choices": ", ".join(ASPECT_SIZES)})
        if options.seconds is not None and not 1 <= options.seconds <= longest:
            raise Refusal("seconds", {"seconds": f"{options.seconds:g}", "max": f"{longest:g}"})
        if options.aspect is not None and options.aspect not in ASPECT_SIZES:
            raise Refusal("aspect", {"aspect": options.aspect, "choices": ", ".join(ASPECT_SIZES)})
        if options.image is not None:
            check_picture(options.image.mime, len(options.image.data))

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

    def _writer(
        self,
        text: str,
        *,
        negative: str | None,
        style: str | None,
        aspect: str,
        seconds: float,
        enhance: bool,
        characters: Sequence[CharacterNote] = (),
    ) -> Callable[[], Awaitable[_Prompt]]:
        """How a request's prompt is written: by the director when `enhance`, else as typed (screened the same);
        the named characters' descriptions are kept in it either way."""

        async def write() -> _Prompt:
            if not enhance:
                await self.director.screen(text, style)  # posted as typed: the same screen as any request
                return _as_typed(text, negative, style, [note.description for note in characters])
            result = await self.director.expand(
                text, style=style, aspect=aspect, seconds=seconds, characters=characters
            )
            return _from_director(result, negative)

        return write

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

    # --- drafts ----------------------------------------------------------------------------------

    async def new_video(
        self, requester: Requester, text: str, options: VideoOptions, destination: Destination
    ) -> Draft:
        """A brand-new clip (and a new conversation) from a member's request."""
        text = clean_text(text)
        options = dataclasses.replace(
            options,
            negative=clean_text(options.negative) or None if options.negative is not None else None,
            style=clean_text(options.style) or None if options.style is not None else None,
        )
        config = await self.access.limits.configs.effective(destination.guild_id)
        self._check_options(text, options, config)
        # Asked in a clip's thread: the thread is its owner's conversation, and goes on with this newest clip.
        in_thread = await self.store.conversation_by_thread(destination.thread_id) if destination.thread_id else None
        if in_thread is not None and in_thread.user_id != requester.user_id:
            raise Refusal("thread_owner", {"owner": f"<@{in_thread.user_id}>"})
        cast = await self.characters.cast(requester, options.characters, destination.guild_id)
        member = await self.store.ensure_member(requester.user_id, requester.name, requester.locale)
        # The member's own choice first, then the server's defaults (its /config over the operator's).
        seconds = options.seconds or member.seconds or config.default_seconds
        seconds = min(seconds, config.max_seconds)
        aspect = options.aspect or member.aspect or config.default_aspect
        style = options.style if options.style is not None else (member.style or config.default_style)
        enhance = options.enhance if options.enhance is not None else member.enhance
        sound = options.sound if options.sound is not None else member.sound
        params = {
            "seconds": seconds,
            "aspect": aspect,
            "size": await self.submitting.size_for(aspect),
            "style": style,
            "enhance": enhance,
            "sound": sound,
            **size_caps(destination),
            "image": options.image.filename if options.image else None,
        }
        if cast:
            # The generator's ids travel with every follow-up (refinements, extensions, re-rolls copy params).
            params["characters"] = [{"id": c.id, "generator_id": c.generator_id, "name": c.name} for c in cast]
        notes = [CharacterNote(c.name, c.description) for c in cast]
        seed = options.seed if options.seed is not None else new_seed()
        new = _new_generation(requester, destination, kind="generate", request_text=text, params=params, seed=seed)
        record = await self.access.admit(requester, new)
        if options.image is not None:
            self.submitting.images[record.id] = options.image
        write = self._writer(
            text,
            negative=options.negative,
            style=style,
            aspect=aspect,
            seconds=seconds,
            enhance=enhance,
            characters=notes,
        )
        written = await self._write(record, write)
        if in_thread is not None:  # writing in the thread now refines this clip, not the earlier one
            await self.store.update_conversation(in_thread.id, thread_id=None)
        conversation = await self.store.create_conversation(
            requester.user_id,
            guild_id=destination.guild_id,
            channel_id=destination.channel_id,
            thread_id=destination.thread_id,
            prompt=written.prompt,
            negative_prompt=written.negative_prompt,
        )
        await self.store.add_turn(conversation.id, "user", text)
        await self.store.add_turn(conversation.id, "assistant", written.prompt)
        record = await self._save_prompt(record, written, conversation_id=conversation.id)
        return Draft(record, notice=written.notice)

    async def refine(self, requester: Requester, conversation_id: int, message: str, destination: Destination) -> Draft:
        """The member said how to change the clip: the director revises the prompt; render again, same seed. Two
        messages sent quickly are taken in turn, the second revising what the first made of the prompt."""
        message = _checked_words(message)
        lock, waiting = self._refining.get(conversation_id, (asyncio.Lock(), 0))
        self._refining[conversation_id] = (lock, waiting + 1)
        try:
            async with lock:
                return await self._refine(requester, conversation_id, message, destination)
        finally:
            lock, waiting = self._refining[conversation_id]
            if waiting > 1:
                self._refining[conversation_id] = (lock, waiting - 1)
            else:
                del self._refining[conversation_id]

    async def _refine(
        self, requester: Requester, conversation_id: int, message: str, destination: Destination
    ) -> Draft:
        conversation = await self.store.conversation(conversation_id)
        if conversation is None or conversation.user_id != requester.user_id:
            raise Refusal("not_found", {"id": conversation_id})
        latest = await self._latest_in(conversation_id)
        source = await source_clip(self.store, conversation_id)  # what a local change edits
        params = dict(latest.params) if latest else {"seconds": self.settings.default_seconds}
        params.update(size_caps(destination))
        params.pop("switched_from", None)
        params.pop(SOURCE_KEY, None)
        if source is not None:
            params[SOURCE_KEY] = source.id
        seed = latest.seed if latest and latest.seed is not None else new_seed()
        new = _new_generation(
            requester,
            destination,
            kind="refine",
            request_text=message,
            params=params,
            seed=seed,
            based_on=latest,
            conversation_id=conversation_id,
        )
        record = await self.access.admit(requester, new, follow_up=True)
        history = [Turn(role=t.role, content=t.content) for t in await self.store.turns(conversation_id)]

        async def write() -> _Prompt:
            return _from_director(await self.director.refine(conversation.current_prompt, history, message))

        written = await self._write(record, write)
        if written.negative_prompt is None:
            written.negative_prompt = conversation.current_negative_prompt
        await self.store.update_conversation(
            conversation_id, prompt=written.prompt, negative_prompt=written.negative_prompt
        )
        await self.store.add_turn(conversation_id, "user", message)
        await self.store.add_turn(conversation_id, "assistant", written.summary or written.prompt)
        # A change of look edits the finished clip, keeping its motion; anything else renders anew.
        mode = refinement_mode(written.change, source)
        edit = {"mode": mode, "parent_id": source.id} if mode == VIDEO_EDIT and source is not None else {}
        record = await self._save_prompt(record, written, **edit)
        return Draft(record, notice=written.notice, summary=written.summary, change=written.change)

    async def extend(self, requester: Requester, parent_id: int, what_next: str, destination: Destination) -> Draft:
        """Continue a finished clip with what happens next."""
        what_next = _checked_words(what_next)
        parent = await self.access.visible(requester, parent_id, destination)
        if parent.video_id is None:
            raise Refusal("not_found", {"id": parent_id})
        if parent.status not in (COMPLETED, POSTED):
            raise Refusal("not_finished")
        config = await self.access.limits.configs.effective(destination.guild_id)
        params = dict(parent.params)
        params["seconds"] = min(float(params.get("seconds") or config.default_seconds), config.max_seconds)
        params.update(size_caps(destination))
        new = _new_generation(
            requester,
            destination,
            kind="extend",
            request_text=what_next,
            params=params,
            seed=new_seed(),
            based_on=parent,
        )
        record = await self.access.admit(requester, new, follow_up=parent.user_id == requester.user_id)

        async def write() -> _Prompt:
            return _from_director(await self.director.extend(parent.expanded_prompt, what_next))

        written = await self._write(record, write)
        if record.conversation_id is not None:
            await self.store.add_turn(record.conversation_id, "user", what_next)
            await self.store.add_turn(record.conversation_id, "assistant", written.prompt)
        record = await self._save_prompt(record, written)
        return Draft(record, notice=written.notice)

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
        """Start the video from a picture posted in a clip's thread (`conversation_id`: the thread's owner only) or
        in a reply to a clip (`clip_id`): a new take in that clip's conversation with its settings, the picture
        as its first frame. The member's words are the request; without words, the thread's prompt is."""
        words = clean_text(words)
        _check_length(words, MAX_REQUEST_CHARS)
        check_picture(picture.mime, len(picture.data))
        if conversation_id is not None:
            conversation = await self.store.conversation(conversation_id)
            if conversation is None or conversation.user_id != requester.user_id:
                raise Refusal("not_found", {"id": conversation_id})
            based_on = await self._latest_in(conversation_id)
            if based_on is None:
                raise Refusal("not_found", {"id": conversation_id})
            source_prompt = conversation.current_prompt or based_on.expanded_prompt
        else:
            assert clip_id is not None, "animate needs a clip or a conversation"
            based_on = await self.access.visible(requester, clip_id, destination)
            source_prompt = based_on.expanded_prompt
        if not source_prompt and not words:
            raise Refusal("empty")
        member = await self.store.ensure_member(requester.user_id, requester.name, requester.locale)
        params = dict(based_on.params)
        seconds = min(float(params.get("seconds") or self.settings.default_seconds), self.settings.max_seconds)
        aspect = str(params.get("aspect") or DEFAULT_ASPECT)
        style = params.get("style")
        enhance = params["enhance"] if params.get("enhance") is not None else member.enhance
        params.update(seconds=seconds, image=picture.filename, **size_caps(destination))
        request = words or str(source_prompt)
        new = _new_generation(
            requester,
            destination,
            kind="animate",
            request_text=request,
            params=params,
            seed=new_seed(),
            based_on=based_on,
        )
        record = await self.access.admit(requester, new, follow_up=based_on.user_id == requester.user_id)
        self.submitting.images[record.id] = picture  # submitted as the job's input_reference, as /video image: is
        write = self._writer(request, negative=None, style=style, aspect=aspect, seconds=seconds, enhance=enhance)
        written = await self._write(record, write)
        if written.negative_prompt is None:
            written.negative_prompt = based_on.negative_prompt
        if record.conversation_id is not None:  # the member's own clip: the take goes on in its conversation
            await self.store.update_conversation(
                record.conversation_id, prompt=written.prompt, negative_prompt=written.negative_prompt
            )
            if words:
                await self.store.add_turn(record.conversation_id, "user", words)
            await self.store.add_turn(record.conversation_id, "assistant", written.prompt)
        record = await self._save_prompt(record, written)
        return Draft(record, notice=written.notice)

    async def edit(self, requester: Requester, generation_id: int, prompt: str, destination: Destination) -> Draft:
        """The member's own wording of the prompt, rendered with the same seed; an unfinished original is
        cancelled, since the edit replaces it."""
        prompt = _checked_words(prompt, MAX_PROMPT_CHARS)
        original = await self.access.owned(requester, generation_id)
        try:
            await self.director.screen(prompt)  # a hand-written prompt is posted and rendered as it is
        except Refused as refused:
            raise Refusal("director", {"reason": refused.reason}) from refused
        draft = await self.again(requester, generation_id, destination, kind="edit", prompt=prompt)
        if original.is_open:
            await self.cancel(original)
        if original.conversation_id is not None:
            await self.store.update_conversation(original.conversation_id, prompt=prompt)
            await self.store.add_turn(original.conversation_id, "user", prompt)
        return draft

    async def again(
        self,
        requester: Requester,
        generation_id: int,
        destination: Destination,
        *,
        kind: str,
        seed: int | None = None,
        prompt: str | None = None,
        shrink: bool = False,
    ) -> Draft:
        """A follow-up of an earlier clip with its prompt: a new `seed`, a new `prompt`, or a tighter byte cap
        (`shrink`), everything else as it was."""
        original = await self.access.visible(requester, generation_id, destination)
        if not original.expanded_prompt:
            raise Refusal("not_found", {"id": generation_id})
        params = dict(original.params)
        params.update(size_caps(destination))
        if shrink:
            cap = int(params.get("max_bytes") or params.get("upload_limit") or DEFAULT_UPLOAD_LIMIT)
            params["max_bytes"] = max(MIN_MAX_BYTES, int(cap * SHRINK_FACTOR))
        new = _new_generation(
            requester,
            destination,
            kind=kind,
            request_text=prompt or original.request_text,
            params=params,
            seed=seed if seed is not None else original.seed,
            based_on=original,
        )
        record = await self.access.admit(requester, new, follow_up=original.user_id == requester.user_id)
        record = await self.store.update_generation(
            record.id,
            expanded_prompt=prompt or original.expanded_prompt,
            negative_prompt=original.negative_prompt,
            title=original.title,
            language=original.language,
            llm_written=original.llm_written and prompt is None,
        )
        return Draft(record)

    async def _latest_in(self, conversation_id: int) -> GenerationRecord | None:
        """The newest generation of a conversation that got a prompt written."""
        for record in await self.store.history_of_conversation(conversation_id):
            if record.expanded_prompt:
                return record
        return None
