"""The plain data the studio takes from and hands back to the front ends (no Discord types)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.models import CANCELLED
from bot.store import GenerationRecord
from bot.videos import GeneratorError, VideoState


def picture_type(data: bytes) -> str | None:
    """A PNG, JPEG or WebP file's type by its first bytes (as the generator reads them); None for any other."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class ImageInput:
    """A picture to start the video from. Its `mime` is what its bytes are, not what it was said to be: Discord's
    content type follows the file's name, and a GIF, AVIF or HEIC renamed .png is no PNG (it is refused as the
    member's picture, not by the generator, in English); a JPEG named .png is a JPEG."""

    filename: str
    data: bytes
    mime: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "mime", picture_type(self.data) or "application/octet-stream")


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
    sound: bool | None = None  # False: a silent clip even when the model renders sound
    characters: tuple[str, ...] = ()  # characters to show, by id or name (see `Characters.cast`)


@dataclass(frozen=True)
class Destination:
    """Where a result goes, as plain ids, and how large a file may be there."""

    guild_id: int | None = None
    channel_id: int | None = None
    thread_id: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True)
class Draft:
    """An admitted request with its prompt written, ready to be attached and submitted to the generator."""

    generation: GenerationRecord
    notice: str | None = None  # why the prompt was not LLM-written, for the member
    summary: str | None = None  # what a refinement changed
    change: str | None = None  # a refinement's: the director's judgement, `local` (look only) or `subject`


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


@dataclass(frozen=True)
class HistoryPage:
    """One page of a member's history, as someone may see it."""

    records: list[GenerationRecord]
    page: int  # from 0
    pages: int


ProgressCallback = Callable[[Progress], Awaitable[None]]
# Told each time the generator cannot be reached: the generation (still open), the error, the seconds until
# the next try.
UnreachableCallback = Callable[[GenerationRecord, GeneratorError, float], Awaitable[None]]


class StopWaiting(Exception):
    """Raised by a front end's `on_unreachable` to stop following a request that cannot be made now (the
    generator's model failed to load); the request stays open, to be made after the next start."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
