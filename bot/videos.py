"""The bot's only way to the generator: the `openai` SDK's `videos` resource, wrapped in plain dataclasses.

`VideoClient` creates, extends, edits, remixes, polls, downloads and cancels jobs, and makes, reads and deletes
characters; `track` follows one job until it
finishes (asking the generator to hold each answer until the job changes), reporting progress no more often than
asked, and hands back the final state.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import openai

from bot import retry
from bot.retry import DEFAULT_BACKOFF, Backoff
from hanul_core.held import seen_token

T = TypeVar("T")
log = logging.getLogger(__name__)

# OpenAI shut down its own Sora API and marked the SDK's `videos` resource deprecated; the calls still work
# against any server speaking the API, such as Hanul's generator.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"openai(\..*)?$")
warnings.filterwarnings("ignore", message=r".*videos.*", category=DeprecationWarning)

ASPECT_SIZES: dict[str, str] = {"16:9": "1280x720", "9:16": "720x1280", "1:1": "1024x1024"}
ASPECT_ORIENTATIONS: dict[str, str] = {"16:9": "landscape", "9:16": "portrait", "1:1": "square"}
_SIZE = re.compile(r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$")


@dataclass(frozen=True)
class GeneratorModel:
    """What the generator renders (`GET /v1/models`): its family decides the prompt style, its native sizes the
    size each aspect is asked for."""

    id: str
    family: str
    native_sizes: dict[str, str]  # orientation -> "WxH"
    has_sound: bool = False  # its clips come with sound (the listing's `audio`)

    def size_for(self, aspect: str) -> str:
        """The model's own size for `aspect` (the generic OpenAI size when the model names none)."""
        return self.native_sizes.get(ASPECT_ORIENTATIONS[aspect]) or ASPECT_SIZES[aspect]

    @classmethod
    def from_listing(cls, data: list[dict[str, Any]]) -> GeneratorModel:
        """The first model of a `/v1/models` answer, checked; GeneratorError("generator_invalid") when unusable."""
        entry = data[0] if data and isinstance(data[0], dict) else {}
        family = entry.get("family")
        sizes = entry.get("native_sizes")
        if not isinstance(entry.get("id"), str) or family not in ("ltx", "ltx2", "wan"):
            raise _invalid(f"the model list names no model of a known family: {_preview(entry)}")
        if not isinstance(sizes, dict):
            sizes = {}
        native = {
            orientation: size
            for orientation, size in sizes.items()
            if orientation in ASPECT_ORIENTATIONS.values() and isinstance(size, str) and _SIZE.match(size)
        }
        return cls(id=entry["id"], family=family, native_sizes=native, has_sound=entry.get("audio") is True)


TERMINAL = ("completed", "failed")
_VIDEO_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
STATUSES = ("queued", "in_progress", "completed", "failed")  # the OpenAI Videos API's, and all the bot knows
# Generator trouble that passes: it is down or restarting (connection refused, 5xx), or briefly overloaded (429).
TRANSIENT = ("generator_down", "generator_busy")
HOLD_SECONDS = 20.0  # `track` asks the generator to hold an unchanged answer this long (Hanul's `?wait=`)
HELD_HEADER = "hanul-wait"  # a generator that holds answers says so with this header
MAX_PREVIEW_BYTES = 512 * 1024  # a live preview is a few tens of kilobytes; anything far larger is not one
MAX_SPRITESHEET_BYTES = 8 * 1024 * 1024
MIN_ASK_GAP = 0.25  # against a generator that does not hold, `track` asks about one job at most this often


@dataclass(frozen=True)
class VideoOrder:
    """Everything the generator needs to render one clip, as the bot orders it (the generator's own render
    parameters are `generator.render.VideoSpec`)."""

    prompt: str
    seconds: float
    size: str
    seed: int | None = None
    negative_prompt: str | None = None
    max_bytes: int | None = None
    sound: bool = True  # False asks for a silent clip (the extra field `sound`); a silent model ignores it
    user: str | None = None
    image: tuple[str, bytes, str] | None = None  # (filename, bytes, mime) for image-to-video
    characters: tuple[str, ...] = ()  # the generator's character ids whose reference frames condition the render
    strength: float | None = None  # an edit's: how far it departs from its source (None: the generator's default)
    # Sent as Idempotency-Key: if a create times out after the generator queued it, the retry gets that job.
    request_key: str | None = None


@dataclass(frozen=True)
class VideoState:
    """A job as the generator last described it."""

    id: str
    status: str  # queued | in_progress | completed | failed
    progress: int = 0
    queue_position: int | None = None
    eta_seconds: float | None = None
    seed: int | None = None
    seconds: str | None = None
    size: str | None = None  # as rendered, when the generator says (else as asked)
    error: str | None = None
    has_audio: bool = False  # the finished MP4 carries sound
    preview_at: int | None = None  # when the generator last made a live preview of the render (Hanul's field)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def key(self) -> tuple[str, int, int | None]:
        """What a change in the member's progress line is."""
        return self.status, self.progress, self.queue_position

    @property
    def shown(self) -> str:
        """This state as the generator's `seen` parameter spells it (`hanul_core.held`)."""
        return seen_token(self.status, self.progress, self.queue_position)


@dataclass(frozen=True)
class CharacterState:
    """A character as the generator describes it (`POST|GET /v1/videos/characters`)."""

    id: str
    name: str
    created_at: int | None = None
    description: str | None = None


class GeneratorError(Exception):
    """The generator refused or could not be reached; `code` picks the member-facing sentence."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        # generator_busy | generator_down | generator_rejected | generator_invalid (an answer that is not the API's,
        # e.g. a web page from a proxy or another server at GENERATOR_URL) | not_found | not_supported (the
        # generator has no such endpoint: 405)
        self.code = code
        self.detail = detail


class TooBig(Exception):
    """The clip is larger than the caller can use (the channel's upload limit): `size` bytes, or at least that
    many when the generator did not say (`exact` False)."""

    def __init__(self, size: int, *, exact: bool = True) -> None:
        super().__init__(f"{size} bytes")
        self.size = size
        self.exact = exact


def is_mp4(head: bytes) -> bool:
    """Whether a file starts like an MP4 (an ISO media file: its first box is `ftyp`)."""
    return len(head) >= 12 and head[4:8] == b"ftyp"


def _preview(value: object) -> str:
    """The start of an unusable answer, on one line, for the log and the member."""
    shown = " ".join(str(value).split())
    return repr(shown[:60] + ("…" if len(shown) > 60 else ""))


def _invalid(what: str) -> GeneratorError:
    return GeneratorError(
        "generator_invalid",
        f"the video generator sent an answer I can't use ({what}); an admin should check GENERATOR_URL and its log",
    )


def _number(value: object, kind: type[int] | type[float]) -> int | float | None:
    """An optional numeric field, or None when it is missing or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = kind(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _seconds(value: float) -> str:
    return f"{value:g}"


def _error_detail(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return error.message


def _character(answer: Any) -> CharacterState:
    """The SDK's character response (or a list entry) as a CharacterState; generator_invalid when it is not one."""
    data = answer if isinstance(answer, dict) else getattr(answer, "model_dump", lambda: None)()
    if not isinstance(data, dict):
        raise _invalid(f"expected a character, got {_preview(answer)}")
    character_id, name = data.get("id"), data.get("name")
    if not isinstance(character_id, str) or not _VIDEO_ID.fullmatch(character_id):
        raise _invalid(f"the character id {_preview(character_id)} is not one")
    description = data.get("description")
    return CharacterState(
        id=character_id,
        name=str(name or "")[:80],
        created_at=_number(data.get("created_at"), int),  # type: ignore[arg-type]
        description=str(description)[:4000] if isinstance(description, str) else None,
    )


def _state(video: Any) -> VideoState:
    """The SDK's Video model (with Hanul's extra fields) as a VideoState; anything that is not one (the SDK hands
    back the text of a non-JSON answer) raises GeneratorError("generator_invalid")."""
    video_id = getattr(video, "id", None)
    if not isinstance(video_id, str) or not video_id or isinstance(video, str | bytes):
        raise _invalid(f"expected a video object, got {_preview(video)}")
    if not _VIDEO_ID.fullmatch(video_id):  # it goes into URLs and a 64-character column
        raise _invalid(f"the video id {_preview(video_id)} is not one")
    status = getattr(video, "status", None)
    if status not in STATUSES:
        raise _invalid(f"unknown status {_preview(status)}")
    raw_progress = getattr(video, "progress", None)
    progress = _number(raw_progress or 0, float)
    if progress is None:
        raise _invalid(f"progress {_preview(raw_progress)} is not a number")
    extra = getattr(video, "model_extra", None) or {}
    error = getattr(video, "error", None)
    message = getattr(error, "message", None) if error is not None else None
    if error is not None and message is None and isinstance(error, dict):
        message = error.get("message")
    detail = str(message) if message else (str(error) if error is not None else None)
    # `size` is the size asked (the spec's); what was rendered is the generator's `rendered_size` (other servers:
    # `size` alone).
    seconds, size = getattr(video, "seconds", None), extra.get("rendered_size") or getattr(video, "size", None)
    return VideoState(
        id=video_id,
        status=str(status),
        progress=int(min(100.0, max(0.0, progress))),
        queue_position=_number(extra.get("queue_position"), int),  # type: ignore[arg-type]
        eta_seconds=_number(extra.get("eta_seconds"), float),
        seed=_number(extra.get("seed"), int),  # type: ignore[arg-type]
        seconds=str(seconds)[:20] if seconds is not None else None,
        size=str(size)[:20] if size is not None else None,
        error=detail[:500] if detail else None,
        has_audio=extra.get("has_audio") is True,
        preview_at=_number(extra.get("preview_at"), int),  # type: ignore[arg-type]
    )


class VideoClient:
    """One `openai.AsyncOpenAI` client for the generator, configured once."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 60.0) -> None:
        # No SDK retries: the bot's own backoff (see `retrying`) is the one retry policy, and it knows which calls
        # are safe to repeat and tells the member while it waits.
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unused", timeout=timeout, max_retries=0
        )
        self.base_url = base_url

    async def close(self) -> None:
        await self._client.close()

    async def model(self) -> GeneratorModel:
        """The model the generator renders, from `GET /v1/models`."""
        page = await self._call(self._client.models.list())
        data = getattr(page, "data", None)
        if not isinstance(data, list):
            raise _invalid(f"expected a model list, got {_preview(page)}")
        return GeneratorModel.from_listing([m.model_dump() if hasattr(m, "model_dump") else m for m in data])

    async def _call(self, coro: Awaitable[Any]) -> Any:
        """Await one SDK call, turning its errors into GeneratorError codes the bot can explain."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return await coro
        except openai.NotFoundError as error:
            raise GeneratorError("not_found", _error_detail(error)) from error
        except openai.RateLimitError as error:
            raise GeneratorError("generator_busy", _error_detail(error)) from error
        except (openai.BadRequestError, openai.UnprocessableEntityError, openai.ConflictError) as error:
            raise GeneratorError("generator_rejected", _error_detail(error)) from error
        except openai.APIStatusError as error:
            if error.status_code == 405:
                raise GeneratorError("not_supported", _error_detail(error)) from error
            if error.status_code >= 500:
                raise GeneratorError("generator_down", _error_detail(error)) from error
            raise GeneratorError("generator_rejected", _error_detail(error)) from error
        except (openai.APIConnectionError, openai.APITimeoutError) as error:
            raise GeneratorError("generator_down", str(error)) from error

    @staticmethod
    def _extra_body(order: VideoOrder) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if order.seed is not None:
            extra["seed"] = order.seed
        if order.negative_prompt:
            extra["negative_prompt"] = order.negative_prompt
        if order.max_bytes:
            extra["max_bytes"] = order.max_bytes
        if not order.sound:
            extra["sound"] = False
        if order.user:
            extra["user"] = order.user
        if order.characters:
            # One form field, comma-separated: the SDK would send a list as repeated `characters[]` parts.
            extra["characters"] = ",".join(order.characters)
        return extra

    async def create(self, order: VideoOrder) -> VideoState:
        """Queue a new clip (text-to-video, or image-to-video when `order.image` is set)."""
        kwargs: dict[str, Any] = {"prompt": order.prompt, "seconds": _seconds(order.seconds), "size": order.size}
        if order.image is not None:
            kwargs["input_reference"] = order.image
        video = await self._call(
            self._client.videos.create(**kwargs, extra_body=self._extra_body(order), extra_headers=_headers(order))
        )
        return _state(video)

    async def extend(self, parent_video_id: str, order: VideoOrder) -> VideoState:
        """Queue a continuation of a finished clip."""
        # openai 3.x validates `video` as a file upload client-side; the id reference travels in extra_body.
        extra = self._extra_body(order) | {"video": {"id": parent_video_id}}
        video = await self._call(
            self._client.videos.extend(
                prompt=order.prompt,
                seconds=_seconds(order.seconds),
                video=openai.omit,
                extra_body=extra,
                extra_headers=_headers(order),
            )
        )
        return _state(video)

    async def edit(self, source_video_id: str, order: VideoOrder) -> VideoState:
        """Queue an edit of a finished clip: the prompt changes what it names, the motion and framing stay
        (`POST /v1/videos/edits`; the length and size are the source's)."""
        # As for `extend`, openai 3.x only takes an upload for `video`: the id reference travels in extra_body.
        extra = self._extra_body(order) | {"video": {"id": source_video_id}}
        if order.strength is not None:
            extra["strength"] = order.strength
        video = await self._call(
            self._client.videos.edit(
                prompt=order.prompt, video=openai.omit, extra_body=extra, extra_headers=_headers(order)
            )
        )
        return _state(video)

    async def remix(self, video_id: str, prompt: str) -> VideoState:
        """Render a finished clip again with a new prompt (same seed and settings)."""
        return _state(await self._call(self._client.videos.remix(video_id, prompt=prompt)))

    async def retrieve(self, video_id: str) -> VideoState:
        return _state(await self._call(self._client.videos.retrieve(video_id)))

    async def retrieve_held(self, video_id: str, wait: float, seen: VideoState | None) -> tuple[VideoState, bool]:
        """The job's state, asking the generator to hold the answer up to `wait` seconds while the job is as `seen`
        (Hanul's `?wait=&seen=`; `seen=None`: nothing seen yet, answer at once). Also says whether the generator
        holds answers (its `hanul-wait` header): other OpenAI-compatible servers ignore the request."""
        if wait <= 0:
            return await self.retrieve(video_id), False
        query = {"wait": f"{wait:.3f}", "seen": "" if seen is None else seen.shown}
        response = await self._call(self._client.videos.with_raw_response.retrieve(video_id, extra_query=query))
        return _state(response.parse()), HELD_HEADER in response.headers

    async def download_video(self, video_id: str, max_bytes: int) -> bytes:
        """The finished MP4, read no further than `max_bytes` (TooBig beyond) and refused (generator_invalid) as
        soon as its first bytes show it is not an MP4: a generator answering garbage costs neither memory nor
        an upload."""
        streaming = self._client.videos.with_streaming_response.download_content(video_id, variant="video")
        response = await self._call(streaming.__aenter__())
        try:
            declared = _number(response.headers.get("content-length"), int)
            if declared is not None and declared > max_bytes:
                raise TooBig(int(declared))
            data = bytearray()
            try:
                async for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) >= 12 and not is_mp4(bytes(data[:12])):
                        raise _invalid(f"the clip is not an MP4 (it starts with {_preview(bytes(data[:24]))})")
                    if len(data) > max_bytes:
                        raise TooBig(len(data), exact=declared is not None)
            except (GeneratorError, TooBig):
                raise
            except Exception as error:  # the transport's own errors: the connection broke mid-download
                raise GeneratorError("generator_down", f"the download broke off ({type(error).__name__})") from error
            if not is_mp4(bytes(data[:12])):
                raise _invalid(f"the clip is not an MP4 ({len(data)} bytes: {_preview(bytes(data[:24]))})")
            return bytes(data)
        finally:
            await streaming.__aexit__(None, None, None)

    async def download_preview(self, video_id: str, max_bytes: int = MAX_PREVIEW_BYTES) -> bytes:
        """The latest live preview of a job (Hanul's `preview` variant, an animated WebP); GeneratorError when there
        is none ("not_found"), it is larger than `max_bytes`, or it is not a WebP."""
        response = await self._call(
            self._client.videos.with_raw_response.download_content(video_id, variant="preview")  # type: ignore[arg-type]
        )
        data = response.content
        if len(data) > max_bytes:
            raise _invalid(f"a preview of {len(data)} bytes")
        if not (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
            raise _invalid(f"the preview is not a WebP (it starts with {_preview(data[:24])})")
        return data

    async def download_spritesheet(self, video_id: str, max_bytes: int = MAX_SPRITESHEET_BYTES) -> bytes:
        """The finished clip's spritesheet (`?variant=spritesheet`, a JPEG grid of frames), for the LLM's look;
        refused (generator_invalid) when it is not a JPEG or PNG or larger than `max_bytes`."""
        response = await self._call(self._client.videos.download_content(video_id, variant="spritesheet"))
        data = response.content
        if len(data) > max_bytes:
            raise _invalid(f"the spritesheet is {len(data)} bytes, more than {max_bytes}")
        if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG")):
            raise _invalid(f"the spritesheet is not an image (it starts with {_preview(data[:24])})")
        return data

    async def download_thumbnail(self, video_id: str, max_bytes: int = 8 * 1024 * 1024) -> bytes:
        """A finished clip's thumbnail (an image the director can look at), no larger than `max_bytes`."""
        response = await self._call(self._client.videos.download_content(video_id, variant="thumbnail"))
        data = response.content
        if not isinstance(data, bytes):
            raise _invalid(f"expected a thumbnail image, got {_preview(data)}")
        if len(data) > max_bytes:
            raise TooBig(len(data))
        return data

    # --- characters ------------------------------------------------------------------------------

    async def create_character(
        self,
        name: str,
        upload: tuple[str, bytes, str],
        *,
        user: str | None = None,
        description: str | None = None,
    ) -> CharacterState:
        """Make a character from a clip or an image (`upload`: filename, bytes, mime); `user` says whose it is and
        `description` the subject in words (both Hanul's extra fields)."""
        extra: dict[str, Any] = {}
        if user:
            extra["user"] = user
        if description:
            extra["description"] = description
        answer = await self._call(self._client.videos.create_character(name=name, video=upload, extra_body=extra))
        return _character(answer)

    async def get_character(self, character_id: str) -> CharacterState:
        return _character(await self._call(self._client.videos.get_character(character_id)))

    async def list_characters(self, user: str | None = None) -> list[CharacterState]:
        """The generator's characters (`GET /v1/videos/characters`, which the SDK lacks), `user`'s only if given."""
        query = {"user": user} if user else None
        options: Any = {"params": query} if query else {}
        page = await self._call(self._client.get("/videos/characters", cast_to=object, options=options))
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list):
            raise _invalid(f"expected a character list, got {_preview(page)}")
        return [_character(entry) for entry in data]

    async def delete_character(self, character_id: str) -> None:
        """Delete a character on the generator (`DELETE /v1/videos/characters/{id}`); one already gone is fine."""
        try:
            await self._call(self._client.delete(f"/videos/characters/{character_id}", cast_to=object))
        except GeneratorError as error:
            if error.code != "not_found":
                raise

    async def cancel(self, video_id: str) -> None:
        """Cancel an unfinished job or delete a finished one; a job the generator no longer has is fine."""
        try:
            await self._call(self._client.videos.delete(video_id))
        except GeneratorError as error:
            if error.code != "not_found":
                raise

    async def track(
        self,
        video_id: str,
        on_progress: Callable[[VideoState], Awaitable[None]] | None = None,
        *,
        poll_interval: float = 1.0,
        report_interval: float = 3.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        on_unreachable: Callable[[GeneratorError, float], Awaitable[None]] | None = None,
    ) -> VideoState:
        """Follow a job until it completes or fails; call `on_progress` when the state changes, at most once per
        `report_interval` seconds (Discord rate-limits message edits), and always with the final state.

        Each request asks the generator to hold its answer until the job changes (`HOLD_SECONDS`), so the finished
        video is seen the moment it is done; a generator that answers at once is asked again after
        `poll_interval`. An unreachable or overloaded generator is not a failed job: asking goes on with `backoff`
        (telling `on_unreachable` each time) and gives up with the last error after `backoff.give_up_after`
        seconds."""
        last_report = 0.0
        reported: tuple[str, int, int | None] | None = None
        last: VideoState | None = None  # the last answer; None: learn the state at once
        asked, hold, holds = 0.0, 0.0, False  # holds: the generator holds answers while the job is unchanged

        async def ask() -> VideoState:
            nonlocal asked, hold, holds
            asked = time.monotonic()
            hold = HOLD_SECONDS  # with nothing seen yet the answer comes at once, saying whether it holds
            if on_progress is not None and last is not None and last.key != reported:
                # A change is waiting for its report: hold no longer than until it may be reported.
                hold = round(min(hold, max(0.0, report_interval - (asked - last_report))), 3)  # as it is sent
            state, held = await self.retrieve_held(video_id, hold, last)
            if hold > 0:
                holds = held
            return state

        async def unreachable(error: GeneratorError, delay: float) -> None:
            nonlocal reported, last_report, last
            reported, last_report = None, 0.0  # the member was told it is away: report as soon as it is back
            last = None
            if on_unreachable is not None:
                await on_unreachable(error, delay)

        while True:
            state = await self.retrying(ask, backoff=backoff, on_unreachable=unreachable)
            now = time.monotonic()
            if (
                on_progress is not None
                and state.key != reported
                and (state.finished or now - last_report >= report_interval)
            ):
                await on_progress(state)
                reported, last_report = state.key, now
            if state.finished:
                return state
            unchanged = last is not None and state.key == last.key
            last = state
            if holds and (not unchanged or now - asked >= hold / 2):
                continue  # it holds the next answer until the job changes: ask at once
            # A generator that answers at once (or an unchanged job early, which a holding one should not) is asked
            # again after poll_interval, or soon after a change.
            pause = poll_interval if unchanged else MIN_ASK_GAP
            await asyncio.sleep(max(0.0, pause - (time.monotonic() - asked)))

    @staticmethod
    async def retrying(
        call: Callable[[], Awaitable[T]],
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
        on_unreachable: Callable[[GeneratorError, float], Awaitable[None]] | None = None,
    ) -> T:
        """`call()`, again and again with backoff while the generator is unreachable or busy (see TRANSIENT)."""

        async def unreachable(error: Exception, delay: float) -> None:
            assert isinstance(error, GeneratorError)
            log.warning("generator unreachable (%s); retrying in %.1fs", error.detail or error.code, delay)
            if on_unreachable is not None:
                await on_unreachable(error, delay)

        return await retry.retrying(call, backoff=backoff, passes=_transient, on_retry=unreachable)


def _transient(error: Exception) -> bool:
    return isinstance(error, GeneratorError) and error.code in TRANSIENT


def _headers(order: VideoOrder) -> dict[str, str] | None:
    return {"Idempotency-Key": order.request_key} if order.request_key else None
