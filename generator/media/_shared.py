"""What every media module shares: the source of a video to read, the error, frame checks and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

# A video to read: a file, or its bytes (an extension holds its parent's MP4 in memory from the start, so deleting
# the parent while the extension renders cannot pull it away).
VideoSource = Path | bytes


class EncodeError(Exception):
    """The video cannot be written as asked, e.g. it cannot fit under the byte cap at any allowed size."""


def check_frames(frames: np.ndarray) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (F, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    return frames


def beside(path: Path, suffix: str) -> Path:
    """A hidden working file next to `path`, named for this process so two processes never share one."""
    return path.with_name(f".{path.name}.{os.getpid()}{suffix}")


def write_atomically(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = beside(path, ".tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
