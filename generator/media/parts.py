"""An MP4 encoded as parts on parallel x264 encoders, joined into one H.264 stream by stream copy.

After the last frames of a render are decoded, what is left of the request is their encode. One x264 encoder
spreads a short clip over its frame threads poorly (121 frames of 768×512 at `veryfast` took 0.4 s after the
render on a 16-core H200 box, about what 2 cores take), and the frames are fed to it one by one from one thread.
Here the last stretch of frames written (a one-call clip's only one) is cut into up to `parts` parts of at least
`MIN_PART_FRAMES`, each encoded by its own encoder on its own thread with a share of the cores, and `finish` copies
the parts' packets one after the other into the MP4 (`joining.join_streams`). The stretches before it (a long
video's earlier segments, encoded while the later ones render) go to one encoder, as `Mp4Writer` does: no keyframe
at each segment, and no hurry. Their headers are the same (`stitchable`, one size, one level), so a
player sees one stream; each part opens on a keyframe, which is the price: a few percent more bytes per part
(`bench/cpu_figures.py`, `mp4_parts`). Which part count pays on which machine is measured by
`bench/gpu_session.sh`; one part (`Mp4Writer`, a single encoder) stays the default until it has been.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from generator.media import joining, reading, writing
from generator.media._shared import EncodeError, VideoSource, beside, check_frames
from generator.media.writing import CRF, PRESET, ConvertOn, EncodedVideo, Mp4Output, Mp4Writer, pad_to_even

MIN_PART_FRAMES = 24  # a second at 24 fps: shorter parts spend more on their keyframes than they save in time


def mp4_writer(
    path: Path,
    fps: int,
    *,
    parts: int = 1,
    crf: int = CRF,
    preset: str = PRESET,
    follows: VideoSource | None = None,
    convert_on: ConvertOn = None,
    total_frames: int | None = None,
) -> Mp4Output:
    """The writer of a video encoded along its render: one encoder (`Mp4Writer`) for `parts` = 1, else parts on
    parallel encoders (`PartedMp4Writer`; `total_frames`: how many frames will be written in all)."""
    if parts == 1:
        return Mp4Writer(path, fps, crf=crf, preset=preset, follows=follows, convert_on=convert_on)
    return PartedMp4Writer(
        path,
        fps,
        parts=parts,
        crf=crf,
        preset=preset,
        follows=follows,
        convert_on=convert_on,
        total_frames=total_frames,
    )


def usable_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count where they differ)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def part_bounds(frames: int, parts: int) -> list[int]:
    """Where `frames` frames are cut into at most `parts` parts of about equal length, none shorter than
    `MIN_PART_FRAMES` (one part when there are too few): [0, …, frames]."""
    count = max(1, min(parts, frames // MIN_PART_FRAMES))
    return [round(index * frames / count) for index in range(count + 1)]


class PartedMp4Writer:
    """`Mp4Writer`'s CRF encode, the last `write` cut into parts encoded at once on `parts` threads (x264 frame
    threads: the cores shared between them); the writes before it, to one encoder. Which write is the last: the one
    that reaches `total_frames`; every write, when that is not given. Use from one thread at a time: `write` each
    stretch in order, then `finish`, or `abort` to leave nothing behind."""

    def __init__(
        self,
        path: Path,
        fps: int,
        *,
        parts: int,
        crf: int = CRF,
        preset: str = PRESET,
        follows: VideoSource | None = None,
        convert_on: ConvertOn = None,
        cores: int | None = None,
        total_frames: int | None = None,
    ) -> None:
        """`follows`: the video whose stream this one is to continue (`joining.append_part`): the parts take its
        H.264 level. `convert_on`: a GPU to convert each part to YUV 4:2:0 on (`generator.yuv`)."""
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if parts < 2:
            raise ValueError(f"parts must be at least 2 (one part is Mp4Writer), got {parts}")
        self.path, self.fps, self.crf, self.preset = Path(path), fps, crf, preset
        self.parts = parts
        self.convert_on = convert_on
        self.threads = max(1, (cores or usable_cores()) // parts)
        self.total_frames = total_frames
        self.frames = 0
        self.padded = False
        self.seconds = 0.0  # spent encoding, wall time
        self.size_bytes: int | None = None  # once finished, also when over the cap
        self._follows = follows
        self._level: int | None = None
        self._size: tuple[int, int] | None = None  # (width, height) of the frames, before padding
        self._files: list[Path] = []  # the parts written so far, in order
        self._pool: ThreadPoolExecutor | None = None
        self._open: Mp4Writer | None = None  # the part the writes before the last go to

    def write(self, frames: np.ndarray) -> None:
        """The next frames of the video, all of one (H, W) size: back once all their parts are encoded."""
        started = time.perf_counter()
        frames = check_frames(frames)
        size = (frames.shape[2], frames.shape[1])
        if self._size is None:
            self._size = size
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._follows is not None:
                self._level = reading.level_of(reading.stream_header(self._follows))
            self._pool = ThreadPoolExecutor(max_workers=self.parts, thread_name_prefix="hanul-mp4-part")
        elif size != self._size:
            raise ValueError(f"every part must be {self._size[0]}x{self._size[1]}, got {size[0]}x{size[1]}")
        assert self._pool is not None
        frames, self.padded = pad_to_even(frames)
        if self.total_frames is not None and self.frames + len(frames) < self.total_frames:  # more will follow
            if self._open is None:
                self._open = Mp4Writer(
                    self._new_part(),
                    self.fps,
                    crf=self.crf,
                    preset=self.preset,
                    follows=self._follows,
                    convert_on=self.convert_on,
                )
            self._open.write(frames)
        else:
            self._close_open_part()
            bounds = part_bounds(len(frames), self.parts)
            jobs = [
                self._pool.submit(self._encode_part, frames[start:end], self._new_part())
                for start, end in itertools.pairwise(bounds)
            ]
            wait(jobs)  # all of them, so that no part is still being written when a failure removes the others
            for job in jobs:
                job.result()
        self.frames += len(frames)
        self.seconds += time.perf_counter() - started

    def _new_part(self) -> Path:
        """The file of the next part, in order."""
        path = beside(self.path, f".part{len(self._files)}.mp4")
        self._files.append(path)
        return path

    def _close_open_part(self) -> None:
        if self._open is not None:
            self._open.finish(sys.maxsize)
            self._open = None

    def _encode_part(self, frames: np.ndarray, path: Path) -> None:
        height, width = frames.shape[1:3]
        planes = writing.planes_for(frames, self.convert_on)
        writing.encode_attempt(
            frames,
            self.fps,
            path,
            width,
            height,
            self.preset,
            crf=self.crf,
            level=self._level,
            planes=planes,
            threads=self.threads,
        )

    def finish(self, max_bytes: int) -> EncodedVideo | None:
        """Join the parts into the video and move it into place; None (and no file) when it is over `max_bytes`."""
        if not self._files:
            raise ValueError("no frames were written")
        self._close_open_part()  # fewer frames came than `total_frames` said: what came is the video
        started = time.perf_counter()
        tmp = beside(self.path, ".tmp")
        try:
            # One writer's settings give every part the same headers; join_streams checks it, not assumes it.
            counts = joining.join_streams(self._files, tmp)
            if sum(counts) != self.frames:
                raise EncodeError(f"the parts of {self.path.name} hold {sum(counts)} frames, {self.frames} written")
            size = self.size_bytes = tmp.stat().st_size
            if size > max_bytes:
                return None
            tmp.replace(self.path)
        finally:
            tmp.unlink(missing_ok=True)
            self.abort()
        assert self._size is not None
        width, height = (side + side % 2 for side in self._size)  # as encoded: padded to even sides
        seconds = self.seconds + time.perf_counter() - started
        return EncodedVideo(
            self.path, size, width, height, self.fps, self.frames, self.crf, None, self.padded, 1, seconds
        )

    def abort(self) -> None:
        """Remove the parts (waiting for any still being encoded)."""
        if self._open is not None:
            self._open.abort()
            self._open = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for part in self._files:
            part.unlink(missing_ok=True)
        self._files = []
