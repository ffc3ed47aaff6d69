"""One video from a validated spec: a single pipeline call, or a chain of continuations for long videos.

Each continuation is conditioned on the last frames of everything rendered so far (or on the parent's lossless
tail for an extension), its re-rendering of those frames is dropped, and its colours are matched to the real
frames so the seam does not jump. Exactly `total_frames` new frames come back, with no frame doubled or lost.

A model with sound renders each segment's sound with its frames; the sound is kept by the same frames (from the
first new frame's sample to the last's) and joined to what came before with a short crossfade over the context,
so the whole track is continuous and exactly as long as the video (generator/media/audio.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .media.audio import CROSSFADE_SECONDS, SoundTrack, as_channels, fit_length, join, sample_at, silence
from .pipelines.base import LatentObserver, ModelProfile, RenderRequest, VideoBackend
from .stitch import colour_stats, match_colours
from .yuv import conversion_device

ProgressFraction = Callable[[float], None]  # 0..1 over the whole chain; may raise RenderCancelled


@dataclass
class VideoSpec:
    """A validated request: sizes already valid for the backend's profile, frames counted at `fps`."""

    prompt: str
    width: int
    height: int
    total_frames: int  # new frames wanted (any count ≥ 1: renders the next valid count and trims)
    fps: int
    steps: int
    guidance_scale: float
    seed: int
    negative_prompt: str | None = None
    image: np.ndarray | None = None  # first frame, (H, W, 3) uint8
    parent_tail: np.ndarray | None = None  # lossless last frames of the video being extended, (F, H, W, 3) uint8
    # An edit's source, (total_frames, H, W, 3) uint8: each call re-renders its stretch of it by `strength`.
    source: np.ndarray | None = None
    strength: float | None = None
    references: tuple[np.ndarray, ...] = ()  # characters' reference frames, (H, W, 3) uint8 each
    sound: bool = False  # render the model's sound too (a model without sound renders none either way)
    # The whole sound of the video being extended (silence of its length when it has none but this part will).
    parent_sound: SoundTrack | None = None


@dataclass
class RenderedVideo:
    """The new frames, and the tail a later extension will continue from."""

    frames: np.ndarray  # (total_frames, H, W, 3) uint8: new frames only
    tail: np.ndarray  # last `conditioning_frames` frames of parent + new (fewer if the whole video is shorter)
    segments: int
    timings: dict[str, float] = field(default_factory=dict)
    # The prompt's tokens and how many of them the text encoder took (the rest was cut), where the backend says.
    prompt_tokens: tuple[int, int] | None = None
    # The whole video's track, parent's sound included (an extension's MP4 carries it all); None: a silent video.
    sound: SoundTrack | None = None


@dataclass(frozen=True)
class Segment:
    """One pipeline call of the chain."""

    index: int
    context_frames: int  # conditioning frames placed at frame 0 (0: text or image only)
    num_frames: int  # frames the pipeline renders, context included (a valid count)
    keep: int  # new frames kept after dropping the context and trimming the last segment


def valid_count_at_least(frames: int, multiple: int) -> int:
    """The smallest `multiple * k + 1` that is ≥ `frames`."""
    return max(0, -(-(frames - 1) // multiple)) * multiple + 1


def valid_count_at_most(frames: int, multiple: int) -> int:
    """The largest `multiple * k + 1` that is ≤ `frames` (frames ≥ 1)."""
    return (frames - 1) // multiple * multiple + 1


def plan_segments(profile: ModelProfile, total_frames: int, available_context: int) -> list[Segment]:
    """Split `total_frames` new frames into pipeline calls no longer than the profile allows.

    `available_context` is how many earlier frames exist to continue from (the parent's tail), 0 for a new video.
    """
    if total_frames < 1:
        raise ValueError(f"total_frames must be at least 1, got {total_frames}")
    multiple, longest = profile.frame_multiple, profile.max_segment_frames
    segments: list[Segment] = []
    remaining, history = total_frames, available_context
    while remaining > 0:
        context = 0
        if history > 0:
            context = valid_count_at_most(min(history, profile.conditioning_frames), multiple)
        # Continuations add a multiple of `multiple` frames after the context; a fresh start any valid count.
        num_frames = min(valid_count_at_least(context + remaining, multiple), longest)
        if context:
            num_frames = max(num_frames, context + multiple)
        keep = min(num_frames - context, remaining)
        segments.append(Segment(len(segments), context, num_frames, keep))
        remaining -= keep
        history += keep
    return segments


def segment_seed(seed: int, index: int) -> int:
    """The first segment uses the spec's seed as is (reproducible with plain diffusers); later ones derive one."""
    if index == 0:
        return seed
    state = np.random.SeedSequence([seed % 2**63, index]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def render_video(
    backend: VideoBackend,
    spec: VideoSpec,
    on_progress: ProgressFraction | None = None,
    on_frames: Callable[[np.ndarray], None] | None = None,
    preview: LatentObserver | None = None,
) -> RenderedVideo:
    """Render `spec` with `backend`, chaining continuations when it is longer than one call allows. `on_frames` gets
    each segment's new frames as soon as they are final (stitched), in order: a read-only view, so a caller can
    encode a long video while its later segments render. `preview` watches each segment's denoising (live
    previews; only passed to backends that take it)."""
    watching = {"preview": preview} if preview is not None else {}
    started = time.perf_counter()
    profile = backend.profile
    _check_spec(spec, profile)
    parent = spec.parent_tail if spec.parent_tail is not None else np.empty((0, spec.height, spec.width, 3), np.uint8)
    segments = plan_segments(profile, spec.total_frames, len(parent))
    # One buffer for parent tail + new frames: no re-concatenation per segment on minute-long videos. A video of one
    # call with nothing before it needs none: that call's own frames are the video (the copy of a 121-frame 768×512
    # clip into a fresh buffer was the H200 run's one-call `stitch_s`, 0.04-0.06 s between its decode and its encode).
    video: np.ndarray | None = None
    if len(segments) > 1 or len(parent):
        video = np.empty((len(parent) + spec.total_frames, spec.height, spec.width, 3), np.uint8)
        video[: len(parent)] = parent
    filled = len(parent)
    timings = {"render": 0.0, "stitch": 0.0}
    track = _SoundJoiner(spec, profile) if spec.sound and profile.has_sound else None
    for segment in segments:
        context = None
        if segment.context_frames:
            assert video is not None  # a continuation follows earlier frames, so the buffer exists
            context = video[filled - segment.context_frames : filled]
        request = RenderRequest(
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            width=spec.width,
            height=spec.height,
            num_frames=segment.num_frames,
            seed=segment_seed(spec.seed, segment.index),
            num_inference_steps=spec.steps,
            guidance_scale=spec.guidance_scale,
            fps=spec.fps,
            image=spec.image if segment.index == 0 and context is None else None,
            video=context,
            source=_source_window(spec.source, filled - segment.context_frames, segment.num_frames),
            strength=spec.strength,
            references=spec.references,
        )
        tick = time.perf_counter()
        on_step = _segment_progress(on_progress, segment.index, len(segments))
        if track is not None:
            frames, sound = backend.render_with_sound(request, on_step=on_step, **watching)
            track.add(sound, segment, spec.fps, before=filled - len(parent))
        else:
            frames = backend.render(request, on_step=on_step, **watching)
        timings["render"] += time.perf_counter() - tick
        tick = time.perf_counter()
        new = frames[segment.context_frames : segment.context_frames + segment.keep]
        if context is not None:
            source, target = colour_stats(frames[: segment.context_frames]), colour_stats(context)
            new = match_colours(new, source, target, device=conversion_device(backend))
        if video is None:  # the only call, nothing before it: its frames are the video, not a copy of them
            video = new
        else:
            video[filled : filled + segment.keep] = new
        filled += segment.keep
        timings["stitch"] += time.perf_counter() - tick
        if on_frames is not None:
            done = video[filled - segment.keep : filled]
            done.flags.writeable = False  # `video` stays writable: the next segments go into it
            on_frames(done)
    if on_progress is not None:
        on_progress(1.0)
    assert video is not None  # plan_segments plans one call at least
    timings["total"] = time.perf_counter() - started
    tail = video[max(0, filled - profile.conditioning_frames) :].copy()
    if track is not None:
        sound = track.whole()
    elif spec.parent_sound is not None:  # silence asked of a part that continues a clip with sound
        sound = _extended_with_silence(spec.parent_sound, spec.total_frames, spec.fps)
    else:
        sound = None
    return RenderedVideo(frames=video[len(parent) :], tail=tail, segments=len(segments), timings=timings, sound=sound)


class _SoundJoiner:
    """The track of a render, segment by segment: the parent's sound (if any), then each segment's sound from its
    first new frame on, crossfaded onto what came before over the end of its context frames."""

    def __init__(self, spec: VideoSpec, profile: ModelProfile) -> None:
        self.rate = profile.audio_sample_rate
        parent = spec.parent_sound
        if parent is not None and parent.rate != self.rate:
            raise ValueError(f"the parent's sound is at {parent.rate} Hz, this model's at {self.rate} Hz")
        self.channels = parent.channels if parent is not None else None
        self.samples = parent.samples if parent is not None else None
        self.opening = 0 if parent is None else _frames_of(parent, spec.fps)

    def add(self, sound: np.ndarray, segment: Segment, fps: int, before: int) -> None:
        """`sound`: the segment's, `before`: the new frames rendered ahead of it."""
        if self.channels is None:
            self.channels = sound.shape[0]
        elif sound.shape[0] > self.channels:  # a mono parent (its silence, an uploaded clip's) under stereo sound
            assert self.samples is not None
            self.channels = sound.shape[0]
            self.samples = as_channels(self.samples, self.channels)
        sound = fit_length(as_channels(sound, self.channels), sample_at(segment.num_frames, fps, self.rate))
        start = sample_at(segment.context_frames, fps, self.rate)  # where the first new frame's sound starts
        # The track ends where the whole video's last frame so far does: counted from frame 0 of the video, not
        # per segment, whose roundings would add up over a chain where a frame is not a whole number of samples.
        end = sample_at(self.opening + before + segment.keep, fps, self.rate)
        new = fit_length(sound[:, start:], end - (0 if self.samples is None else self.samples.shape[1]))
        if self.samples is None:
            self.samples = np.ascontiguousarray(new)
        else:
            self.samples = join(self.samples, sound[:, :start], new, self.rate)

    def whole(self) -> SoundTrack:
        assert self.samples is not None
        return SoundTrack(self.samples, self.rate)


def _extended_with_silence(parent: SoundTrack, frames: int, fps: int) -> SoundTrack:
    """The parent's sound faded out over the crossfade before the seam (a cut to silence clicks), then silence to
    the end of the new frames."""
    end = sample_at(_frames_of(parent, fps) + frames, fps, parent.rate)
    fade_out = silence(parent.channels, parent.rate, round(CROSSFADE_SECONDS * parent.rate)).samples
    quiet = silence(parent.channels, parent.rate, end - len(parent)).samples
    return SoundTrack(join(parent.samples, fade_out, quiet, parent.rate), parent.rate)


def _frames_of(track: SoundTrack, fps: int) -> int:
    """How many frames a track placed by `sample_at` is as long as (a frame is more than a sample)."""
    return round(len(track) * fps / track.rate)


def _source_window(source: np.ndarray | None, start: int, count: int) -> np.ndarray | None:
    """The stretch of an edit's source one call re-renders: `count` frames from `start` (its context, the frames
    already edited, included), the last frame repeated where the call renders past the source's end (trimmed
    after)."""
    if source is None:
        return None
    window = source[start : start + count]
    if len(window) < count:
        window = np.concatenate([window, np.repeat(window[-1:], count - len(window), axis=0)])
    return window


def _segment_progress(on_progress: ProgressFraction | None, index: int, count: int):
    """Map a segment's (step, total) onto the whole chain's 0..1."""

    def on_step(step: int, total: int) -> None:
        if on_progress is not None:
            on_progress((index + step / max(total, 1)) / count)

    return on_step


def _check_spec(spec: VideoSpec, profile: ModelProfile) -> None:
    if spec.width % profile.size_multiple or spec.height % profile.size_multiple:
        raise ValueError(f"width and height must be multiples of {profile.size_multiple}")
    if spec.image is not None and spec.parent_tail is not None:
        raise ValueError("an extension continues its parent; it cannot also start from an image")
    if spec.source is not None:
        if spec.source.shape != (spec.total_frames, spec.height, spec.width, 3):
            raise ValueError(
                f"source must be ({spec.total_frames}, {spec.height}, {spec.width}, 3), got {spec.source.shape}"
            )
        if spec.image is not None or spec.parent_tail is not None:
            raise ValueError("an edit re-renders its source; it neither extends nor starts from an image")
        if not profile.supports_edit:
            raise ValueError(f"{profile.name} cannot edit a video")
    for reference in spec.references:
        if reference.shape != (spec.height, spec.width, 3):
            raise ValueError(f"references must be ({spec.height}, {spec.width}, 3) uint8, got {reference.shape}")
    if spec.image is not None and spec.image.shape != (spec.height, spec.width, 3):
        raise ValueError(f"image must be ({spec.height}, {spec.width}, 3) uint8, got {spec.image.shape}")
    if spec.parent_tail is not None:
        tail = spec.parent_tail
        if tail.ndim != 4 or tail.shape[1:] != (spec.height, spec.width, 3) or len(tail) == 0:
            raise ValueError(f"parent_tail must be (F, {spec.height}, {spec.width}, 3), got {tail.shape}")
    needs_video = spec.parent_tail is not None or spec.total_frames > profile.max_segment_frames
    if needs_video and not profile.supports_video:
        raise ValueError(f"{profile.name} cannot continue a video, so it cannot extend or exceed one segment")
    if spec.image is not None and not profile.supports_image:
        raise ValueError(f"{profile.name} cannot start from an image")
