"""Live previews of the jobs being rendered: frames from the GPU thread (pipelines/preview.py) encoded as a small
animated WebP on a CPU thread, stored over the job's last preview, and noted on its row (`preview_at`, the
`preview` content variant). A preview that arrives while the last is still being written is dropped: the next
comes a few seconds later, and the GPU never waits for one."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from generator.media.previews import animated_preview
from generator.pipelines.base import ModelProfile
from generator.pipelines.latent_rgb import LatentRGB
from generator.pipelines.preview import LatentPreview
from generator.queue import ClaimedJob, JobQueue
from generator.storage import ArtifactStore

log = logging.getLogger(__name__)


class LivePreviews:
    """Writes the latest preview of each job a worker renders, every `every_seconds` (0: never)."""

    def __init__(
        self,
        queue: JobQueue,
        store: ArtifactStore,
        pool: Executor,
        every_seconds: float,
        on_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.queue = queue
        self.store = store
        self.pool = pool
        self.every_seconds = every_seconds
        self.on_written = on_written
        self._writing: dict[str, asyncio.Task[None]] = {}

    def observer(self, job: ClaimedJob, profile: ModelProfile, colours: LatentRGB | None) -> LatentPreview | None:
        """What to hand the render of `job` (on the GPU thread), or None when previews are off. `colours` is the
        backend's latent-to-RGB map fitted from its VAE; None (load_backend has said why) shows its latent channels.
        Call on the loop."""
        if self.every_seconds <= 0:
            return None
        loop = asyncio.get_running_loop()
        frame_ms = round(1000 * profile.frame_multiple / profile.fps)  # one latent frame stands for this many
        busy = threading.Event()

        def deliver(frames: np.ndarray) -> None:  # the GPU thread
            if busy.is_set():
                return
            busy.set()
            loop.call_soon_threadsafe(self._start, job, frames, frame_ms, busy)

        return LatentPreview(colours, self.every_seconds, deliver)

    def _start(self, job: ClaimedJob, frames: np.ndarray, frame_ms: int, busy: threading.Event) -> None:
        self._writing[job.id] = asyncio.create_task(self._write(job, frames, frame_ms, busy))

    async def _write(self, job: ClaimedJob, frames: np.ndarray, frame_ms: int, busy: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        try:
            data = await loop.run_in_executor(self.pool, animated_preview, frames, frame_ms)
            await loop.run_in_executor(self.pool, self.store.write_bytes, job.id, "preview", data)
            if await self.queue.record_preview(job.lease, self.store.relative_path(job.id, "preview"), len(data)):
                self.on_written()
        except Exception:
            log.warning("could not write a preview of %s", job.id, exc_info=True)
        finally:
            busy.clear()

    async def settle(self, job_id: str) -> None:
        """Wait for the preview of `job_id` being written, if any (before its job ends and its files may go)."""
        task = self._writing.pop(job_id, None)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
