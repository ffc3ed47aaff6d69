"""GPU workers: each owns one resident pipeline on its own thread and renders the jobs it claims.

The event loop only coordinates: claiming, lease renewal and progress go through the database, while the
pipeline runs on the worker's GPU thread and MP4 encoding on a CPU thread. A blocked loop would stall the
API (and, in-process, the bot's Discord heartbeats). Encoding of one job overlaps rendering of the next,
and the next job is claimed and its inputs loaded while the current one renders its last stretch, so the GPU does
not wait for the CPU or the database when the queue is full.

This module schedules; what a job conditions on is loaded by `generator.inputs`, and a finished render's files are
written by `generator.outputs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from generator import models
from generator.inputs import RenderInputs, load_inputs
from generator.media import writing
from generator.metrics import GeneratorMetrics
from generator.outputs import OutputWriter
from generator.params import RenderPlan, seconds_text
from generator.pipelines.base import LatentObserver, RenderCancelled, VideoBackend, takes_previews
from generator.pipelines.memory import free_gpu_memory, is_out_of_memory
from generator.previewing import LivePreviews
from generator.queue import ClaimedJob, EndedJob, JobQueue, Lease
from generator.render import RenderedVideo, render_video
from generator.storage import ArtifactStore
from generator.yuv import conversion_device

log = logging.getLogger(__name__)
T = TypeVar("T")

RENDER_SHARE = 90  # progress percent given to rendering; the rest is encoding and storing
# The next job is claimed when the current render expects to end within this many seconds: long enough to load
# its inputs (an extension's parent tail, a reference image) before the GPU is free, short enough that it holds
# its lease only briefly while another host might have been idle.
CLAIM_AHEAD_SECONDS = 1.0
# How long a worker keeps trying to record the end of an attempt (completed, failed, cancelled, given back) while the
# database cannot be reached or written (restarting, locked by another writer): a finished render is not thrown away
# for a moment's outage, and a job is not left in_progress until its lease runs out. Every end is guarded by the lease,
# so a late one changes nothing once another attempt holds the job.
END_RETRY_SECONDS = 120.0
CLAIM_RETRY_MAX_SECONDS = 10.0  # the longest wait between claims while claiming fails (the database is away)


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
class _AttemptControl:
    """Shared between the GPU thread and the loop for one attempt at a claimed job (one lease)."""

    fraction: float = 0.0
    stage: str = "render"
    cancel: threading.Event = field(default_factory=threading.Event)
    shutting_down: bool = False


@dataclass
class _HeldClaim:
    """A claimed job this worker holds: its lease renewed, its inputs loaded or the error that loading raised."""

    job: ClaimedJob
    control: _AttemptControl
    heartbeat: asyncio.Task[None]
    timings: dict[str, float]
    plan: RenderPlan | None = None
    inputs: RenderInputs | None = None
    error: Exception | None = None
    ahead: bool = False  # claimed while the previous job rendered: waits for its turn (`_process` begins it)


class Worker:
    """Claims jobs from the queue and renders them with one resident pipeline.

    About 300 lines, kept whole: claiming, claim-ahead, lease renewal, the GPU hand-over and the end of an attempt
    (completed, failed, cancelled, given back) share one set of attempt controls and encode slots, and read best
    in the order a job goes through them. Inputs and outputs live in `generator.inputs` and `generator.outputs`.
    """

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
        mp4_parts: int = 1,
        encodes_in_flight: int = 2,
        previews: LivePreviews | None = None,
        metrics: GeneratorMetrics | None = None,
    ) -> None:
        self.name = name
        self.queue = queue
        self.store = store
        self.load_backend = load_backend
        self.cpu_pool = cpu_pool
        self.outputs = OutputWriter(store, cpu_pool, mp4_preset, mp4_parts)
        self.previews = previews  # None: no live previews
        self.metrics = metrics or GeneratorMetrics()
        self.gpu_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hanul-gpu-{name}")
        self.heartbeat_interval = min(lease_seconds / 3, 1.0)
        self.poll_interval = poll_interval
        self.status = WorkerState(name=name)
        self.backend: VideoBackend | None = None
        self._stopping = asyncio.Event()
        self._claim_failures = 0  # in a row: the database unavailable (restarting, unreachable)
        self._wake = asyncio.Event()
        # Up to this many finished renders encoding while the next job renders: the GPU waits only when all are busy.
        self._finishing = asyncio.Semaphore(encodes_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._controls: dict[Lease, _AttemptControl] = {}  # one per attempt: a worker may take its own job back
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
        upcoming: _HeldClaim | None = None  # claimed while the previous job rendered
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
            try:
                await self._stop_job(upcoming.job, upcoming.control)
            finally:
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

    async def _claim_and_start(self, ahead: bool = False) -> _HeldClaim | None:
        try:
            job = await self.queue.claim(self.name, on_ended=self._claim_ended)
        except Exception as error:
            self._claim_failures += 1
            if self._claim_failures == 1:
                log.exception("worker %s: claiming failed; retrying", self.name)
            if ahead:  # the render goes on; its end claims again
                return None
            # Not once per poll interval for as long as the database is away: less and less often, a line each time.
            delay = min(CLAIM_RETRY_MAX_SECONDS, self.poll_interval * 2 ** min(self._claim_failures, 10))
            if self._claim_failures > 1:
                log.warning(
                    "worker %s: claiming failed %d times in a row (%s: %s); next try in %.1f s",
                    self.name,
                    self._claim_failures,
                    type(error).__name__,
                    str(error)[:200],
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            return None
        if self._claim_failures:
            log.info("worker %s: claiming works again after %d failures", self.name, self._claim_failures)
            self._claim_failures = 0
        return None if job is None else await self._start(job, ahead)

    def _claim_ended(self, ended: EndedJob) -> None:
        """A job the claim ended instead of taking it over: cancelled while its worker was gone, or failed with
        `worker_lost` (its workers were lost too many times). Counted like the jobs a render ends, and its files
        removed as those are: a cancelled job's folder, a failed job's attempts (its last live preview stays)."""
        self.metrics.job_ended(ended.status, ended.error_code)
        task = asyncio.create_task(self._remove_files_of(ended))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _remove_files_of(self, ended: EndedJob) -> None:
        def remove() -> None:
            if ended.status == "cancelled":
                self.store.delete_job(ended.id)
            else:
                for attempt in range(1, ended.attempts + 1):
                    self.store.delete_attempt(ended.id, attempt)

        await asyncio.get_running_loop().run_in_executor(self.cpu_pool, remove)

    async def _start(self, job: ClaimedJob, ahead: bool = False) -> _HeldClaim:
        """Keep the job's lease from now on and load its inputs. Errors are kept for `_process` to fail the job
        with, so a job claimed ahead fails in its turn, not while another renders."""
        control = _AttemptControl()
        self._controls[job.lease] = control
        if self._stopping.is_set():
            control.shutting_down = True
            control.cancel.set()
        started = _HeldClaim(
            job=job,
            control=control,
            heartbeat=asyncio.create_task(self._keep_lease(job, control)),
            timings={"queue_wait_s": max(0.0, time.time() - job.created_at_ts)},
            ahead=ahead,
        )
        try:
            tick = time.perf_counter()
            started.plan = RenderPlan.from_params(job.params)
            profile = self.backend.profile if self.backend is not None else None
            conditioning = profile.conditioning_frames if profile is not None else None
            sound_rate = profile.audio_sample_rate if profile is not None and started.plan.sound else 0
            started.inputs = await load_inputs(
                job,
                started.plan,
                queue=self.queue,
                store=self.store,
                pool=self.cpu_pool,
                conditioning=conditioning,
                sound_rate=sound_rate,
            )
            started.timings["prepare_s"] = time.perf_counter() - tick
        except Exception as error:
            started.error = error
        except BaseException:  # cancelled: nothing may keep renewing the lease
            await self._forget(started)
            raise
        if ahead and started.error is None:  # loaded: it only waits now, and a crash until its turn is not its own
            try:
                await self.queue.wait_for_turn(job.lease)
            except Exception:
                log.warning("worker %s: could not note that %s waits for its turn", self.name, job.id, exc_info=True)
        return started

    async def _forget(self, started: _HeldClaim) -> None:
        self._controls.pop(started.job.lease, None)
        await _stopped(started.heartbeat)

    async def _process(self, started: _HeldClaim) -> _HeldClaim | None:
        """Render one started job and hand it to an encode slot. Returns the next job if it was claimed ahead,
        while this one rendered its last stretch."""
        loop = asyncio.get_running_loop()
        job, control, timings = started.job, started.control, started.timings
        self.status.state, self.status.job_id = "rendering", job.id
        log.info("worker %s: rendering %s (attempt %d)", self.name, job.id, job.attempts)
        if started.ahead:  # its own turn: from here a lost worker counts against it
            try:
                await self.queue.begin_turn(job.lease)
            except Exception:  # the job renders all the same; only a crash of this attempt would go uncounted
                log.warning("worker %s: could not note that the turn of %s began", self.name, job.id, exc_info=True)
        near_end = asyncio.Event()
        claim_ahead = asyncio.create_task(self._claim_ahead(near_end))
        finishing = False
        along: writing.EncodeAlong | None = None
        try:
            if started.error is not None:
                raise started.error
            plan, inputs = started.plan, started.inputs
            assert plan is not None and inputs is not None
            along = self.outputs.encode_along(job, plan, inputs, conversion_device(self.backend))
            watcher = None
            if self.previews is not None and takes_previews(self.backend):
                colours = getattr(self.backend, "latent_rgb", None)  # fitted by load_backend
                watcher = self.previews.observer(job, self.backend.profile, colours)
            tick = time.perf_counter()
            try:
                rendered = await loop.run_in_executor(
                    self.gpu_pool,
                    self._render,
                    job,
                    plan,
                    inputs,
                    control,
                    lambda: loop.call_soon_threadsafe(near_end.set),
                    along.add,
                    watcher,
                )
            finally:  # a preview still being written must land before the job ends (and its files may go)
                if self.previews is not None:
                    await self.previews.settle(job.id)
            along.end()
            timings["render_s"] = time.perf_counter() - tick
            self.metrics.render_seconds.observe(timings["render_s"])
            timings.update({f"render_{k}": v for k, v in rendered.timings.items()})
            if rendered.prompt_tokens is not None:
                timings["prompt_tokens"], timings["prompt_tokens_used"] = rendered.prompt_tokens
                if rendered.prompt_tokens[1] < rendered.prompt_tokens[0]:
                    log.warning(
                        "worker %s: the prompt of %s was cut: the text encoder took %d of its %d tokens",
                        self.name,
                        job.id,
                        rendered.prompt_tokens[1],
                        rendered.prompt_tokens[0],
                    )
            self.status.gpu_busy_seconds += timings["render_s"]
            await self._finishing.acquire()
            finishing = True
            task = asyncio.create_task(
                self._finish(job, plan, inputs, rendered, along, control, started.heartbeat, timings)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        except Exception as error:
            try:
                if along is not None:  # first stop its thread (nothing may write into the folder after), then drop it
                    await loop.run_in_executor(self.cpu_pool, along.abort)
                    await loop.run_in_executor(self.cpu_pool, self.store.delete_attempt, job.id, job.attempts)
                if isinstance(error, RenderCancelled):
                    await self._stop_job(job, control)
                else:
                    await self._fail(job, error)
            except Exception:  # the worker goes on; the job is taken again once its lease (no longer renewed) expires
                log.exception("worker %s: could not end %s (attempt %d)", self.name, job.id, job.attempts)
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
        return upcoming[0] if isinstance(upcoming[0], _HeldClaim) else None

    async def _claim_ahead(self, near_end: asyncio.Event) -> _HeldClaim | None:
        """Once the render is in its last stretch, claim the next job and load its inputs, unless this worker is
        stopping or every encode slot is busy (then the finished render waits for a slot, and the next job would
        hold its lease waiting too)."""
        await near_end.wait()
        if self._stopping.is_set() or self._finishing.locked():
            return None
        upcoming = await self._claim_and_start(ahead=True)
        if upcoming is not None:
            self.status.next_job_id = upcoming.job.id
            log.info("worker %s: claimed %s ahead (attempt %d)", self.name, upcoming.job.id, upcoming.job.attempts)
        return upcoming

    def _render(
        self,
        job: ClaimedJob,
        plan: RenderPlan,
        inputs: RenderInputs,
        control: _AttemptControl,
        on_last_stretch: Callable[[], None],
        on_frames: Callable[[np.ndarray], None],
        preview: LatentObserver | None = None,
    ) -> RenderedVideo:
        """Runs on the GPU thread. Calls `on_last_stretch` once, when the steps so far say the render ends within
        CLAIM_AHEAD_SECONDS (or at its end), and `on_frames` with each segment's finished frames."""
        assert self.backend is not None
        spec = plan.spec(
            job.prompt,
            job.negative_prompt,
            job.seed,
            inputs.image,
            inputs.parent_tail,
            source=inputs.source,
            references=inputs.references,
            parent_sound=inputs.parent_sound,
        )
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
        rendered = render_video(self.backend, spec, on_progress, on_frames, preview)
        counting = getattr(self.backend, "prompt_tokens", None)  # a backend's own tokenizer, where it has one
        if counting is not None:
            rendered.prompt_tokens = counting(job.prompt)
        return rendered

    async def _finish(
        self,
        job: ClaimedJob,
        plan: RenderPlan,
        inputs: RenderInputs,
        rendered: RenderedVideo,
        along: writing.EncodeAlong,
        control: _AttemptControl,
        heartbeat: asyncio.Task[None],
        timings: dict[str, float],
    ) -> None:
        """Encode and store the result (CPU threads), then mark the job completed."""
        loop = asyncio.get_running_loop()
        control.stage, control.fraction = "encode", 1.0
        try:
            started = time.perf_counter()
            artifacts, total_frames = await self.outputs.write(
                job, plan, inputs, rendered, along, conversion_device(self.backend)
            )
            timings["encode_s"] = time.perf_counter() - started
            self.metrics.encode_seconds.observe(timings["encode_s"])
            timings["total_s"] = time.time() - job.created_at_ts
            tries = 0

            async def complete() -> bool:
                nonlocal tries
                tries += 1
                if await self.queue.complete(
                    job.lease,
                    artifacts=artifacts,
                    seconds=seconds_text(total_frames, plan.fps),
                    timings={k: round(v, 4) for k, v in timings.items()},
                ):
                    return True
                # A try before may have been committed, its answer lost on the way: then this attempt completed it.
                row = await self.queue.get(job.id, include_deleted=True) if tries > 1 else None
                return row is not None and (row.status, row.attempts) == (models.COMPLETED, job.attempts)

            done = await self._ending(job, complete)
            if done:  # only the attempt that completed the job may clear out the others
                await loop.run_in_executor(self.cpu_pool, self.store.remove_other_attempts, job.id, job.attempts)
                self.status.jobs_done += 1
                self.metrics.job_ended("completed")
                log.info("worker %s: %s completed in %.2f s", self.name, job.id, timings["total_s"])
            else:
                await self._stop_job(job, control)
        except Exception as error:
            try:
                if await self._fail(job, error):  # what it wrote before failing (a full disk) is of no use now
                    await loop.run_in_executor(self.cpu_pool, self.store.delete_attempt, job.id, job.attempts)
            except Exception:
                log.exception("worker %s: could not end %s (attempt %d)", self.name, job.id, job.attempts)
        finally:
            self._controls.pop(job.lease, None)
            self._finishing.release()
            await _stopped(heartbeat)

    async def _keep_lease(self, job: ClaimedJob, control: _AttemptControl) -> None:
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

    async def _ending(self, job: ClaimedJob, end: Callable[[], Awaitable[T]]) -> T:
        """Record the end of an attempt (`end`: one queue transaction), trying again while the database is unavailable,
        for up to END_RETRY_SECONDS (once: when this worker is stopping)."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + END_RETRY_SECONDS, 0.1
        while True:
            try:
                return await end()
            except (SQLAlchemyError, OSError) as error:  # the database, not a bug: a bug is not tried again
                if self._stopping.is_set() or loop.time() + delay > deadline:
                    raise
                log.warning(
                    "worker %s: could not record the end of %s (%s: %s); trying again",
                    self.name,
                    job.id,
                    type(error).__name__,
                    error,
                )
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)

    async def _stop_job(self, job: ClaimedJob, control: _AttemptControl) -> None:
        if control.shutting_down:
            await self._ending(job, lambda: self.queue.release(job.lease))
            log.info("worker %s: gave %s back to the queue (shutting down)", self.name, job.id)
            return
        loop = asyncio.get_running_loop()
        if await self._ending(job, lambda: self.queue.mark_cancelled(job.lease)):
            log.info("worker %s: %s cancelled", self.name, job.id)
            self.metrics.job_ended("cancelled")
            await loop.run_in_executor(self.cpu_pool, self.store.delete_job, job.id)
        else:  # the lease went to another attempt: only this attempt's own files are ours to remove
            log.warning(
                "worker %s: lost the lease of %s (attempt %d); dropping its files", self.name, job.id, job.attempts
            )
            await loop.run_in_executor(self.cpu_pool, self.store.delete_attempt, job.id, job.attempts)

    async def _fail(self, job: ClaimedJob, error: BaseException) -> bool:
        """Fail the job with what `error` says; False when this attempt no longer held it."""
        if is_out_of_memory(error):
            code, message = "out_of_memory", "The GPU ran out of memory for this video; try a shorter or smaller one."
            free_gpu_memory()
            log.error("worker %s: %s ran out of GPU memory", self.name, job.id)
        else:
            code, message = "render_failed", f"Rendering failed: {type(error).__name__}: {error}"
            log.error("worker %s: %s failed", self.name, job.id, exc_info=error)
        if not await self._ending(job, lambda: self.queue.fail(job.lease, code, message)):
            return False
        self.metrics.job_ended("failed", code)
        return True


async def _stopped(task: asyncio.Task[None]) -> None:
    """Cancel `task` and wait until it has ended: a lease renewal may be mid-query, and must not outlive the
    worker (the service closes the database right after)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
