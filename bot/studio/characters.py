"""Characters: a member's subject made reusable. The generator keeps reference frames chosen from an image or a
clip (`POST /v1/videos/characters`); the bot keeps whose it is, whether their server may use it, and its
description, which the director writes from a reference frame when its LLM can see images, else the member's words.
A request naming a character renders with its reference frames and keeps its description in the prompt."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from bot.director import Director, Refused
from bot.limits import Refusal, Requester
from bot.store import CharacterRecord, NewCharacter, Store
from bot.studio.data import ImageInput
from bot.studio.edits import finished
from bot.videos import GeneratorError, TooBig, VideoClient

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 80
MAX_DESCRIPTION_CHARS = 400
MAX_CHARACTERS_PER_VIDEO = 2  # the generator's limit per render
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
MAX_IMAGE_BYTES = 16 * 1024 * 1024
MAX_CLIP_BYTES = 100 * 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class CharacterSource:
    """What a character is made from: an image, or one of the member's clips (a generation id)."""

    image: ImageInput | None = None
    clip_id: int | None = None


def _clean(value: str | None) -> str:
    return " ".join(_CONTROL.sub(" ", value or "").split())


class Characters:
    """Makes, lists, finds and deletes members' characters."""

    def __init__(self, store: Store, director: Director, videos: VideoClient) -> None:
        self.store = store
        self.director = director
        self.videos = videos

    async def create(
        self,
        requester: Requester,
        name: str,
        source: CharacterSource,
        *,
        description: str | None = None,
        share: bool = False,
    ) -> CharacterRecord:
        """Make a character from an image or one of the member's own finished clips, shared with the server it is
        made in when `share`. Refusals say what to fix; nothing is recorded unless the generator made it."""
        name, words = _clean(name), _clean(description) or None
        if not name or len(name) > MAX_NAME_CHARS:
            raise Refusal("character_name", {"limit": MAX_NAME_CHARS})
        if words is not None and len(words) > MAX_DESCRIPTION_CHARS:
            raise Refusal("too_long", {"length": len(words), "limit": MAX_DESCRIPTION_CHARS})
        if (source.image is None) == (source.clip_id is None):
            raise Refusal("character_source")
        await self.store.ensure_member(requester.user_id, requester.name, requester.locale)
        if any(c.name.casefold() == name.casefold() for c in await self._own(requester.user_id)):
            raise Refusal("character_exists", {"name": name})
        upload, frame = await self._material(requester, source)
        try:
            described = await self.director.describe(name, frame.data, frame.mime, words)
        except Refused as refused:
            raise Refusal("director", {"reason": refused.reason}) from refused
        if described is None:
            raise Refusal("character_description")
        try:
            made = await self.videos.create_character(
                name, upload, user=f"discord:{requester.user_id}", description=described.text
            )
        except GeneratorError as error:
            raise Refusal(error.code, {"detail": error.detail or error.code, "id": "-"}) from error
        new = NewCharacter(
            user_id=requester.user_id,
            guild_id=requester.guild_id,
            shared=share and requester.guild_id is not None,
            name=name,
            generator_id=made.id,
            description=described.text,
            described_by="director" if described.by_director else "member",
            source="image" if source.image is not None else "clip",
        )
        try:
            return await self.store.add_character(new)
        except IntegrityError as error:  # the same name made twice at once: the generator's copy goes
            await self._forget_on_generator(made.id)
            raise Refusal("character_exists", {"name": name}) from error

    async def _material(
        self, requester: Requester, source: CharacterSource
    ) -> tuple[tuple[str, bytes, str], ImageInput]:
        """What goes to the generator (an image or the clip's MP4) and the frame the director looks at."""
        if source.image is not None:
            image = source.image
            if image.mime not in IMAGE_TYPES or len(image.data) > MAX_IMAGE_BYTES:
                raise Refusal("image", {"limit": f"{MAX_IMAGE_BYTES // (1024 * 1024)} MiB"})
            return (image.filename, image.data, image.mime), image
        assert source.clip_id is not None
        clip = await self.store.generation(source.clip_id)
        if clip is None or clip.user_id != requester.user_id or not finished(clip):
            raise Refusal("character_clip", {"id": source.clip_id})
        assert clip.video_id is not None
        try:
            video = await self.videos.download_video(clip.video_id, MAX_CLIP_BYTES)
            thumbnail = await self.videos.download_thumbnail(clip.video_id)
        except TooBig as error:
            raise Refusal("character_clip", {"id": source.clip_id}) from error
        except GeneratorError as error:
            code = "character_clip" if error.code == "not_found" else error.code
            raise Refusal(code, {"id": source.clip_id, "detail": error.detail}) from error
        frame = ImageInput(f"hanul-{clip.id}.webp", thumbnail, "image/webp")
        return (f"hanul-{clip.id}.mp4", video, "video/mp4"), frame

    async def _own(self, user_id: int) -> list[CharacterRecord]:
        return [c for c in await self.store.usable_characters(user_id, None) if c.user_id == user_id]

    async def usable(self, requester: Requester, guild_id: int | None) -> list[CharacterRecord]:
        """The characters the member may use here: their own, and those shared in this server."""
        return await self.store.usable_characters(requester.user_id, guild_id)

    async def find(self, requester: Requester, value: str, guild_id: int | None) -> CharacterRecord:
        """A usable character by id (what autocomplete sends) or by name (what a member types)."""
        wanted = _clean(value)
        usable = await self.usable(requester, guild_id)
        by_id = {str(c.id): c for c in usable}
        if wanted in by_id:
            return by_id[wanted]
        named = [c for c in usable if c.name.casefold() == wanted.casefold()]
        if not named:
            raise Refusal("character_not_found", {"name": wanted[:MAX_NAME_CHARS]})
        return named[0]  # their own first

    async def cast(self, requester: Requester, values: Sequence[str], guild_id: int | None) -> list[CharacterRecord]:
        """The characters a request names, each once, checked: usable here and no more than a render takes."""
        found: list[CharacterRecord] = []
        for value in values:
            character = await self.find(requester, value, guild_id)
            if all(c.id != character.id for c in found):
                found.append(character)
        if len(found) > MAX_CHARACTERS_PER_VIDEO:
            raise Refusal("character_too_many", {"limit": MAX_CHARACTERS_PER_VIDEO})
        return found

    async def delete(self, requester: Requester, value: str) -> CharacterRecord:
        """Delete one of the member's own characters (by id or name); others' are refused, even when shared."""
        wanted = _clean(value)
        own = await self._own(requester.user_id)
        character = next((c for c in own if str(c.id) == wanted), None) or next(
            (c for c in own if c.name.casefold() == wanted.casefold()), None
        )
        if character is None:
            others = await self.usable(requester, requester.guild_id)
            if any(str(c.id) == wanted or c.name.casefold() == wanted.casefold() for c in others):
                raise Refusal("character_not_owner")
            raise Refusal("character_not_found", {"name": wanted[:MAX_NAME_CHARS]})
        await self._forget_on_generator(character.generator_id)
        await self.store.delete_character(character.id)
        return character

    async def _forget_on_generator(self, generator_id: str) -> None:
        try:
            await self.videos.delete_character(generator_id)
        except GeneratorError as error:
            log.warning("could not delete character %s on the generator: %s", generator_id, error)
