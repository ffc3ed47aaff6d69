"""Where a job's files live: one folder per job under the artifacts root (shared storage in a fleet).

The job's inputs (a reference image, an uploaded clip) sit in the job's folder; what a worker renders goes into
a folder of its attempt (`attempt-2/`), so an attempt that lost its lease can never overwrite the files of the
attempt that completed the job. The database rows name the files that count.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path

VIDEO_ID = re.compile(r"^video_[0-9a-f]{32}$")

# Artifact kinds and their file names and content types.
ARTIFACTS = {
    "video": ("video.mp4", "video/mp4"),
    "thumbnail": ("thumbnail.webp", "image/webp"),
    "spritesheet": ("spritesheet.jpg", "image/jpeg"),
    "tail": ("tail.mkv", "video/x-matroska"),  # lossless last frames (FFV1), for extensions
    "audio": ("audio.flac", "audio/flac"),  # the whole clip's sound, lossless, for extensions; absent: silent
    "reference": ("reference.png", "image/png"),  # the input_reference image, normalised
    "source": ("source.mp4", "video/mp4"),  # an uploaded clip to extend or edit
    "preview": ("preview.webp", "image/webp"),  # the latest live preview of a render in progress, overwritten
}
MAX_SUBJECT_IMAGES = 8  # characters' reference frames one job may carry, copied into its folder at enqueue
for _index in range(MAX_SUBJECT_IMAGES):
    ARTIFACTS[f"subject-{_index}"] = (f"subject-{_index}.png", "image/png")
FILE_ID = re.compile(r"^file-[0-9a-f]{32}$")
CHARACTER_ID = re.compile(r"^char_[0-9a-f]{32}$")
FILES = "files"  # uploaded files: root/files/<file id>
CHARACTERS = "characters"  # characters' reference frames: root/characters/<character id>/frame-N.png


def new_video_id() -> str:
    return f"video_{uuid.uuid4().hex}"


def is_video_id(value: str) -> bool:
    return bool(VIDEO_ID.match(value))


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex}"


def is_file_id(value: str) -> bool:
    return bool(FILE_ID.match(value))


def new_character_id() -> str:
    return f"char_{uuid.uuid4().hex}"


def is_character_id(value: str) -> bool:
    return bool(CHARACTER_ID.match(value))


class ArtifactStore:
    """Files under `root/<video id>/`; paths in the database are relative to `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def job_dir(self, video_id: str) -> Path:
        if not is_video_id(video_id):
            raise ValueError(f"not a video id: {video_id!r}")
        return self.root / video_id

    def attempt_dir(self, video_id: str, attempt: int) -> Path:
        return self.job_dir(video_id) / f"attempt-{attempt}"

    def _folder(self, video_id: str, attempt: int | None) -> Path:
        return self.job_dir(video_id) if attempt is None else self.attempt_dir(video_id, attempt)

    def relative_path(self, video_id: str, kind: str, attempt: int | None = None) -> str:
        """Where `kind` lives relative to the root (what the database stores): in the job's folder for its inputs,
        in the folder of `attempt` for what that attempt rendered."""
        return (self._folder(video_id, attempt) / ARTIFACTS[kind][0]).relative_to(self.root).as_posix()

    def path_for(self, video_id: str, kind: str, attempt: int | None = None) -> Path:
        """The absolute path of `relative_path` (its folder is created)."""
        folder = self._folder(video_id, attempt)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / ARTIFACTS[kind][0]

    def resolve(self, relative: str) -> Path:
        """The absolute path of a stored relative path, refusing anything outside the root."""
        path = (self.root / relative).resolve()
        if self.root not in path.parents:
            raise ValueError(f"artifact path escapes the store: {relative!r}")
        return path

    def write_bytes(self, video_id: str, kind: str, data: bytes) -> Path:
        """Write atomically (temp file + rename), so a reader never sees half a file."""
        return _write_atomically(self.path_for(video_id, kind), data)

    def write_file(self, file_id: str, data: bytes) -> str:
        """Store an uploaded file (Files API); returns its path relative to the root."""
        if not is_file_id(file_id):
            raise ValueError(f"not a file id: {file_id!r}")
        path = self.root / FILES / file_id
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, data)
        return path.relative_to(self.root).as_posix()

    def write_character_frame(self, character_id: str, index: int, png: bytes) -> str:
        """Store one reference frame of a character; returns its path relative to the root."""
        if not is_character_id(character_id):
            raise ValueError(f"not a character id: {character_id!r}")
        path = self.root / CHARACTERS / character_id / f"frame-{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, png)
        return path.relative_to(self.root).as_posix()

    def delete_character(self, character_id: str) -> None:
        if is_character_id(character_id):
            shutil.rmtree(self.root / CHARACTERS / character_id, ignore_errors=True)

    def delete_relative(self, relative: str) -> None:
        """Remove one stored file (an uploaded file being deleted)."""
        self.resolve(relative).unlink(missing_ok=True)

    def remove_other_attempts(self, video_id: str, attempt: int) -> None:
        """Delete what earlier attempts (killed workers, lost leases) and half-finished writes left behind.

        Called by the attempt that holds the lease once its own files are written: nothing else is in use."""
        folder = self.job_dir(video_id)
        if not folder.is_dir():
            return
        for leftover in folder.glob(".*"):
            leftover.unlink(missing_ok=True)
        for other in folder.glob("attempt-*"):
            if other.name != f"attempt-{attempt}":
                shutil.rmtree(other, ignore_errors=True)

    def job_folders_older_than(self, seconds: float) -> list[str]:
        """Ids of job folders in which nothing has changed for `seconds` (their newest entry, one level down)."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - seconds
        found = []
        for folder in self.root.iterdir():
            if not is_video_id(folder.name) or not folder.is_dir():
                continue
            try:
                newest = max([folder.stat().st_mtime, *(entry.stat().st_mtime for entry in folder.iterdir())])
            except OSError:  # removed meanwhile
                continue
            if newest < cutoff:
                found.append(folder.name)
        return found

    def delete_attempt(self, video_id: str, attempt: int) -> None:
        shutil.rmtree(self.attempt_dir(video_id, attempt), ignore_errors=True)

    def delete_job(self, video_id: str) -> None:
        shutil.rmtree(self.job_dir(video_id), ignore_errors=True)


def _write_atomically(path: Path, data: bytes) -> Path:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except BaseException:  # a full disk: what was written of it would stay, and nothing else removes it
        temporary.unlink(missing_ok=True)
        raise
    return path
