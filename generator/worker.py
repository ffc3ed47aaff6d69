"""GPU workers: each owns one resident pipeline on its own thread and renders the jobs it claims.

The event loop only coordinates: claiming, lease renewal and progress go through the database, while the
pipeline runs on the worker's GPU thread and MP4 encoding on a CPU thread. A blocked loop would stall the
API (and, in-process, the bot's Discord heartbeats). Encoding of one job overlaps rendering of the next,
and the next job is claimed and its inputs loaded while the current one renders its last stretch, so the GPU does
not wait for the CPU or the database when the queue is full.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from generator.images import decode_fitted, fit_frames, fit_image, release_freed_memory
from generator.media import EncodeError, joining, previews, reading, tails, writing
from generator.params import RenderPlan, seconds_text
from generator.pipelines.base import RenderCancelled, VideoBackend
from generator.queue import ClaimedJob, JobQueue, Lease, NewArtifact
from generator.render import RenderedVideo, render_video
from generator.storage import ARTIFACTS, ArtifactStore
from generator.yuv import conversion_device

log = logging.getLogger(__name__)

RENDER_SHARE = 90  # progress percent given to rendering; the rest is encoding and storing
# The next job is claimed when the current render expects to end within this many seconds: long enough to load
# its inputs (an extension's parent tail, a reference image) before the GPU is free, short enough that it holds
# its lease only briefly while another host might have been idle.
CLAIM_AHEAD_SECONDS = 1.0
NEW_PART = ".new-part.mp4"  # in an attempt's folder: an extension's new frames, encoded while they render


@dataclass
class WorkerState:
    """What a worker is doing, for /healthz and benchmarks."""

    name: str
    state: str = "starting"  # starting | loading | idle | rendering | stopped | failed
    job_id: str | None = None
    next_job_id: str | None = None  # claimed ahead while job_id renders its last stretch
    error: str | None = None
    jobs_done: int = 0
    gpu_busy_seconds: float = 0.0
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class _JobControl:
    """Shared between the GPU thread and the loop for one job."""

    fraction: float = 0.0
    stage: str = "render"
    cancel: threading.Event = field(default_factory=threading.Event)
    shutting_down: bool = False


@dataclass
class _Inputs:
    image: np.ndarray | None = None
    parent_tail: np.ndarray | None = None  # the last frames of the clip being extended: lossless, or decoded
    # A rendered parent's MP4, read at the start: the extension's MP4 continues its stream, and deleting the parent
    # while the extension renders cannot pull it away.
    parent_video: bytes | None = None
    parent_frames: np.ndarray | None = None  # an uploaded clip, decoded and fitted: its frames are re-encoded


@dataclass
class _StartedJob:
    """A claimed job whose lease is being renewed, with its inputs loaded or the error that loading raised."""

    job: ClaimedJob
    control: _JobControl
    heartbeat: asyncio.Task[None]
    timings: dict[str, float]
    plan: RenderPlan | None = None
    inputs: _Inputs | None = None
    error: Exception | None = None


def is_out_of_memory(error: BaseException) -> bool:
    try:
        import torch

        if isinstance(error, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return "out of memory" in str(error).lower()


class Worker:
    """Claims jobs from the queue and renders them with one resident pipeline."""

    def __init__(
        self,
        *,
        name: str,
        queue: JobQueue,
        store: ArtifactStore,
        load_backend: Callable[[], VideoBackend],
        cpu_pool: ThreadPoolExecutor,
        lease_seconds: float,
        poll_interval: float,
        mp4_preset: str = writing.PRESET,
        encodes_in_flight: int = 2,
    ) -> None:
        self.name = name
        self.mp4_preset = mp4_preset
        self.queue = queue
        self.store = store
        self.load_backend = load_backend
        self.cpu_pool = cpu_pool
        self.gpu_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hanul-gpu-{name}")
        self.heartbeat_interval = min(lease_seconds / 3, 1.0)
        self.poll_interval = poll_interval
        self.status = WorkerState(name=name)
        self.backend: VideoBackend | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        # Up to this many finished renders encoding while the next job renders: the GPU waits only when all are busy.
        self._finishing = asyncio.Semaphore(encodes_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._controls: dict[Lease, _JobControl] = {}  # one per attempt: a worker may take its own job back
        self._running: asyncio.Task[None] | None = None  # the task in `run`

    def wake(self) -> None:
        """A job was enqueued: look at the queue now instead of at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        self._running = asyncio.current_task()
        loop = asyncio.get_running_loop()
        self.status.state = "loading"
        try:
            self.backend = await loop.run_in_executor(self.gpu_pool, self.load_backend)
        except Exception as error:
            self.status.state, self.status.error = "failed", f"model failed to load: {error}"
            log.exception("worker %s: the model failed to load; this worker takes no jobs", self.name)
            return
        log.info("worker %s ready (%s)", self.name, self.backend.profile.name)
        self.status.state = "idle"
        upcoming: _StartedJob | None = None  # claimed while the previous job rendered
        while not self._stopping.is_set():
            if upcoming is None:
                upcoming = await self._claim_and_start()
            if upcoming is None:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                except TimeoutError:
                    pass
                continue
            upcoming = await self._process(upcoming)
        if upcoming is not None:  # stopping: the job claimed ahead goes back to the queue unrendered
            await self._stop_job(upcoming.job, upcoming.control)
            await self._forget(upcoming)
        self.status.state = "stopped"

    async def stop(self) -> None:
        """Stop claiming; give a job that is still rendering (and one claimed ahead) back to the queue; let encodes
        finish."""
        self._stopping.set()
        self._wake.set()
        for control in self._controls.values():
            control.shutting_down = True
            control.cancel.set()
        if self._running is not None and self._running is not asyncio.current_task():
            # The loop hands its jobs back itself (a render stops at its next step); waiting for it here keeps the
            # caller from cancelling it half-way through.
            await asyncio.wait([self._running])
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.gpu_pool.shutdown(wait=True, cancel_futures=True)

    # --- one job ---------------------------------------------------------------------------------

    async def _claim_and_start(self) -> _StartedJob | None:
        try:
            job = await self.queue.claim(self.name)
        except Exception:
            log.exception("worker %s: claiming failed; retrying", self.name)
            return None
        return None if job is None else await self._start(job)

    async def _start(self, job: ClaimedJob) -> _StartedJob:
        """Keep the job's lease from now on and load its inputs. Errors are kept for `_process` to fail the job
        with, so a job claimed ahead fails in its turn, not while another renders."""
        control = _JobControl()
        self._controls[job.lease] = control
        if self._stopping.is_set():
            control.shutting_down = True
            control.cancel.set()
        started = _StartedJob(
            job=job,
            control=control,
            heartbeat=asyncio.create_task(self._keep_lease(job, control)),
            timings={"queue_wait_s": max(0.0, time.time() - job.created_at_ts)},
        )
        try:
            tick = time.perf_counter()
            started.plan = RenderPlan.from_params(job.params)
            started.inputs = await self._prepare(job, started.plan)
            started.timings["prepare_s"] = time.perf_counter() - tick
        except Exception as error:
            started.error = error
        except BaseException:  # cancelled: nothing may keep renewing the lease
            await self._forget(started)
            raise
        return started

    async def _forget(self, started: _StartedJob) -> None:
        self._controls.pop(started.job.lease, None)
        await _stopped(started.heartbeat)

    async def _process(self, started: _StartedJob) -> _StartedJob | None:
        """Render one started job and hand it to an encode slot. Returns the next job if it was claimed ahead,
        while this one rendered its last stretch."""
        loop = asyncio.get_running_loop()
        job, control, timings = started.job, started.control, started.timings
        self.status.state, self.status.job_id = "rendering", job.id
        log.info("worker %s: rendering %s (attempt %d)", self.name, job.id, job.attempts)
        near_end = asyncio.Event()
        claim_ahead = asyncio.create_task(self._claim_ahead(near_end))
        finishing = False
        along: writing.EncodeAlong | None = None
        try:
            if started.error is not None:
                raise started.error
            plan, inputs = started.plan, started.inputs
            assert plan is not None and inputs is not None
            along = self._encode_along(job, plan, inputs)
            tick = time.perf_counter()
            rendered = await loop.run_in_executor(
                self.gpu_pool,
                self._render,
                job,
                plan,
                inputs,
                control,
                lambda: loop.call_soon_threadsafe(near_end.set),
                along.add,
            )
            along.end()
            timings["render_s"] = time.perf_counter() - tick
            timings.update({f"render_{k}": v for k, v in rendered.timings.items()})
            self.status.gpu_busy_seconds += timings["render_s"]
            await self._finishing.acquire()
            finishing = True
            task = asyncio.create_task(
                self._finish(job, plan, inputs, rendered, along, control, started.heartbeat, timings)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        except Exception as error:
            if along is not None:  # first stop its thread (nothing may write into the folder after), then drop it
                await loop.run_in_executor(self.cpu_pool, along.abort)
                await loop.run_in_executor(self.cpu_pool, self.store.delete_attempt, job.id, job.attempts)
            if isinstance(error, RenderCancelled):
                await self._stop_job(job, control)
            else:
                await self._fail(job, error)
        except BaseException:  # this task was cancelled: claim nothing more
            claim_ahead.cancel()
            if along is not None:
                along.end()
            raise
        finally:
            self.status.state, self.status.job_id = "idle", None
            if not finishing:
                await self._forget(started)
            if not near_end.is_set():  # ended before its last stretch (failed, cancelled): nothing was claimed
                claim_ahead.cancel()
        upcoming = await asyncio.gather(claim_ahead, return_exceptions=True)
        self.status.next_job_id = None
        return upcoming[0] if isinstance(upcoming[0], _StartedJob) else None

    async def _claim_ahead(self, near_end: asyncio.Event) -> _StartedJob | None:
        """Once the render is in its last stretch, claim the next job and load its inputs, unless this worker is
        stopping or every encode slot is busy (then the finished render waits for a slot, and the next job would
        hold its lease waiting too)."""
        await near_end.wait()
        if self._stopping.is_set() or self._finishing.locked():
            return None
        upcoming = await self._claim_and_start()
        if upcoming is not None:
            self.status.next_job_id = upcoming.job.id
            log.info("worker %s: claimed %s ahead (attempt %d)", self.name, upcoming.job.id, upcoming.job.attempts)
        return upcoming

    async def _prepare(self, job: ClaimedJob, plan: RenderPlan) -> _Inputs:
        """Load what the job conditions on: its reference image, or the clip it extends."""
        loop = asyncio.get_running_loop()
        own = {artifact.kind: artifact for artifact in await self.queue.artifacts_of(job.id)}
        inputs = _Inputs()
        if "reference" in own:
            path = self.store.resolve(own["reference"].path)
            inputs.image = await loop.run_in_executor(self.cpu_pool, _load_image, path, plan.width, plan.height)
        if job.kind != "extend":
            return inputs
        # What a continuation conditions on: the last frames only (the render copies them beside its new ones).
        conditioning = self.backend.profile.conditioning_frames if self.backend is not None else None
        if "source" in own:  # an uploaded clip: its decoded frames are all we have, and all go into the new MP4
            path = self.store.resolve(own["source"].path)
            frames = await loop.run_in_executor(self.cpu_pool, _load_clip, path, plan.width, plan.height, plan.fps)
            inputs.parent_frames = frames
            inputs.parent_tail = frames[-conditioning:] if conditioning else frames
            return inputs
        if job.parent_id is None:
            raise RuntimeError("an extension without a parent video or an uploaded clip")
        parent = {artifact.kind: artifact for artifact in await self.queue.artifacts_of(job.parent_id)}
        if "video" not in parent:
            raise RuntimeError(f"the parent video {job.parent_id} has no files any more")
        video_path = self.store.resolve(parent["video"].path)
        inputs.parent_video = await loop.run_in_executor(self.cpu_pool, video_path.read_bytes)
        if "tail" in parent:
            tail_path = self.store.resolve(parent["tail"].path)
            inputs.parent_tail = await loop.run_in_executor(self.cpu_pool, tails.load_tail, tail_path)
        else:  # no lossless tail was kept: the MP4's frames are all there is
            inputs.parent_tail = await loop.run_in_executor(
                self.cpu_pool, _load_clip, inputs.parent_video, plan.width, plan.height, None, conditioning
            )
        return inputs

    def _encode_along(self, job: ClaimedJob, plan: RenderPlan, inputs: _Inputs) -> writing.EncodeAlong:
        """What is encoded while the job renders: a new video's MP4; an uploaded clip's frames and then the new
        ones; for an extension of a rendered video, the new part alone, which then follows the parent's stream."""
        path = self._output(job, "video")
        if inputs.parent_video is not None:
            path = path.with_name(NEW_PART)
        writer = writing.Mp4Writer(
            path,
            plan.fps,
            preset=self.mp4_preset,
            follows=inputs.parent_video,
            convert_on=conversion_device(self.backend),
        )
        along = writing.EncodeAlong(self.cpu_pool, writer)
        if inputs.parent_frames is not None:
            along.add(inputs.parent_frames)
        return along

    def _render(
        self,
        job: ClaimedJob,
        plan: RenderPlan,
        inputs: _Inputs,
        control: _JobControl,
        on_last_stretch: Callable[[], None],
        on_frames: Callable[[np.ndarray], None],
    ) -> RenderedVideo:
        """Runs on the GPU thread. Calls `on_last_stretch` once, when the steps so far say the render ends within
        CLAIM_AHEAD_SECONDS (or at its end), and `on_frames` with each segment's finished frames."""
        assert self.backend is not None
        spec = plan.spec(job.prompt, job.negative_prompt, job.seed, inputs.image, inputs.parent_tail)
        started = time.perf_counter()
        announced = False

        def on_progress(fraction: float) -> None:
            nonlocal announced
            control.fraction = fraction
            if control.cancel.is_set():
                raise RenderCancelled(job.id)
            if not announced and fraction > 0:
                remaining = (time.perf_counter() - started) * (1 - fraction) / fraction
                if remaining <= CLAIM_AHEAD_SECONDS:
                    announced = True
                    on_last_stretch()

        on_progress(0.0)
        return render_video(self.backend, spec, on_progress, on_frames)

    async def _finish(
        self,
        job: ClaimedJob,
        plan: RenderPlan,
        inputs: _Inputs,
        rendered: RenderedVideo,
        along: writing.EncodeAlong,
        control: _JobControl,
        heartbeat: asyncio.Task[None],
        timings: dict[str, float],
    ) -> None:
        """Encode and store the result (CPU threads), then mark the job completed."""
        loop = asyncio.get_running_loop()
        control.stage, control.fraction = "encode", 1.0
        try:
            started = time.perf_counter()
            artifacts, total_frames = await self._write_files(job, plan, inputs, rendered, along)
            timings["encode_s"] = time.perf_counter() - started
            timings["total_s"] = time.time() - job.created_at_ts
            done = await self.queue.complete(
                job.lease,
                artifacts=artifacts,
                seconds=seconds_text(total_frames, plan.fps),
                timings={k: round(v, 4) for k, v in timings.items()},
            )
            if done:  # only the attempt that completed the job may clear out the others
                await loop.run_in_executor(self.cpu_pool, self.store.remove_other_attempts, job.id, job.attempts)
                self.status.jobs_done += 1
                log.info("worker %s: %s completed in %.2f s", self.name, job.id, timings["total_s"])
            else:
                await self._stop_job(job, control)
        except Exception as error:
            await self._fail(job, error)
        finally:
            self._controls.pop(job.lease, None)
            self._finishing.release()
            await _stopped(heartbeat)

    async def _write_files(
        self, job: ClaimedJob, plan: RenderPlan, inputs: _Inputs, rendered: RenderedVideo, along: writing.EncodeAlong
    ) -> tuple[list[NewArtifact], int]:
        """Into this attempt's own folder: the MP4 under the size cap while the thumbnail, spritesheet and lossless
        tail are written on another CPU thread (one after the other they added about a third to the job's time
        after rendering). Returns the artifacts and the whole video's frame count."""
        loop = asyncio.get_running_loop()
        written = await asyncio.gather(
            self._write_video(job, plan, inputs, rendered.frames, along),
            loop.run_in_executor(self.cpu_pool, self._write_previews_and_tail, job, plan, inputs, rendered),
            return_exceptions=True,  # wait for both, so nothing still writes into the folder once the job has ended
        )
        for result in written:
            if isinstance(result, BaseException):
                raise result
        (video, total_frames), others = written
        return [video, *others], total_frames

    async def _write_video(
        self, job: ClaimedJob, plan: RenderPlan, inputs: _Inputs, new: np.ndarray, along: writing.EncodeAlong
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
                    self.cpu_pool, self._encode_video, job, plan, inputs, new, None, along.writer.path
                )
        finally:
            await loop.run_in_executor(self.cpu_pool, along.abort)  # what a failure left
            if extending:
                along.writer.path.unlink(missing_ok=True)  # the part, appended or not
        if encoded is not None:
            return self._artifact(job, "video"), encoded.frames
        # Over the cap: the smaller attempts need every frame again, but not the CRF encode just made.
        crf_size = along.writer.size_bytes
        return await loop.run_in_executor(self.cpu_pool, self._encode_video, job, plan, inputs, new, crf_size, None)

    def _encode_video(
        self,
        job: ClaimedJob,
        plan: RenderPlan,
        inputs: _Inputs,
        new: np.ndarray,
        crf_size: int | None,
        part: Path | None,
    ) -> tuple[NewArtifact, int]:
        """Runs on a CPU thread. An extension of a rendered video continues the parent's MP4 as it is when it can
        (no generation loss, and only the new frames, or their `part` encoded already); otherwise the whole video
        is encoded."""
        path = self._output(job, "video")
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
            convert_on=conversion_device(self.backend),
        )
        return self._artifact(job, "video"), len(frames)

    def _write_previews_and_tail(
        self, job: ClaimedJob, plan: RenderPlan, inputs: _Inputs, rendered: RenderedVideo
    ) -> list[NewArtifact]:
        """Runs on a CPU thread."""
        shown = _frames_shown(plan, inputs, rendered.frames)
        previews.write_thumbnail(shown[0], self._output(job, "thumbnail"))
        previews.write_spritesheet(shown, self._output(job, "spritesheet"), count=len(shown))
        tails.save_tail(rendered.tail, self._output(job, "tail"), plan.fps)
        return [self._artifact(job, kind) for kind in ("thumbnail", "spritesheet", "tail")]

    def _output(self, job: ClaimedJob, kind: str) -> Path:
        return self.store.path_for(job.id, kind, job.attempts)

    def _artifact(self, job: ClaimedJob, kind: str) -> NewArtifact:
        return NewArtifact(
            kind=kind,
            path=self.store.relative_path(job.id, kind, job.attempts),
            content_type=ARTIFACTS[kind][1],
            bytes=self._output(job, kind).stat().st_size,
        )

    async def _keep_lease(self, job: ClaimedJob, control: _JobControl) -> None:
        """Renew the lease and publish progress until the job ends; flag cancellation for the GPU thread."""
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if control.stage == "render":
                progress = int(control.fraction * RENDER_SHARE)
            else:
                progress = RENDER_SHARE + 5
            try:
                beat = await self.queue.heartbeat(job.lease, progress)
            except Exception:
                log.exception("worker %s: lease renewal for %s failed", self.name, job.id)
                continue
            if beat.cancel_requested or not beat.owned:
                control.cancel.set()
                if not beat.owned:
                    return

    async def _stop_job(self, job: ClaimedJob, control: _JobControl) -> None:
        if control.shutting_down:
            await self.queue.release(job.lease)
            log.info("worker %s: gave %s back to the queue (shutting down)", self.name, job.id)
            return
        loop = asyncio.get_running_loop()
        if await self.queue.mark_cancelled(job.lease):
            log.info("worker %s: %s cancelled", self.name, job.id)
            await loop.run_in_executor(self.cpu_pool, self.store.delete_job, job.id)
        else:  # the lease went to another attempt: only this attempt's own files are ours to remove
            log.warning(
                "worker %s: lost the lease of %s (attempt %d); dropping its files", self.name, job.id, job.attempts
            )
            await loop.run_in_executor(self.cpu_pool, self.store.delete_attempt, job.id, job.attempts)

    async def _fail(self, job: ClaimedJob, error: BaseException) -> None:
        if is_out_of_memory(error):
            code, message = "out_of_memory", "The GPU ran out of memory for this video; try a shorter or smaller one."
            _free_gpu_memory()
            log.error("worker %s: %s ran out of GPU memory", self.name, job.id)
        else:
            code, message = "render_failed", f"Rendering failed: {type(error).__name__}: {error}"
            log.error("worker %s: %s failed", self.name, job.id, exc_info=error)
        await self.queue.fail(job.lease, code, message)


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has ended: a lease renewal may be mid-query, and must not outlive the
    worker (the service closes the database right after)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _free_gpu_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort
        log.debug("could not empty the CUDA cache", exc_info=True)


def _frames_shown(plan: RenderPlan, inputs: _Inputs, new: np.ndarray) -> np.ndarray:
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


def _load_image(path: Path, width: int, height: int) -> np.ndarray:
    """A job's reference image (kept at the render size; a larger one, kept by an older version, is reduced)."""
    return decode_fitted(path.read_bytes(), width, height, "reference")


def _load_clip(
    source: Path | bytes, width: int, height: int, fps: int | None = None, last: int | None = None
) -> np.ndarray:
    """Decode a clip fitted to the render size and, when `fps` is given, resampled to that frame rate; with `last`,
    only its last `last` frames (before resampling).

    Streamed: each frame is fitted as it is decoded, so the clip is never held at its own size (300 frames of an
    uploaded 1080p clip were 1.9 GB as RGB, and twice that once stacked)."""
    import av

    kept: deque[np.ndarray] = deque(maxlen=last)
    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            for frame in container.decode(stream):
                # The decoder's scaler takes the frame down to twice the size the fit needs (cheap, from YUV);
                # LANCZOS does the rest as before.
                scale = min(1.0, 2 * max(width / frame.width, height / frame.height))
                size = (max(width, round(frame.width * scale)), max(height, round(frame.height * scale)))
                picture = frame.to_image(width=size[0], height=size[1], interpolation="AREA")
                kept.append(fit_image(picture, width, height))
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
