"""What a claimed job's render conditions on, loaded before the GPU takes it: its reference image, the clip it
extends (a rendered parent's MP4 and lossless tail, or an uploaded clip's frames), the clip it edits, and the
reference frames of the characters it names.

The file reads and decodes run on CPU threads; the worker loads a job's inputs while the job before it renders its
last stretch (claim-ahead), so the GPU does not wait for them.
"""

from __future__ import annotations

import asyncio
import io
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from generator.images import decode_fitted, fit_image, release_freed_memory
from generator.media import EncodeError, audio, reading, tails
from generator.params import RenderPlan
from generator.queue import ClaimedJob, JobQueue
from generator.storage import ArtifactStore


@dataclass
class RenderInputs:
    """What one render conditions on, beside its prompt and plan."""

    image: np.ndarray | None = None
    parent_tail: np.ndarray | None = None  # the last frames of the clip being extended: lossless, or decoded
    # A rendered parent's MP4, read at the start: the extension's MP4 continues its stream, and deleting the parent
    # while the extension renders cannot pull it away.
    parent_video: bytes | None = None
    parent_frames: np.ndarray | None = None  # an uploaded clip, decoded and fitted: its frames are re-encoded
    source: np.ndarray | None = None  # an edit's source clip, every frame, fitted to the render size
    references: tuple[np.ndarray, ...] = ()  # the named characters' reference frames, fitted to the render size
    # The extended clip's whole sound (its lossless track, an uploaded clip's own), or silence of its length when
    # it has none and this part is to have sound; None: neither has any.
    parent_sound: audio.SoundTrack | None = None


async def load_inputs(
    job: ClaimedJob,
    plan: RenderPlan,
    *,
    queue: JobQueue,
    store: ArtifactStore,
    pool: Executor,
    conditioning: int | None,
    sound_rate: int = 0,
) -> RenderInputs:
    """Load what the job conditions on: its reference image, or the clip it extends. `conditioning`: how many of the
    extended clip's last frames a continuation conditions on (the render copies them beside its new ones); None: all
    of them. `sound_rate`: the loaded model's sound rate when this job is to have sound (0: it is silent)."""
    loop = asyncio.get_running_loop()
    own = {artifact.kind: artifact for artifact in await queue.artifacts_of(job.id)}
    inputs = RenderInputs()
    if "reference" in own:
        path = store.resolve(own["reference"].path)
        inputs.image = await loop.run_in_executor(pool, load_image, path, plan.width, plan.height)
    subjects = sorted((kind for kind in own if kind.startswith("subject-")), key=lambda kind: int(kind.split("-")[1]))
    inputs.references = tuple(
        [
            await loop.run_in_executor(pool, load_image, store.resolve(own[kind].path), plan.width, plan.height)
            for kind in subjects
        ]
    )
    if job.kind == "edit":
        inputs.source = await _edit_source(job, plan, own, queue=queue, store=store, pool=pool)
        return inputs
    if job.kind != "extend":
        return inputs
    if "source" in own:  # an uploaded clip: its decoded frames are all we have, and all go into the new MP4
        path = store.resolve(own["source"].path)
        frames = await loop.run_in_executor(pool, load_clip, path, plan.width, plan.height, plan.fps)
        inputs.parent_frames = frames
        inputs.parent_tail = frames[-conditioning:] if conditioning else frames
        if sound_rate:
            inputs.parent_sound = await loop.run_in_executor(pool, clip_sound, path, len(frames), plan.fps, sound_rate)
        return inputs
    if job.parent_id is None:
        raise RuntimeError("an extension without a parent video or an uploaded clip")
    parent = {artifact.kind: artifact for artifact in await queue.artifacts_of(job.parent_id)}
    if "video" not in parent:
        raise RuntimeError(f"the parent video {job.parent_id} has no files any more")
    video_path = store.resolve(parent["video"].path)
    inputs.parent_video = await loop.run_in_executor(pool, video_path.read_bytes)
    if "tail" in parent:
        tail_path = store.resolve(parent["tail"].path)
        inputs.parent_tail = await loop.run_in_executor(pool, tails.load_tail, tail_path)
    else:  # no lossless tail was kept: the MP4's frames are all there is
        inputs.parent_tail = await loop.run_in_executor(
            pool, load_clip, inputs.parent_video, plan.width, plan.height, None, conditioning
        )
    if "audio" in parent:  # kept whatever this part asks: the parent's sound stays in the whole
        inputs.parent_sound = await loop.run_in_executor(pool, audio.load_sound, store.resolve(parent["audio"].path))
    elif sound_rate:
        count = await loop.run_in_executor(pool, reading.frame_count, inputs.parent_video)
        inputs.parent_sound = audio.silence(1, sound_rate, audio.sample_at(count, plan.fps, sound_rate))
    return inputs


async def _edit_source(
    job: ClaimedJob, plan: RenderPlan, own: dict, *, queue: JobQueue, store: ArtifactStore, pool: Executor
) -> np.ndarray:
    """The clip an edit re-renders, `plan.num_frames` frames at the render size: an uploaded clip's decoded frames,
    or a rendered video's MP4 with its last frames taken from its lossless tail (the frames a later extension would
    continue from are then the very ones the source ended on)."""
    loop = asyncio.get_running_loop()
    if "source" in own:
        path = store.resolve(own["source"].path)
        frames = await loop.run_in_executor(pool, load_clip, path, plan.width, plan.height, plan.fps)
        return _exactly(frames, plan.num_frames)
    if job.parent_id is None:
        raise RuntimeError("an edit without a source video or an uploaded clip")
    parent = {artifact.kind: artifact for artifact in await queue.artifacts_of(job.parent_id)}
    if "video" not in parent:
        raise RuntimeError(f"the source video {job.parent_id} has no files any more")
    video = await loop.run_in_executor(pool, store.resolve(parent["video"].path).read_bytes)
    frames = _exactly(await loop.run_in_executor(pool, load_clip, video, plan.width, plan.height), plan.num_frames)
    if "tail" in parent:
        tail = await loop.run_in_executor(pool, tails.load_tail, store.resolve(parent["tail"].path))
        if tail.shape[1:] == frames.shape[1:] and len(tail) <= len(frames):
            frames[len(frames) - len(tail) :] = tail
    return frames


def _exactly(frames: np.ndarray, count: int) -> np.ndarray:
    """`count` frames: the clip cut, or its last frame repeated (a container's count can differ by one)."""
    if len(frames) >= count:
        return np.ascontiguousarray(frames[:count])
    return np.concatenate([frames, np.repeat(frames[-1:], count - len(frames), axis=0)])


def clip_sound(source: Path, frames: int, fps: int, rate: int) -> audio.SoundTrack:
    """An uploaded clip's sound at `rate`, as long as its `frames` at `fps`; silence where it has none."""
    length = audio.sample_at(frames, fps, rate)
    track = audio.read_sound(source, rate=rate)
    if track is None:
        return audio.silence(1, rate, length)
    return audio.SoundTrack(audio.fit_length(track.samples, length), rate)


def load_image(path: Path, width: int, height: int) -> np.ndarray:
    """A job's reference image (kept at the render size; a larger one, kept by an older version, is reduced)."""
    return decode_fitted(path.read_bytes(), width, height, "reference")


def load_clip(
    source: Path | bytes, width: int, height: int, fps: int | None = None, last: int | None = None
) -> np.ndarray:
    """Decode a clip fitted to the render size and, when `fps` is given, resampled to that frame rate; with `last`,
    only its last `last` frames (before resampling).

    Streamed: each frame is fitted as it is decoded, so the clip is never held at its own size (300 frames of an
    uploaded 1080p clip were 1.9 GB as RGB, and twice that once stacked)."""

    kept: deque[np.ndarray] = deque(maxlen=last)
    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            for frame in container.decode(stream):
                # The decoder's scaler takes the frame down to twice the size the fit needs (cheap, from YUV);
                # LANCZOS does the rest as before. A phone's clip stored on its side is turned upright.
                shown = reading.shown_size(frame)
                scale = min(1.0, 2 * max(width / shown[0], height / shown[1]))
                size = (max(width, round(shown[0] * scale)), max(height, round(shown[1] * scale)))
                kept.append(fit_image(reading.upright_image(frame, *size), width, height))
        if not kept:
            raise EncodeError("the clip has no video frames")
        frames = np.stack(kept)
    finally:
        kept.clear()
        release_freed_memory()
    source_fps = float(rate) if rate else 0.0
    if fps is not None and source_fps and abs(source_fps - fps) > 0.01:
        count = max(1, round(len(frames) * fps / source_fps))
        indices = np.minimum((np.arange(count) * source_fps / fps).round().astype(int), len(frames) - 1)
        frames = frames[indices]
    return frames
