"""MP4s, thumbnails, spritesheets and lossless tails (FFV1): everything written to disk for one video.

All functions are plain synchronous CPU work (libx264 has no GPU here: data-centre GPUs lack NVENC); callers run
them in a worker thread, never on the event loop. Files are written under a temporary name and renamed into place,
so a reader on shared storage never sees half a file.
"""

from __future__ import annotations

import io
import logging
import math
import os
import queue
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from generator.images import fit_frames

log = logging.getLogger(__name__)

# A video to read: a file, or its bytes (an extension holds its parent's MP4 in memory from the start, so deleting
# the parent while the extension renders cannot pull it away).
VideoSource = Path | bytes
# A device to convert RGB to YUV 4:2:0 on with torch (a torch.device or its name, e.g. "cuda:0"); None: libswscale,
# frame by frame on the encoding thread.
ConvertOn = Any

CRF = 23  # x264's default quality: a 5 s 768×512 clip is well under 1 MB
# 768×512×121 moving pattern on 2 cores, frame threads: fast 1.34 s / 326 KB / 34.6 dB, veryfast 0.74 s / 304 KB /
# 34.2 dB, ultrafast 0.33 s / 884 KB (docs/performance.md). veryfast: about half of fast's time, at the same size.
PRESET = "veryfast"
MIN_SIDE = 64  # never shrink a video below this to meet a byte cap
# Below this many bits per pixel per frame x264 output turns to mush: shrink the picture instead.
MIN_BITS_PER_PIXEL = 0.03
MIN_BITRATE = 16_000  # x264 refuses to open with a rate control buffer of a few hundred bits
_SCALES = (1.0, 0.75, 0.5, 0.375, 0.25)
_BITRATE_TRIES = 3
_HEADROOM = 0.92  # of the cap, for the container and x264's rate-control overshoot
TAIL_SLICES = {"level": "3", "slices": "16"}  # up to 16 threads code (and decode) a frame
SPRITES = 16  # tiles in a spritesheet


class EncodeError(Exception):
    """The video cannot be written as asked, e.g. it cannot fit under the byte cap at any allowed size."""


@dataclass(frozen=True)
class EncodedVideo:
    """What `encode_mp4` wrote."""

    path: Path
    size_bytes: int
    width: int
    height: int
    fps: int
    frames: int
    crf: int | None  # the quality setting used, or None when a bitrate was
    bitrate: int | None  # bits per second when the CRF encode was over the cap
    padded: bool  # an odd width or height was padded by one edge pixel
    attempts: int
    seconds: float  # time spent encoding, all attempts

    @property
    def duration(self) -> float:
        return self.frames / self.fps


@dataclass(frozen=True)
class Spritesheet:
    """A JPEG grid of frames, left to right then top to bottom."""

    path: Path
    columns: int
    rows: int
    tile_width: int
    tile_height: int
    frame_indices: tuple[int, ...]


def encode_mp4(
    frames: np.ndarray,
    fps: int,
    path: Path,
    max_bytes: int,
    *,
    crf: int = CRF,
    preset: str = PRESET,
    crf_size: int | None = None,
    convert_on: ConvertOn = None,
) -> EncodedVideo:
    """H.264 (yuv420p, +faststart) at the real `fps`, under `max_bytes`: CRF first, then lower bitrates, then smaller
    pictures. Raises EncodeError when even the smallest allowed picture does not fit. `crf_size`: the CRF encode
    of these frames was made already (by an `Mp4Writer`) and came to this many bytes, over the cap. `convert_on`: a
    GPU to convert full-size frames to YUV on (`generator.yuv`) instead of libswscale on this thread."""
    frames = _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    started = time.perf_counter()
    frames, padded = pad_to_even(frames)
    height, width = frames.shape[1:3]
    duration = len(frames) / fps
    attempts = 0

    def result(w: int, h: int, size: int, used_crf: int | None, bitrate: int | None) -> EncodedVideo:
        return EncodedVideo(
            path, size, w, h, fps, len(frames), used_crf, bitrate, padded, attempts, time.perf_counter() - started
        )

    planes = _planes(frames, convert_on)
    size = (
        _encode_attempt(frames, fps, path, width, height, preset, crf=crf, planes=planes)
        if crf_size is None
        else crf_size
    )
    attempts += 1
    if size <= max_bytes:
        if crf_size is not None:
            raise ValueError(f"crf_size {crf_size} is under the cap {max_bytes}: that encode was the video")
        return result(width, height, size, crf, None)
    target = int(max_bytes * 8 * _HEADROOM / duration)
    for scale in _SCALES:
        w, h = _scaled_size(width, height, scale)
        if scale < 1.0 and min(w, h) < min(MIN_SIDE, width, height):
            break
        if target < MIN_BITS_PER_PIXEL * w * h * fps and scale != _SCALES[-1]:
            continue  # hopeless at this size: try a smaller picture rather than starving this one
        bitrate = max(target, MIN_BITRATE)
        for _ in range(_BITRATE_TRIES):
            full = planes if (w, h) == (width, height) else None
            size = _encode_attempt(frames, fps, path, w, h, preset, bitrate=bitrate, planes=full)
            attempts += 1
            if size <= max_bytes:
                return result(w, h, size, None, bitrate)
            lower = max(int(bitrate * max_bytes / size * _HEADROOM), MIN_BITRATE)
            if lower == bitrate:
                break  # already at the floor: only a smaller picture can help
            bitrate = lower
    path.unlink(missing_ok=True)
    raise EncodeError(
        f"cannot fit {len(frames)} frames of {width}x{height} at {fps} fps ({duration:.1f} s) under {max_bytes} "
        f"bytes, even at the smallest allowed size; the last try was {size} bytes"
    )


def pad_to_even(frames: np.ndarray) -> tuple[np.ndarray, bool]:
    """yuv420p needs even sides: repeat the last row or column once rather than rescale or lose a pixel."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if not pad_h and not pad_w:
        return frames, False
    return np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge"), True


class Mp4Writer:
    """`encode_mp4`'s first attempt (CRF, at the frames' own size) fed a part of the video at a time: a long video's
    encode runs while its later parts still render, and what is left to encode after the render is its last part.

    Use from one thread at a time: `write` each part in order, then `finish`, or `abort` to leave nothing behind.
    """

    def __init__(
        self,
        path: Path,
        fps: int,
        *,
        crf: int = CRF,
        preset: str = PRESET,
        follows: VideoSource | None = None,
        convert_on: ConvertOn = None,
    ) -> None:
        """`follows`: the video whose stream this one is to continue (`append_part`), so it is encoded at that
        stream's H.264 level. `convert_on`: a GPU to convert each part to YUV 4:2:0 on (`generator.yuv`), so this
        thread only hands planes to x264; None: libswscale here, frame by frame (quicker than torch on a CPU)."""
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path, self.fps, self.crf, self.preset = Path(path), fps, crf, preset
        self.convert_on = convert_on
        self._follows = follows
        self.frames = 0
        self.padded = False
        self.seconds = 0.0  # spent encoding
        self.size_bytes: int | None = None  # once finished, also when over the cap
        self._tmp = _beside(self.path, ".tmp")
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None  # (width, height) of the frames, before padding

    def write(self, frames: np.ndarray) -> None:
        """The next frames of the video, all of one (H, W) size."""
        started = time.perf_counter()
        frames = _check_frames(frames)
        size = (frames.shape[2], frames.shape[1])
        if self._size is None:
            self._size = size
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = _mp4_container(self._tmp)
        elif size != self._size:
            raise ValueError(f"every part must be {self._size[0]}x{self._size[1]}, got {size[0]}x{size[1]}")
        frames, self.padded = pad_to_even(frames)
        height, width = frames.shape[1:3]
        if self._stream is None:
            level = None if self._follows is None else _level_of(_stream_header(self._follows))
            self._stream = _x264_stream(
                self._container, self.fps, width, height, self.preset, crf=self.crf, level=level
            )
        planes = _planes(frames, self.convert_on)
        if planes is not None:
            _encode_planes(self._container, self._stream, planes, self.fps, first=self.frames, flush=False)
        else:
            _encode_frames(
                self._container, self._stream, frames, self.fps, first=self.frames, flush=False, format="yuv420p"
            )
        self.frames += len(frames)
        self.seconds += time.perf_counter() - started

    def finish(self, max_bytes: int) -> EncodedVideo | None:
        """Close the video and move it into place; None (and no file) when it is over `max_bytes`: the smaller
        attempts of `encode_mp4` need every frame again."""
        if self._stream is None:
            raise ValueError("no frames were written")
        started = time.perf_counter()
        width, height = self._stream.width, self._stream.height
        try:
            _flush(self._container, self._stream)
            self._container.close()
            self._container = None
            size = self.size_bytes = self._tmp.stat().st_size
            if size > max_bytes:
                return None
            self._tmp.replace(self.path)
        finally:
            self.abort()
        seconds = self.seconds + time.perf_counter() - started
        return EncodedVideo(
            self.path, size, width, height, self.fps, self.frames, self.crf, None, self.padded, 1, seconds
        )

    def abort(self) -> None:
        """Close without a video: the partial file is removed."""
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError:  # pragma: no cover - closing a half-written file is best effort
                log.debug("closing an abandoned MP4 failed", exc_info=True)
            self._container = None
        self._stream = None  # lets the encoder (and its threads) go now
        self._tmp.unlink(missing_ok=True)


class EncodeAlong:
    """An `Mp4Writer` fed from another thread, on a thread of `pool`: a render hands it each segment's frames as soon
    as they are stitched (`add`, in order; `render_video(on_frames=…)`), so for a long (chained) video most of the
    encode is done when the render ends; for one segment it is the same encode, begun a moment sooner. After `end`,
    `encoded` is done when every part is written; then `writer.finish`."""

    def __init__(self, pool: Executor, writer: Mp4Writer) -> None:
        self.writer = writer
        self._parts: queue.SimpleQueue[np.ndarray | None] = queue.SimpleQueue()
        self.encoded = pool.submit(self._encode)  # done when every part is encoded (the render has ended)

    def add(self, frames: np.ndarray) -> None:
        self._parts.put(frames)

    def end(self) -> None:
        """The render is over: no part follows."""
        self._parts.put(None)

    def _encode(self) -> None:
        while (part := self._parts.get()) is not None:
            self.writer.write(part)

    def abort(self) -> None:
        """Wait for the encoding thread (blocks: not on an event loop), then remove the partial file."""
        self.end()
        try:
            self.encoded.result()
        except Exception:
            log.debug("the MP4 encoded along an unfinished render failed", exc_info=True)
        self.writer.abort()


def decode_video(path: VideoSource) -> tuple[np.ndarray, float]:
    """All frames of a video file as (F, H, W, 3) uint8 RGB, and its frame rate."""
    with _open_video(path) as container:
        stream = _decoding(container.streams.video[0])
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = stream.average_rate or stream.guessed_rate
    if not frames:
        raise EncodeError(f"{_name(path)} has no video frames")
    return np.stack(frames), float(rate) if rate else 0.0


def write_thumbnail(frame: np.ndarray, path: Path, *, quality: int = 80) -> Path:
    """One (H, W, 3) uint8 frame as WebP (the thumbnail variant of OpenAI's Videos API is image/webp)."""
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"a thumbnail needs one (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    return _write_atomically(Path(path), lambda tmp: Image.fromarray(frame).save(tmp, "WEBP", quality=quality))


def write_spritesheet(
    frames: np.ndarray, path: Path, *, count: int = SPRITES, columns: int = 4, tile_width: int = 256, quality: int = 85
) -> Spritesheet:
    """Up to `count` evenly spaced frames in a JPEG grid (OpenAI's spritesheet variant is image/jpeg)."""
    frames = _check_frames(frames)
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
    path = _write_atomically(Path(path), lambda tmp: sheet.save(tmp, "JPEG", quality=quality))
    return Spritesheet(path, columns, rows, tile_width, tile_height, indices)


def spritesheet_indices(total: int, count: int = SPRITES) -> tuple[int, ...]:
    """Which of `total` frames a spritesheet of up to `count` tiles shows: evenly spaced, first and last included."""
    return tuple(np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist())


def frames_at(path: VideoSource, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """Some frames of a video by index, as (H, W, 3) uint8 RGB: each decoded from the keyframe before it, so a few
    frames spread over a long video (an extension's spritesheet) cost a few stretches of decoding, not all of it;
    where the stream's timing does not say which frame is which, decoded in order from the start, as far as the
    last of them."""
    wanted = sorted(set(indices))
    if not wanted:
        return {}
    found = _frames_by_seeking(path, wanted)
    if found is None:
        found = _frames_in_order(path, wanted)
    if len(found) < len(wanted):
        raise EncodeError(f"{_name(path)} has no frame {min(set(wanted) - found.keys())}")
    return found


def _frames_in_order(path: VideoSource, wanted: list[int]) -> dict[int, np.ndarray]:
    found: dict[int, np.ndarray] = {}
    with _open_video(path) as container:
        for index, frame in enumerate(container.decode(_decoding(container.streams.video[0]))):
            if index in wanted:
                found[index] = frame.to_ndarray(format="rgb24")
            if index >= wanted[-1]:
                break
    return found


def _frames_by_seeking(path: VideoSource, wanted: list[int]) -> dict[int, np.ndarray] | None:
    """`frames_at` for a constant frame rate stream whose timestamps count whole frames (every MP4 Hanul writes):
    the keyframes are found from the packets (no decoding), and each wanted frame is decoded from the last keyframe
    before it, or onwards from the frame before when that is nearer. None when the timing is not like that, or a
    wanted frame is not where the timing says (then `frames_at` decodes in order, and names a frame that is not
    there)."""
    found: dict[int, np.ndarray] = {}
    with _open_video(path) as container:
        stream = container.streams.video[0]
        if not stream.average_rate or not stream.time_base:
            return None
        ticks = 1 / (stream.average_rate * stream.time_base)  # one frame, in the stream's time units
        packets = [(packet.pts, packet.is_keyframe) for packet in container.demux(stream) if packet.dts is not None]
        if not packets or ticks.denominator != 1 or any(pts is None for pts, _ in packets):
            return None
        start = min(pts for pts, _ in packets)

        def index_of(pts: int) -> Fraction:
            return (pts - start) / ticks

        if any(index_of(pts).denominator != 1 for pts, _ in packets):
            return None
        keyframes = sorted(int(index_of(pts)) for pts, keyframe in packets if keyframe)
        _decoding(stream)
        decoded = None  # decoding onwards from a keyframe
        position = -1  # the index of the frame decoded last
        for index in wanted:
            keyframe = max((key for key in keyframes if key <= index), default=None)
            if keyframe is None:
                return None
            if decoded is None or keyframe > position:
                container.seek(int(start + keyframe * ticks), backward=True, any_frame=False, stream=stream)
                decoded = container.decode(stream)
            for frame in decoded:
                if frame.pts is None:
                    return None
                position = int(index_of(frame.pts))
                if position >= index:
                    break
            if position != index:
                return None  # past it (or at the end): this stream is not what it seemed
            found[index] = frame.to_ndarray(format="rgb24")
    return found


def frame_count(path: VideoSource) -> int:
    """How many frames a video holds: from the container's index, or by decoding when it keeps none."""
    with _open_video(path) as container:
        stream = container.streams.video[0]
        return stream.frames or sum(1 for _ in container.decode(_decoding(stream)))


def append_to_mp4(
    parent: VideoSource,
    frames: np.ndarray,
    fps: int,
    path: Path,
    max_bytes: int,
    *,
    crf: int = CRF,
    preset: str = PRESET,
) -> EncodedVideo | None:
    """`parent`'s H.264 stream as it is, then `frames` encoded as a new part of it: an extension's MP4 without
    decoding and re-encoding what came before. Each such generation costs picture quality (six extensions took a
    clip's opening from 34.4 to 28.0 dB PSNR) and time (the sixth link: 2.87 s against 0.25 s appended), both
    growing with the chain; `bench/cpu_figures.py`, `extension_chain_*`.

    Returns None when the parent cannot take the new part as it is (another size, frame rate or encoder setting,
    e.g. a parent squeezed under a byte cap at a smaller size, or encoded before 2026-11-30, when headers
    depended on the rate control) or the whole would pass `max_bytes`; the caller then squeezes the part
    (`append_squeezed`) or encodes the whole video with `encode_mp4`.
    """
    started = time.perf_counter()
    with _new_part(parent, frames, fps, path, preset, crf=crf) as part:
        return None if part is None else append_part(parent, part, fps, path, max_bytes, crf=crf, started=started)


@contextmanager
def _new_part(
    parent: VideoSource, frames: np.ndarray, fps: int, path: Path, preset: str, **rate: Any
) -> Iterator[Path | None]:
    """`frames` encoded (at `rate`: crf= or bitrate=) to a working file beside `path`, to follow `parent`'s stream;
    None, without encoding, when they cannot (another codec or picture size). The file is removed after."""
    frames = _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    height, width = frames.shape[1:3]
    header = _stream_header(parent)
    if width % 2 or height % 2 or (header.codec, header.width, header.height) != ("h264", width, height):
        yield None
        return
    part = _beside(Path(path), ".part.mp4")
    try:
        _encode_attempt(frames, fps, part, width, height, preset, level=_level_of(header), **rate)
        yield part
    finally:
        part.unlink(missing_ok=True)


def append_part(
    parent: VideoSource,
    part: Path,
    fps: int,
    path: Path,
    max_bytes: int,
    *,
    crf: int = CRF,
    bitrate: int | None = None,
    started: float | None = None,
) -> EncodedVideo | None:
    """`parent`'s H.264 stream as it is, then the packets of `part`: new frames already encoded with the parent's
    settings (by `append_to_mp4`, or by an `Mp4Writer` while they rendered; at `bitrate` when it was squeezed beside
    the parent under the cap). None, and no file, when the part cannot follow the parent (see `append_to_mp4`) or
    the whole would pass `max_bytes`."""
    started = time.perf_counter() if started is None else started
    path, part = Path(path), Path(part)
    if _byte_size(parent) + part.stat().st_size > max_bytes:
        return None
    header = _stream_header(parent)
    # The new part's packets can follow the parent's in one stream only when a decoder is told the same at the
    # start of both: the same parameter sets (size, profile, reference frames, quantiser set-up) and timing.
    if header.codec != "h264" or header.extradata is None or header.rate != fps or _stream_header(part) != header:
        return None
    counts: list[int] = []
    _write_atomically(path, lambda tmp: counts.extend(_join_streams(parent, part, tmp)))
    size = path.stat().st_size
    if size > max_bytes:  # the container's index grew past the cap: rare, and the full encode handles it
        path.unlink()
        return None
    used_crf = crf if bitrate is None else None
    seconds = time.perf_counter() - started
    return EncodedVideo(path, size, header.width, header.height, fps, sum(counts), used_crf, bitrate, False, 1, seconds)


def append_squeezed(
    parent: VideoSource, frames: np.ndarray, fps: int, path: Path, max_bytes: int, *, preset: str = PRESET
) -> EncodedVideo | None:
    """`parent`'s stream as it is, then `frames` encoded at the bitrate that fits in what `max_bytes` leaves beside
    it: for an extension whose new part at full quality would pass the cap. Encoding the whole video again at a
    capped bitrate would cost the parent a generation of quality; this costs it nothing, and is chosen only while
    the new frames get at least the bitrate per second that the whole encoded again would give every frame (and
    `MIN_BITS_PER_PIXEL`). None, and no file, otherwise, or when the part cannot follow the parent."""
    frames = _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    started = time.perf_counter()
    height, width = frames.shape[1:3]
    room = max_bytes - _byte_size(parent)
    seconds = len(frames) / fps
    whole_bitrate = max_bytes * 8 * _HEADROOM / (frame_count(parent) / fps + seconds)
    least = max(whole_bitrate, MIN_BITS_PER_PIXEL * width * height * fps, MIN_BITRATE)
    bitrate = int(room * 8 * _HEADROOM / seconds)
    for _ in range(_BITRATE_TRIES):
        if bitrate < least:
            return None
        with _new_part(parent, frames, fps, path, preset, bitrate=bitrate) as part:
            if part is None:
                return None
            size = part.stat().st_size
            if size <= room:
                return append_part(parent, part, fps, path, max_bytes, bitrate=bitrate, started=started)
        bitrate = int(bitrate * room / size * _HEADROOM)
    return None


def encode_extension(
    parent: VideoSource,
    frames: np.ndarray,
    fps: int,
    path: Path,
    max_bytes: int,
    *,
    preset: str = PRESET,
    part: Path | None = None,
) -> EncodedVideo:
    """The MP4 of a rendered video extended by `frames`: the parent's stream continued as it is where it can take
    them (the new frames encoded at full quality with its settings, as `append_to_mp4` does; `part`: encoded so
    already, along the render); where both would pass `max_bytes`, the new frames encoded at the bitrate that fits
    beside the parent (`append_squeezed`); else the parent decoded, fitted to the new frames' size, and the whole
    encoded."""
    try:
        full_quality = _new_part(parent, frames, fps, path, preset, crf=CRF) if part is None else nullcontext(part)
        with full_quality as full:
            appended = None if full is None else append_part(parent, full, fps, path, max_bytes)
            if appended is None and full is not None and _byte_size(parent) + full.stat().st_size > max_bytes:
                appended = append_squeezed(parent, frames, fps, path, max_bytes, preset=preset)
    except av.FFmpegError:  # a parent whose packets cannot be copied can still be decoded
        log.warning("could not continue %s as it is; encoding the whole video", _name(parent), exc_info=True)
        appended = None
    if appended is not None:
        return appended
    decoded, _ = decode_video(parent)
    opening = fit_frames(decoded, frames.shape[2], frames.shape[1])
    return encode_mp4(np.concatenate([opening, frames]), fps, path, max_bytes, preset=preset)


def save_tail(frames: np.ndarray, path: Path, fps: int) -> Path:
    """Keep the frames a later extension continues from, losslessly: FFV1 (an intra-only lossless video codec) in
    Matroska. For 17 frames of 768×512 on 2 cores it writes 2.9× quicker than compressed numpy and 1.6–5.5× smaller
    (`bench/cpu_figures.py`, `tail_*`); the job is not complete until its tail is written."""
    frames = _check_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    height, width = frames.shape[1:3]

    def write(tmp: Path) -> None:
        with av.open(str(tmp), mode="w", format="matroska") as container:
            stream = container.add_stream("ffv1", rate=Fraction(fps, 1))
            # bgr0 holds RGB bytes unchanged (yuv would round): the round trip is exact, which the tests check.
            stream.width, stream.height, stream.pix_fmt = width, height, "bgr0"
            stream.codec_context.thread_count = 0
            # Level 3 splits each frame into slices coded on parallel threads (4 × 4 of them); FFV1 refuses that
            # (and its own default) for a picture under 4 pixels high or wide, which level 1 (no slices) codes.
            stream.options = dict(TAIL_SLICES) if min(height, width) >= 4 else {"level": "1"}
            _encode_frames(container, stream, frames, fps, format="bgr0")

    return _write_atomically(Path(path), write)


def load_tail(path: Path) -> np.ndarray:
    """The frames `save_tail` kept, exactly; also reads the compressed-numpy tails written before FFV1 was used."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return _check_frames(data["frames"])
    return _check_frames(decode_video(path)[0])


def _encode_attempt(
    frames: np.ndarray,
    fps: int,
    path: Path,
    width: int,
    height: int,
    preset: str,
    *,
    crf: int | None = None,
    bitrate: int | None = None,
    level: int | None = None,
    planes: np.ndarray | None = None,
) -> int:
    """One libx264 encode to `path` (replaced atomically); returns its size in bytes. `planes`: the frames already
    in YUV 4:2:0 at this size (`_planes`)."""

    def write(tmp: Path) -> None:
        with _mp4_container(tmp) as container:
            stream = _x264_stream(container, fps, width, height, preset, crf=crf, bitrate=bitrate, level=level)
            if planes is not None:
                _encode_planes(container, stream, planes, fps)
            else:
                _encode_frames(container, stream, frames, fps, width=width, height=height, format="yuv420p")

    _write_atomically(path, write)
    return path.stat().st_size


def _mp4_container(path: Path):
    # movflags=+faststart moves the index (moov) before the data so players start before the download ends.
    return av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"})


def _x264_stream(
    container,
    fps: int,
    width: int,
    height: int,
    preset: str,
    *,
    crf: int | None = None,
    bitrate: int | None = None,
    level: int | None = None,
):
    stream = container.add_stream("libx264", rate=Fraction(fps, 1))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # PyAV asks for slice threads by default, which split each frame and scale poorly (an H100 box's 16 cores
    # encoded no faster than 2). Frame threads, one per core (0 = auto), are x264's own default mode.
    # On a busy CPU two encodes of the same frames can differ slightly; rendering stays bit-exact per seed.
    stream.codec_context.thread_count = 0
    stream.codec_context.thread_type = "FRAME"
    # Headers that do not depend on the rate control (`stitchable`), so a part encoded at a capped bitrate has the
    # parameter sets of a CRF encode of that size and can continue its stream (`append_part`). x264 picks the
    # level from the size, frame rate and bitrate; a part that is to follow a stream is given that stream's.
    options = {"preset": preset, "x264-params": "stitchable=1" if level is None else f"stitchable=1:level={level}"}
    if bitrate is None:
        options["crf"] = str(crf)
    else:
        stream.bit_rate = bitrate
        # Cap the peaks too, so short clips do not overshoot the average by much.
        options.update({"maxrate": str(int(bitrate * 1.2)), "bufsize": str(int(bitrate * 2))})
    stream.options = options
    return stream


def _decoding(stream: av.video.stream.VideoStream) -> av.video.stream.VideoStream:
    """Frame threads for inter-coded video such as H.264 (several frames decode at once; the pictures are the same:
    1.3× quicker on 2 cores, more with more); FFV1 is intra-only and already decodes its slices in parallel, where
    frame threads measured slower."""
    if stream.codec_context.name != "ffv1":
        stream.thread_type = "AUTO"
    return stream


@dataclass(frozen=True)
class _StreamHeader:
    """What a decoder learns once, at the start of a video stream."""

    codec: str
    width: int
    height: int
    extradata: bytes | None  # H.264's parameter sets
    time_base: Fraction | None
    rate: Fraction | None


def _stream_header(source: VideoSource) -> _StreamHeader:
    with _open_video(source) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        return _StreamHeader(
            context.name, stream.width, stream.height, context.extradata, stream.time_base, stream.average_rate
        )


def _join_streams(first: VideoSource, second: Path, out_path: Path) -> tuple[int, int]:
    """Copy the video packets of `first`, then those of `second` shifted to start where `first` ends, into one MP4
    (+faststart). Returns how many frames each gave."""
    counts = [0, 0]
    with (
        _open_video(first) as before,
        av.open(str(second)) as after,
        _mp4_container(out_path) as output,
    ):
        template = before.streams.video[0]
        stream = output.add_stream_from_template(template)
        frame_ticks = round(1 / (template.average_rate * template.time_base))  # one frame in the stream's time units
        end = 0
        for part, (source, shift) in enumerate(((before, 0), (after, None))):
            for packet in source.demux(source.streams.video[0]):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                if shift is None:
                    shift = end
                packet.pts += shift
                packet.dts += shift
                end = max(end, packet.pts + (packet.duration or frame_ticks))
                packet.stream = stream
                output.mux(packet)
                counts[part] += 1
    return counts[0], counts[1]


def _level_of(header: _StreamHeader) -> int | None:
    """The H.264 level of a stream (`level_idc`, e.g. 30 for 3.0), from its avcC record."""
    extradata = header.extradata
    return extradata[3] if extradata is not None and len(extradata) > 3 and extradata[0] == 1 else None


def _byte_size(source: VideoSource) -> int:
    return len(source) if isinstance(source, bytes) else Path(source).stat().st_size


def _open_video(source: VideoSource):
    return av.open(io.BytesIO(source)) if isinstance(source, bytes) else av.open(str(source))


def _name(source: VideoSource) -> str:
    return f"a video of {len(source)} bytes" if isinstance(source, bytes) else str(source)


def _encode_frames(
    container, stream, frames: np.ndarray, fps: int, *, first: int = 0, flush: bool = True, **reformat: Any
) -> None:
    """Every frame into `stream` (the first is frame number `first` of the video), converted by `reformat` (size,
    pixel format), then, with `flush`, the encoder's last packets."""
    # One reformatter for all the frames: `VideoFrame.reformat` builds a new libswscale context for every frame,
    # which was half of the conversion's time (768×512×121 on 2 cores: 0.22-0.24 s → 0.09-0.12 s, same bytes).
    reformatter = VideoReformatter()
    for index, array in enumerate(frames, start=first):
        frame = reformatter.reformat(
            av.VideoFrame.from_ndarray(array, format="rgb24"), interpolation="AREA", **reformat
        )
        # Without explicit timestamps the encoder guesses them and the output changes from run to run.
        frame.pts = index
        frame.time_base = Fraction(1, fps)
        for packet in stream.encode(frame):
            container.mux(packet)
    if flush:
        _flush(container, stream)


def _encode_planes(container, stream, planes: np.ndarray, fps: int, *, first: int = 0, flush: bool = True) -> None:
    """`_encode_frames` for frames already in YUV 4:2:0: (F, H·3/2, W) uint8, I420 planes (`generator.yuv`)."""
    for index, array in enumerate(planes, start=first):
        frame = av.VideoFrame.from_ndarray(array, format="yuv420p")
        frame.pts = index
        frame.time_base = Fraction(1, fps)
        for packet in stream.encode(frame):
            container.mux(packet)
    if flush:
        _flush(container, stream)


def _planes(frames: np.ndarray, convert_on: ConvertOn) -> np.ndarray | None:
    """Even-sided RGB frames as YUV 4:2:0 planes converted by torch on `convert_on`, or None (no device given) where
    libswscale is to convert them frame by frame. Callers give a GPU: on a CPU libswscale is 4-7× quicker than
    torch (0.10 s vs 0.44-0.73 s for 121 frames of 768×512 on 2 cores); tests give "cpu" to check the path."""
    if convert_on is None:
        return None
    from generator.yuv import yuv420_planes

    try:
        return yuv420_planes(frames, convert_on)
    except RuntimeError:  # e.g. out of GPU memory beside a render: the same video through libswscale
        log.warning("RGB -> YUV on %s failed; converting with libswscale", convert_on, exc_info=True)
        return None


def _flush(container, stream) -> None:
    """The packets an encoder still holds, once no frame follows."""
    for packet in stream.encode():
        container.mux(packet)


def _beside(path: Path, suffix: str) -> Path:
    """A hidden working file next to `path`, named for this process so two processes never share one."""
    return path.with_name(f".{path.name}.{os.getpid()}{suffix}")


def _write_atomically(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path, ".tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Even sides near `scale` times the original, keeping the aspect ratio."""
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (F, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    return frames
