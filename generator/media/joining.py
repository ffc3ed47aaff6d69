"""Joining streams: an extension's MP4 as its parent's H.264 stream continued by the new part's packets, at full
quality or squeezed beside the parent under a byte cap, else the whole encoded again."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import av
import numpy as np

from generator.images import fit_frames
from generator.media import reading, writing
from generator.media._shared import EncodeError, VideoSource, beside, check_frames, write_atomically
from generator.media.writing import (
    BITRATE_TRIES,
    CRF,
    HEADROOM,
    MIN_BITRATE,
    MIN_BITS_PER_PIXEL,
    PRESET,
    EncodedVideo,
)

log = logging.getLogger(__name__)


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
    if reading.video_byte_size(parent) + part.stat().st_size > max_bytes:
        return None
    header = reading.stream_header(parent)
    # The new part's packets can follow the parent's in one stream only when a decoder is told the same at the
    # start of both: the same parameter sets (size, profile, reference frames, quantiser set-up) and timing.
    if (
        header.codec != "h264"
        or header.extradata is None
        or header.rate != fps
        or reading.stream_header(part) != header
    ):
        return None
    counts: list[int] = []
    write_atomically(path, lambda tmp: counts.extend(join_streams([parent, part], tmp)))
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
    frames = check_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    started = time.perf_counter()
    height, width = frames.shape[1:3]
    room = max_bytes - reading.video_byte_size(parent)
    seconds = len(frames) / fps
    whole_bitrate = max_bytes * 8 * HEADROOM / (reading.frame_count(parent) / fps + seconds)
    least = max(whole_bitrate, MIN_BITS_PER_PIXEL * width * height * fps, MIN_BITRATE)
    bitrate = int(room * 8 * HEADROOM / seconds)
    for _ in range(BITRATE_TRIES):
        if bitrate < least:
            return None
        with _new_part(parent, frames, fps, path, preset, bitrate=bitrate) as part:
            if part is None:
                return None
            size = part.stat().st_size
            if size <= room:
                return append_part(parent, part, fps, path, max_bytes, bitrate=bitrate, started=started)
        bitrate = int(bitrate * room / size * HEADROOM)
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
            over = full is not None and reading.video_byte_size(parent) + full.stat().st_size > max_bytes
            if appended is None and over:
                appended = append_squeezed(parent, frames, fps, path, max_bytes, preset=preset)
    except av.FFmpegError:  # a parent whose packets cannot be copied can still be decoded
        log.warning(
            "could not continue %s as it is; encoding the whole video", reading.source_name(parent), exc_info=True
        )
        appended = None
    if appended is not None:
        return appended
    decoded, _ = reading.decode_video(parent)
    opening = fit_frames(decoded, frames.shape[2], frames.shape[1])
    return writing.encode_mp4(np.concatenate([opening, frames]), fps, path, max_bytes, preset=preset)


@contextmanager
def _new_part(
    parent: VideoSource, frames: np.ndarray, fps: int, path: Path, preset: str, **rate: Any
) -> Iterator[Path | None]:
    """`frames` encoded (at `rate`: crf= or bitrate=) to a working file beside `path`, to follow `parent`'s stream;
    None, without encoding, when they cannot (another codec or picture size). The file is removed after."""
    frames = check_frames(frames)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    height, width = frames.shape[1:3]
    header = reading.stream_header(parent)
    if width % 2 or height % 2 or (header.codec, header.width, header.height) != ("h264", width, height):
        yield None
        return
    part = beside(Path(path), ".part.mp4")
    try:
        writing.encode_attempt(frames, fps, part, width, height, preset, level=reading.level_of(header), **rate)
        yield part
    finally:
        part.unlink(missing_ok=True)


def join_streams(sources: Sequence[VideoSource], out_path: Path) -> list[int]:
    """Copy the video packets of each source in turn, each shifted to start where the one before ends, into one
    MP4 (+faststart): streams made with the same settings (`stitchable` headers) become one stream. Returns how
    many frames each gave. Raises EncodeError, writing nothing, when the sources' headers differ (callers that can
    fall back check first, e.g. `append_part`)."""
    counts = [0] * len(sources)
    with ExitStack() as opened:
        inputs = [opened.enter_context(reading.open_video(source)) for source in sources]
        if any(reading.header_of(source) != reading.header_of(inputs[0]) for source in inputs[1:]):
            raise EncodeError(f"the streams joined into {out_path.name} do not share one stream's headers")
        output = opened.enter_context(writing.mp4_container(out_path))
        template = inputs[0].streams.video[0]
        stream = output.add_stream_from_template(template)
        frame_ticks = round(1 / (template.average_rate * template.time_base))  # one frame in the stream's time units
        end = 0
        for part, source in enumerate(inputs):
            shift = None if part else 0
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
    return counts
