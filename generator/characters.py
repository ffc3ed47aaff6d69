"""Characters: named subjects made from an uploaded clip or image (`/v1/videos/characters`), kept as a few reference
frames chosen from the upload, which condition later renders that name them.

Which frames: candidates are spread evenly over the clip; each is scored by its sharpness (the variance of its
Laplacian, the usual focus measure: motion blur and defocus lower it) weighted by how much of its detail (gradient
energy) lies in the middle of the picture, where a filmed subject usually is. The best frames are kept, at least a
sixth of the clip apart so they show the subject in different moments, not one pose three times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from generator.errors import APIError, invalid
from generator.models import Character
from generator.storage import ArtifactStore, is_character_id, new_character_id

REFERENCE_FRAMES = 3  # reference frames kept per character uploaded as a clip (an image gives one)
CANDIDATE_FRAMES = 48  # frames of an uploaded clip scored for sharpness and centring
REFERENCE_LONG_SIDE = 768  # reference frames are stored at most this long (renders fit them to their own size)
_SCORE_LONG_SIDE = 192  # frames are scored at this size: enough for focus, cheap on a CPU


def character_not_found(character_id: str, param: str = "character_id") -> APIError:
    shown = character_id if len(character_id) <= 80 else character_id[:80] + "…"
    return APIError(404, f"No character found with id '{shown}'.", param=param, code="not_found")


def _grey(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 → (h, w) float32 luma, reduced by a whole factor to about `_SCORE_LONG_SIDE`."""
    step = max(1, max(frame.shape[:2]) // _SCORE_LONG_SIDE)
    small = frame[::step, ::step].astype(np.float32)
    return small @ np.array([0.299, 0.587, 0.114], np.float32)


def sharpness(frame: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the frame's luma: higher is sharper."""
    grey = _grey(frame)
    laplacian = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(laplacian.var())


def centring(frame: np.ndarray) -> float:
    """The share of the frame's gradient energy inside its central half (by area): 0.5 for detail spread evenly,
    more when the detail (the subject) is in the middle."""
    grey = _grey(frame)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    total = float(energy.sum())
    if total <= 0:
        return 0.0
    height, width = energy.shape
    margin_y, margin_x = round(height * 0.146), round(width * 0.146)  # 1 - 2 × 0.146 ≈ 0.707 per side: half the area
    centre = float(energy[margin_y : height - margin_y, margin_x : width - margin_x].sum())
    return centre / total


def choose_reference_frames(frames: Sequence[np.ndarray], count: int = REFERENCE_FRAMES) -> list[int]:
    """Indices of the best `count` frames (best first): sharp and subject-centred, at least a sixth of the clip
    apart (closer ones only when nothing else is left)."""
    if not frames:
        return []
    scores = [sharpness(frame) * centring(frame) for frame in frames]
    order = sorted(range(len(frames)), key=lambda index: -scores[index])
    spacing = max(1, len(frames) // 6)
    chosen: list[int] = []
    for index in order:
        if all(abs(index - taken) >= spacing for taken in chosen):
            chosen.append(index)
        if len(chosen) == count:
            return chosen
    for index in order:  # a short clip: fill up with the next best
        if index not in chosen and len(chosen) < count:
            chosen.append(index)
    return chosen


@dataclass(frozen=True)
class NewCharacter:
    """A character to store: its reference frames as PNGs, best first."""

    name: str
    user: str | None
    description: str | None
    source: str  # "video" | "image"
    frames: list[bytes]


class Characters:
    """The characters table and their reference frames on disk."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], store: ArtifactStore) -> None:
        self.sessions = sessions
        self.store = store

    async def create(self, new: NewCharacter) -> Character:
        character_id = new_character_id()
        paths = []
        try:
            for index, png in enumerate(new.frames):
                paths.append(await asyncio.to_thread(self.store.write_character_frame, character_id, index, png))
            character = Character(
                id=character_id,
                name=new.name,
                user=new.user,
                description=new.description,
                source=new.source,
                frames=paths,
            )
            async with self.sessions.begin() as session:
                session.add(character)
        except BaseException:
            await asyncio.to_thread(self.store.delete_character, character_id)
            raise
        return character

    async def get(self, character_id: str, param: str = "character_id") -> Character:
        if is_character_id(character_id):
            async with self.sessions() as session:
                character = await session.get(Character, character_id)
            if character is not None:
                return character
        raise character_not_found(character_id, param)

    async def list(
        self, *, after: str | None, limit: int, order: str, user: str | None
    ) -> tuple[list[Character], bool]:
        newest_first = order == "desc"
        query = select(Character)
        if user is not None:
            query = query.where(Character.user == user)
        async with self.sessions() as session:
            if after is not None:
                cursor = await session.get(Character, after) if is_character_id(after) else None
                if cursor is None:
                    raise invalid("after", f"Invalid 'after': no character '{after[:80]}'.")
                key = (cursor.created_at, cursor.id)
                if newest_first:
                    query = query.where(
                        (Character.created_at < key[0]) | ((Character.created_at == key[0]) & (Character.id < key[1]))
                    )
                else:
                    query = query.where(
                        (Character.created_at > key[0]) | ((Character.created_at == key[0]) & (Character.id > key[1]))
                    )
            if newest_first:
                query = query.order_by(Character.created_at.desc(), Character.id.desc())
            else:
                query = query.order_by(Character.created_at.asc(), Character.id.asc())
            rows = list((await session.scalars(query.limit(limit + 1))).all())
        return rows[:limit], len(rows) > limit

    async def delete(self, character_id: str) -> Character:
        character = await self.get(character_id)
        async with self.sessions.begin() as session:
            row = await session.get(Character, character.id)
            if row is not None:
                await session.delete(row)
        await asyncio.to_thread(self.store.delete_character, character.id)
        return character

    def frame_path(self, character: Character, index: int) -> Path:
        if not 0 <= index < len(character.frames):
            raise invalid("index", f"Invalid 'index': character '{character.id}' has {len(character.frames)} frames.")
        path = self.store.resolve(character.frames[index])
        if not path.exists():
            raise APIError(
                404, f"A frame of '{character.id}' is missing from storage.", param="index", code="not_found"
            )
        return path
