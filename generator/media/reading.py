"""Reading videos: every frame, a few frames by seeking, the frame count, and what a stream's header says."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from generator.media._shared import EncodeError, VideoSource


def decode_video(path: VideoSource) -> tuple[np.ndarray, float]:
    """All frames of a video file as (F, H, W, 3) uint8 RGB, and its frame rate."""
    with open_video(path) as container:
        stream = _decoding(container.streams.video[0])
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = stream.average_rate or stream.guessed_rate
    if not frames:
        raise EncodeError(f"{source_name(path)} has no video frames")
    return np.stack(frames), float(rate) if rate else 0.0


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
        raise EncodeError(f"{source_name(path)} has no frame {min(set(wanted) - found.keys())}")
    return found


def _frames_in_order(path: VideoSource, wanted: list[int]) -> dict[int, np.ndarray]:
    found: dict[int, np.ndarray] = {}
    with open_video(path) as container:
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
    with open_video(path) as container:
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
    with open_video(path) as container:
        stream = container.streams.video[0]
        return stream.frames or sum(1 for _ in container.decode(_decoding(stream)))


@dataclass(frozen=True)
class StreamHeader:
    """What a decoder learns once, at the start of a video stream."""

    codec: str
    width: int
    height: int
    extradata: bytes | None  # H.264's parameter sets
    time_base: Fraction | None
    rate: Fraction | None


def stream_header(source: VideoSource) -> StreamHeader:
    with open_video(source) as container:
        return header_of(container)


def header_of(container) -> StreamHeader:
    """The header of an open container's video stream."""
    stream = container.streams.video[0]
    context = stream.codec_context
    return StreamHeader(
        context.name, stream.width, stream.height, context.extradata, stream.time_base, stream.average_rate
    )


def level_of(header: StreamHeader) -> int | None:
    """The H.264 level of a stream (`level_idc`, e.g. 30 for 3.0), from its avcC record."""
    extradata = header.extradata
    return extradata[3] if extradata is not None and len(extradata) > 3 and extradata[0] == 1 else None


def _decoding(stream: av.video.stream.VideoStream) -> av.video.stream.VideoStream:
    """Frame threads for inter-coded video such as H.264 (several frames decode at once; the pictures are the same:
    1.3× quicker on 2 cores, more with more); FFV1 is intra-only and already decodes its slices in parallel, where
    frame threads measured slower."""
    if stream.codec_context.name != "ffv1":
        stream.thread_type = "AUTO"
    return stream


# A display matrix's counter-clockwise turns (`VideoFrame.rotation`) and the transpose that shows a frame upright.
DISPLAY_TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def display_turn(frame: av.VideoFrame) -> int:
    """How far a decoded frame is turned counter-clockwise to be shown upright, in quarter turns (0, 90, 180 or 270):
    a phone's portrait clip is stored on its side with a display matrix saying so, which players apply."""
    try:
        rotation = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return round(rotation / 90) % 4 * 90


def upright_image(frame: av.VideoFrame, width: int | None = None, height: int | None = None) -> Image.Image:
    """A decoded frame as an RGB picture the right way up, scaled to `width` × `height` as shown (by the decoder's
    scaler, from YUV, before the turn)."""
    turn = display_turn(frame)
    if turn in (90, 270):
        width, height = height, width
    picture = frame.to_image(width=width, height=height, interpolation="AREA" if width or height else None)
    return picture.transpose(DISPLAY_TURNS[turn]) if turn in DISPLAY_TURNS else picture


def shown_size(frame: av.VideoFrame) -> tuple[int, int]:
    """A decoded frame's width and height as shown (see `display_turn`)."""
    return (frame.height, frame.width) if display_turn(frame) in (90, 270) else (frame.width, frame.height)


def open_video(source: VideoSource):
    return av.open(io.BytesIO(source)) if isinstance(source, bytes) else av.open(str(source))


def source_name(source: VideoSource) -> str:
    return f"a video of {len(source)} bytes" if isinstance(source, bytes) else str(source)


def byte_size(source: VideoSource) -> int:
    return len(source) if isinstance(source, bytes) else Path(source).stat().st_size


def video_byte_size(source: VideoSource) -> int:
    """`byte_size` less the packets of the file's other streams (an MP4's sound): what its video brings to a file
    that continues its stream, which carries no other stream of it (an extension's sound is muxed in again whole)."""
    with open_video(source) as container:
        others = [stream for stream in container.streams if stream.type != "video"]
        extra = sum(packet.size for packet in container.demux(others) if packet.dts is not None) if others else 0
    return byte_size(source) - extra
