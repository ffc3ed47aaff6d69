"""Looking before posting: the finished clip's spritesheet shown to the LLM once (its verdict and one-line
description kept with the generation, so a restart does not ask again), and where a clip may go under the
server's output policy (`placement`)."""

from __future__ import annotations

import logging
from enum import Enum

from bot.director import Director
from bot.store import GenerationRecord, Store
from bot.videos import GeneratorError, VideoClient

log = logging.getLogger(__name__)


class Placement(Enum):
    """What becomes of a finished clip."""

    POST = "post"
    SPOILER = "spoiler"  # posted behind Discord's spoiler cover
    ELSEWHERE = "elsewhere"  # only in an age-restricted channel: the member is told where
    WITHHOLD = "withhold"  # not posted; the member is told


def placement(verdict: str | None, policy: str, age_restricted_here: bool) -> Placement:
    """Where a clip with the LLM's `verdict` (None: nobody looked, the prompt checks stand) may go under the
    server's output `policy`, in a channel that is (or is not) age-restricted. A clip the LLM says must not be
    shown is withheld whatever the policy; the policy decides about clips for adults only."""
    if verdict == "withhold":
        return Placement.WITHHOLD
    if verdict != "age_restricted" or policy == "post":
        return Placement.POST
    if policy == "spoiler":
        return Placement.SPOILER
    if policy == "age_restricted_channels":
        return Placement.POST if age_restricted_here else Placement.ELSEWHERE
    return Placement.WITHHOLD


def _mime(image: bytes) -> str:
    return "image/png" if image.startswith(b"\x89PNG") else "image/jpeg"


class Looking:
    """Has the director look at finished clips, once each."""

    def __init__(self, store: Store, director: Director, videos: VideoClient) -> None:
        self.store = store
        self.director = director
        self.videos = videos

    async def look(self, record: GenerationRecord) -> GenerationRecord:
        """The generation with the LLM's look at its clip recorded (`verdict`, `description`), or as it was when
        nobody can look (no vision, no spritesheet, an LLM failure: the prompt checks stand)."""
        if record.verdict is not None or record.video_id is None or not self.director.looks:
            return record
        try:
            sheet = await self.videos.download_spritesheet(record.video_id)
        except GeneratorError as error:
            log.warning("no spritesheet for #%d (%s); it is posted without a look", record.id, error)
            return record
        look = await self.director.look(sheet, _mime(sheet), language=record.language or "en")
        if look is None:
            return record
        log.info("look at #%d: %s — %s", record.id, look.verdict, look.description)
        return await self.store.update_generation(record.id, verdict=look.verdict, description=look.description)
