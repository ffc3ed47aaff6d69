"""Writing MP4s: H.264 under a byte cap (`encode_mp4`), or fed a part at a time while the video renders
(`Mp4Writer`, `EncodeAlong`; `parts.PartedMp4Writer` for parallel encoders)."""

from __future__ import annotations

import logging
import queue
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from generator.media import reading
from generator.media._shared import EncodeError, VideoSource, beside, check_frames, write_atomically

log = logging.getLogger(__name__)

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
BITRATE_TRIES = 3
HEADROOM = 0.92  # of the cap, for the container and x264's rate-control overshoot


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
    frames = check_frames(frames)
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

    planes = planes_for(frames, convert_on)
    size = (
        encode_attempt(frames, fps, path, width, height, preset, crf=crf, planes=planes)
        if crf_size is None
        else crf_size
    )
    attempts += 1
    if size <= max_bytes:
        if crf_size is not None:
            raise ValueError(f"crf_size {crf_size} is under the cap {max_bytes}: that encode was the video")
        return result(width, height, size, crf, None)
    target = int(max_bytes * 8 * HEADROOM / duration)
    for scale in _SCALES:
        w, h = _scaled_size(width, height, scale)
        if scale < 1.0 and min(w, h) < min(MIN_SIDE, width, height):
            break
        if target < MIN_BITS_PER_PIXEL * w * h * fps and scale != _SCALES[-1]:
            continue  # hopeless at this size: try a smaller picture rather than starving this one
        bitrate = max(target, MIN_BITRATE)
        for _ in range(BITRATE_TRIES):
            full = planes if (w, h) == (width, height) else None
            size = encode_attempt(frames, fps, path, w, h, preset, bitrate=bitrate, planes=full)
            attempts += 1
            if size <= max_bytes:
                return result(w, h, size, None, bitrate)
            lower = max(int(bitrate * max_bytes / size * HEADROOM), MIN_BITRATE)
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
        self._tmp = beside(self.path, ".tmp")
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None  # (width, height) of the frames, before padding

    def write(self, frames: np.ndarray) -> None:
        """The next frames of the video, all of one (H, W) size."""
        started = time.perf_counter()
        frames = check_frames(frames)
        size = (frames.shape[2], frames.shape[1])
        if self._size is None:
            self._size = size
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._container = mp4_container(self._tmp)
        elif size != self._size:
            raise ValueError(f"every part must be {self._size[0]}x{self._size[1]}, got {size[0]}x{size[1]}")
        frames, self.padded = pad_to_even(frames)
        height, width = frames.shape[1:3]
        if self._stream is None:
            level = None if self._follows is None else reading.level_of(reading.stream_header(self._follows))
            self._stream = _x264_stream(
                self._container, self.fps, width, height, self.preset, crf=self.crf, level=level
            )
        planes = planes_for(frames, self.convert_on)
        if planes is not None:
            _encode_planes(self._container, self._stream, planes, self.fps, first=self.frames, flush=False)
        else:
            encode_frames(
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


class Mp4Output(Protocol):
    """What encodes a video along its render: `Mp4Writer` (one encoder), `parts.PartedMp4Writer` (parallel ones)."""

    path: Path
    frames: int
    seconds: float
    size_bytes: int | None

    def write(self, frames: np.ndarray) -> None: ...

    def finish(self, max_bytes: int) -> EncodedVideo | None: ...

    def abort(self) -> None: ...


class EncodeAlong:
    """An `Mp4Writer` fed from another thread, on a thread of `pool`: a render hands it each segment's frames as soon
    as they are stitched (`add`, in order; `render_video(on_frames=…)`), so for a long (chained) video most of the
    encode is done when the render ends; for one segment it is the same encode, begun a moment sooner. After `end`,
    `encoded` is done when every part is written; then `writer.finish`."""

    def __init__(self, pool: Executor, writer: Mp4Output) -> None:
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


def encode_attempt(
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
    threads: int = 0,
) -> int:
    """One libx264 encode to `path` (replaced atomically); returns its size in bytes. `planes`: the frames already
    in YUV 4:2:0 at this size (`planes_for`). `threads`: x264's frame threads (0: one per core)."""

    def write(tmp: Path) -> None:
        with mp4_container(tmp) as container:
            stream = _x264_stream(
                container, fps, width, height, preset, crf=crf, bitrate=bitrate, level=level, threads=threads
            )
            if planes is not None:
                _encode_planes(container, stream, planes, fps)
            else:
                encode_frames(container, stream, frames, fps, width=width, height=height, format="yuv420p")

    write_atomically(path, write)
    return path.stat().st_size


def mp4_container(path: Path):
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
    threads: int = 0,
):
    stream = container.add_stream("libx264", rate=Fraction(fps, 1))
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # PyAV asks for slice threads by default, which split each frame and scale poorly (an H100 box's 16 cores
    # encoded no faster than 2). Frame threads, one per core (0 = auto), are x264's own default mode.
    # On a busy CPU two encodes of the same frames can differ slightly; rendering stays bit-exact per seed.
    stream.codec_context.thread_count = threads
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


def encode_frames(
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
    """`encode_frames` for frames already in YUV 4:2:0: (F, H·3/2, W) uint8, I420 planes (`generator.yuv`)."""
    for index, array in enumerate(planes, start=first):
        frame = av.VideoFrame.from_ndarray(array, format="yuv420p")
        frame.pts = index
        frame.time_base = Fraction(1, fps)
        for packet in stream.encode(frame):
            container.mux(packet)
    if flush:
        _flush(container, stream)


def planes_for(frames: np.ndarray, convert_on: ConvertOn) -> np.ndarray | None:
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


def _scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Even sides near `scale` times the original, keeping the aspect ratio."""
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
