"""Previews of a video: a WebP thumbnail and a JPEG spritesheet (the variants of OpenAI's Videos API), and the
small animated WebP of a render in progress (Hanul's `preview` variant)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from generator.media._shared import check_frames, write_atomically

SPRITES = 16  # tiles in a spritesheet
LIVE_PREVIEW_SIDE = 256  # px: the longer side of a live preview
LIVE_PREVIEW_MAX_BYTES = 100 * 1024  # small enough to upload with every progress edit


@dataclass(frozen=True)
class Spritesheet:
    """A JPEG grid of frames, left to right then top to bottom."""

    path: Path
    columns: int
    rows: int
    tile_width: int
    tile_height: int
    frame_indices: tuple[int, ...]


def write_thumbnail(frame: np.ndarray, path: Path, *, quality: int = 80) -> Path:
    """One (H, W, 3) uint8 frame as WebP (the thumbnail variant of OpenAI's Videos API is image/webp)."""
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"a thumbnail needs one (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    return write_atomically(Path(path), lambda tmp: Image.fromarray(frame).save(tmp, "WEBP", quality=quality))


def write_spritesheet(
    frames: np.ndarray, path: Path, *, count: int = SPRITES, columns: int = 4, tile_width: int = 256, quality: int = 85
) -> Spritesheet:
    """Up to `count` evenly spaced frames in a JPEG grid (OpenAI's spritesheet variant is image/jpeg)."""
    frames = check_frames(frames)
    indices = spritesheet_indices(len(frames), count)
    count = len(indices)
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    height, width = frames.shape[1:3]
    tile_width = min(tile_width, width)
    tile_height = max(1, round(height * tile_width / width))
    sheet = Image.new("RGB", (columns * tile_width, rows * tile_height))
    for position, index in enumerate(indices):
        tile = Image.fromarray(frames[index]).resize((tile_width, tile_height), Image.Resampling.LANCZOS)
        sheet.paste(tile, ((position % columns) * tile_width, (position // columns) * tile_height))
    path = write_atomically(Path(path), lambda tmp: sheet.save(tmp, "JPEG", quality=quality))
    return Spritesheet(path, columns, rows, tile_width, tile_height, indices)


def spritesheet_indices(total: int, count: int = SPRITES) -> tuple[int, ...]:
    """Which of `total` frames a spritesheet of up to `count` tiles shows: evenly spaced, first and last included."""
    return tuple(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist())


def animated_preview(
    frames: np.ndarray, frame_ms: int, *, side: int = LIVE_PREVIEW_SIDE, max_bytes: int = LIVE_PREVIEW_MAX_BYTES
) -> bytes:
    """A looping animated WebP of (F, H, W, 3) uint8 frames (a render's latent-resolution preview), scaled up so its
    longer side is `side` pixels, at `frame_ms` per frame; quality and then size are lowered until it fits
    `max_bytes`."""
    frames = check_frames(frames)
    height, width = frames.shape[1:3]
    while True:
        scale = side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        images = [Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR) for frame in frames]
        for quality in (60, 40, 20):
            buffer = io.BytesIO()
            images[0].save(
                buffer,
                "WEBP",
                save_all=True,
                append_images=images[1:],
                duration=max(20, int(frame_ms)),
                loop=0,
                quality=quality,
                method=4,
            )
            if buffer.tell() <= max_bytes:
                return buffer.getvalue()
        if side <= 32:
            raise ValueError(f"a preview of {len(frames)} frames does not fit in {max_bytes} bytes")
        side //= 2
