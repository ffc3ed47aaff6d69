"""A finished render's files, written into its attempt's own folder: the MP4 (encoded along the render, then
finished, appended to the parent's stream, or encoded again smaller), the thumbnail, the spritesheet and the lossless
tail, and the artifact rows that name them for the queue.

The MP4 is encoded on a CPU thread while the job renders (`encode_along`); after the render the previews and the tail
are written on a second CPU thread beside the MP4's last stretch (`write`). A clip with sound gets its track muxed
in as AAC once the video is written (the video encoded under the cap less the sound's budget), and kept losslessly
beside it for its extensions.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path

import numpy as np

from generator.images import fit_frames
from generator.inputs import RenderInputs
from generator.media import EncodeError, audio, joining, parts, previews, reading, tails, writing
from generator.media.writing import ConvertOn
from generator.params import RenderPlan
from generator.queue import ClaimedJob, NewArtifact
from generator.render import RenderedVideo
from generator.storage import ARTIFACTS, ArtifactStore

NEW_PART = ".new-part.mp4"  # in an attempt's folder: an extension's new frames, encoded while they render
SOUND_TRIES = 3  # muxes of the sound before giving up on the cap


class OutputWriter:
    """Writes each finished render's files on the CPU threads of `cpu_pool`, with x264's `mp4_preset`, the MP4
    encoded along the render cut between `mp4_parts` encoders (media/parts.py)."""

    def __init__(
        self, store: ArtifactStore, cpu_pool: Executor, mp4_preset: str = writing.PRESET, mp4_parts: int = 1
    ) -> None:
        self.store = store
        self.cpu_pool = cpu_pool
        self.mp4_preset = mp4_preset
        self.mp4_parts = mp4_parts

    def encode_along(
        self, job: ClaimedJob, plan: RenderPlan, inputs: RenderInputs, convert_on: ConvertOn
    ) -> writing.EncodeAlong:
        """What is encoded while the job renders: a new video's MP4; an uploaded clip's frames and then the new
        ones; for an extension of a rendered video, the new part alone, which then follows the parent's stream."""
        path = self.path(job, "video")
        if inputs.parent_video is not None:
            path = path.with_name(NEW_PART)
        uploaded = 0 if inputs.parent_frames is None else len(inputs.parent_frames)
        writer = parts.mp4_writer(
            path,
            plan.fps,
            parts=self.mp4_parts,
            total_frames=uploaded + plan.num_frames,
            preset=self.mp4_preset,
            follows=inputs.parent_video,
            convert_on=convert_on,
        )
        along = writing.EncodeAlong(self.cpu_pool, writer)
        if inputs.parent_frames is not None:
            along.add(inputs.parent_frames)
        return along

    async def write(
        self,
        job: ClaimedJob,
        plan: RenderPlan,
        inputs: RenderInputs,
        rendered: RenderedVideo,
        along: writing.EncodeAlong,
        convert_on: ConvertOn,
    ) -> tuple[list[NewArtifact], int]:
        """Into this attempt's own folder: the MP4 under the size cap while the thumbnail, spritesheet and lossless
        tail are written on another CPU thread (one after the other they added about a third to the job's time
        after rendering). With sound, the video is held to the cap less the sound's budget, then the sound is muxed
        in and kept as FLAC. Returns the artifacts and the whole video's frame count."""
        loop = asyncio.get_running_loop()
        sound, bitrate, budget, video_plan = rendered.sound, 0, 0, plan
        if sound is not None:
            bitrate = audio.sound_bitrate(sound.channels, sound.seconds, plan.max_bytes)
            budget = audio.sound_bytes(bitrate, sound.seconds)
            video_plan = replace(plan, max_bytes=max(plan.max_bytes - budget, 1))
        written = await asyncio.gather(
            self._write_video(job, video_plan, inputs, rendered.frames, along, convert_on),
            loop.run_in_executor(self.cpu_pool, self._write_previews_and_tail, job, plan, inputs, rendered),
            return_exceptions=True,  # wait for both, so nothing still writes into the folder once the job has ended
        )
        for result in written:
            if isinstance(result, EncodeError) and sound is not None:  # say what the cap was spent on
                raise EncodeError(
                    f"the video does not fit beside its sound: {budget} of the {plan.max_bytes} bytes asked are kept "
                    f"for {sound.seconds:.1f} s of sound at {bitrate // 1000} kb/s; ask for more bytes, or for no "
                    f"sound ({result})"
                ) from result
            if isinstance(result, BaseException):
                raise result
        (video, total_frames), others = written
        if sound is not None:
            video = await self._add_sound(job, video_plan, inputs, rendered, bitrate, convert_on)
            path = self.path(job, "audio")
            await loop.run_in_executor(self.cpu_pool, audio.save_sound, sound, path)
            others = [*others, self._artifact(job, "audio")]
        return [video, *others], total_frames

    async def _add_sound(
        self,
        job: ClaimedJob,
        video_plan: RenderPlan,
        inputs: RenderInputs,
        rendered: RenderedVideo,
        bitrate: int,
        convert_on: ConvertOn,
    ) -> NewArtifact:
        """Mux the sound into the written MP4. The AAC stream is budgeted, not measured, so where the whole still
        passes the cap the video is encoded again under a cap lowered by the excess, a few times at most."""
        loop = asyncio.get_running_loop()
        path, cap = self.path(job, "video"), video_plan.max_bytes
        sound = rendered.sound
        assert sound is not None
        limit = cap + audio.sound_bytes(bitrate, sound.seconds)  # the job's own cap
        for _ in range(SOUND_TRIES):
            size = await loop.run_in_executor(self.cpu_pool, audio.add_sound, path, sound, bitrate)
            if size <= limit:
                return self._artifact(job, "video")
            cap -= int((size - limit) * 1.2) + 1
            if cap <= 0:
                break
            smaller = replace(video_plan, max_bytes=cap)
            await loop.run_in_executor(
                self.cpu_pool, self._encode_video, job, smaller, inputs, rendered.frames, None, None, convert_on
            )
        raise EncodeError(f"the video and its sound do not fit under {limit} bytes")

    async def _write_video(
        self,
        job: ClaimedJob,
        plan: RenderPlan,
        inputs: RenderInputs,
        new: np.ndarray,
        along: writing.EncodeAlong,
        convert_on: ConvertOn,
    ) -> tuple[NewArtifact, int]:
        """The MP4 encoded along the render, finished (an extension's new part: appended to the parent's stream);
        when it is over the byte cap, the MP4 encoded again smaller on a CPU thread."""
        loop = asyncio.get_running_loop()
        extending = inputs.parent_video is not None
        try:
            await asyncio.wrap_future(along.encoded)
            # A part is held to the cap together with its parent, by `encode_extension`.
            encoded = await loop.run_in_executor(
                self.cpu_pool, along.writer.finish, sys.maxsize if extending else plan.max_bytes
            )
            if extending:
                return await loop.run_in_executor(
                    self.cpu_pool, self._encode_video, job, plan, inputs, new, None, along.writer.path, convert_on
                )
        finally:
            await loop.run_in_executor(self.cpu_pool, along.abort)  # what a failure left
            if extending:
                along.writer.path.unlink(missing_ok=True)  # the part, appended or not
        if encoded is not None:
            return self._artifact(job, "video"), encoded.frames
        # Over the cap: the smaller attempts need every frame again, but not the CRF encode just made.
        crf_size = along.writer.size_bytes
        return await loop.run_in_executor(
            self.cpu_pool, self._encode_video, job, plan, inputs, new, crf_size, None, convert_on
        )

    def _encode_video(
        self,
        job: ClaimedJob,
        plan: RenderPlan,
        inputs: RenderInputs,
        new: np.ndarray,
        crf_size: int | None,
        part: Path | None,
        convert_on: ConvertOn,
    ) -> tuple[NewArtifact, int]:
        """Runs on a CPU thread. An extension of a rendered video continues the parent's MP4 as it is when it can
        (no generation loss, and only the new frames, or their `part` encoded already); otherwise the whole video
        is encoded."""
        path = self.path(job, "video")
        if inputs.parent_video is not None:
            encoded = joining.encode_extension(
                inputs.parent_video, new, plan.fps, path, plan.max_bytes, preset=self.mp4_preset, part=part
            )
            return self._artifact(job, "video"), encoded.frames
        frames = new if inputs.parent_frames is None else np.concatenate([inputs.parent_frames, new])
        writing.encode_mp4(
            frames,
            plan.fps,
            path,
            plan.max_bytes,
            preset=self.mp4_preset,
            crf_size=crf_size,
            convert_on=convert_on,
        )
        return self._artifact(job, "video"), len(frames)

    def _write_previews_and_tail(
        self, job: ClaimedJob, plan: RenderPlan, inputs: RenderInputs, rendered: RenderedVideo
    ) -> list[NewArtifact]:
        """Runs on a CPU thread."""
        shown = _frames_shown(plan, inputs, rendered.frames)
        previews.write_thumbnail(shown[0], self.path(job, "thumbnail"))
        previews.write_spritesheet(shown, self.path(job, "spritesheet"), count=len(shown))
        tails.save_tail(rendered.tail, self.path(job, "tail"), plan.fps)
        return [self._artifact(job, kind) for kind in ("thumbnail", "spritesheet", "tail")]

    def path(self, job: ClaimedJob, kind: str) -> Path:
        """Where this attempt's file of `kind` goes."""
        return self.store.path_for(job.id, kind, job.attempts)

    def _artifact(self, job: ClaimedJob, kind: str) -> NewArtifact:
        return NewArtifact(
            kind=kind,
            path=self.store.relative_path(job.id, kind, job.attempts),
            content_type=ARTIFACTS[kind][1],
            bytes=self.path(job, kind).stat().st_size,
        )


def _frames_shown(plan: RenderPlan, inputs: RenderInputs, new: np.ndarray) -> np.ndarray:
    """The frames a spritesheet of the whole video shows, in order; the first is the thumbnail. An extension's
    include its parent's, of which (for a rendered parent) only these few are decoded."""
    opening = 0
    if inputs.parent_video is not None:
        opening = reading.frame_count(inputs.parent_video)
    elif inputs.parent_frames is not None:
        opening = len(inputs.parent_frames)
    indices = previews.spritesheet_indices(opening + len(new))
    before = [index for index in indices if index < opening]
    if not before:
        parent = new[:0]
    elif inputs.parent_video is not None:
        decoded = reading.frames_at(inputs.parent_video, before)
        # A parent squeezed under the byte cap at a smaller size is fitted back, as for the frames it conditions on.
        parent = fit_frames(np.stack([decoded[index] for index in before]), plan.width, plan.height)
    else:
        assert inputs.parent_frames is not None
        parent = inputs.parent_frames[before]
    return np.concatenate([parent, new[[index - opening for index in indices if index >= opening]]])
