"""The generator as a running process: database, queue, GPU workers and the HTTP API, started and stopped
together. `start_generator` runs it inside another program's event loop (the bot's); `serve_forever` is
`python -m generator serve`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from generator.api import create_app
from generator.characters import Characters
from generator.errors import APIError
from generator.files import Files
from generator.hub import ModelUnavailable, resolve_model
from generator.metrics import GeneratorMetrics
from generator.models import MIGRATIONS
from generator.pipelines.base import ModelProfile, VideoBackend
from generator.previewing import LivePreviews
from generator.queue import JobQueue, QueueLimits
from generator.settings import GeneratorSettings
from generator.storage import ArtifactStore
from generator.videos import Videos, remove_files
from generator.worker import Worker
from hanul_core.db import (
    create_engine,
    ensure_writable_folder,
    read_only_session_factory,
    session_factory,
)
from hanul_core.migrate import upgrade_database

log = logging.getLogger(__name__)

BackendFactory = Callable[[GeneratorSettings], VideoBackend]
PROFILE_WAIT_SECONDS = 10.0
# A job's uploaded files are written just before its row is inserted; a process killed in between leaves a folder
# no row names. Folders without a row are removed once nothing in them has changed for this long: far longer than
# any request takes between writing its files and inserting its row, on this host or another sharing the storage.
ORPHAN_FOLDER_SECONDS = 600.0


def default_backend_factory(settings: GeneratorSettings) -> VideoBackend:
    from generator.pipelines import load_backend

    return load_backend(settings)


def worker_settings(settings: GeneratorSettings, index: int) -> GeneratorSettings:
    """Worker i of several on one host gets GPU i when the device is left to `auto`."""
    if settings.workers > 1 and settings.device == "auto":
        import torch

        if torch.cuda.device_count() > 1:
            return settings.model_copy(update={"device": f"cuda:{index % torch.cuda.device_count()}"})
    return settings


class GeneratorService:
    """Owns the engine, the queue, the workers and the API application of one generator process."""

    def __init__(
        self,
        settings: GeneratorSettings,
        *,
        backend_factory: BackendFactory = default_backend_factory,
        profile: ModelProfile | None = None,
    ) -> None:
        self.settings = settings
        self.backend_factory = backend_factory
        self.engine = create_engine(settings.resolved_database_url)
        self.queue = JobQueue(
            session_factory(self.engine),
            QueueLimits(
                max_queue=settings.max_queue,
                max_queue_per_user=settings.max_queue_per_user,
                lease_seconds=settings.lease_seconds,
                max_attempts=settings.max_attempts,
            ),
            readers=read_only_session_factory(self.engine),
        )
        self.store = ArtifactStore(settings.videos_dir)
        # Per worker: two threads per encode in flight (the MP4, and the thumbnail, spritesheet and tail beside it),
        # one for the MP4 encoded along the current render, and one for the rest (inputs, deletions), so the next
        # job's inputs never wait behind the encodes.
        cpu_threads = max(2, settings.workers * (2 * settings.encodes_in_flight + 2))
        self.cpu_pool = ThreadPoolExecutor(max_workers=cpu_threads, thread_name_prefix="hanul-cpu")
        self.worker_id = settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.workers: list[Worker] = []
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._profile: asyncio.Future[ModelProfile] = asyncio.get_running_loop().create_future()
        self.memory_tier: str | None = None  # GENERATOR_MEMORY as resolved by the first worker's load
        if profile is not None:
            self._profile.set_result(profile)
        self.videos: Videos | None = None
        self.metrics = GeneratorMetrics()
        self.previews = LivePreviews(
            self.queue, self.store, self.cpu_pool, settings.preview_seconds, on_written=self.metrics.previews.inc
        )
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> web.Application:
        """Migrate the database, start the workers, and return the API application."""
        if self.settings.workers and self.backend_factory is default_backend_factory:
            # A model that is not on this machine, or a GPU torch does not see, stops the start here, with what to do
            # (no download, no traceback), not the first job.
            from generator.pipelines import resolve_device

            resolve_model(self.settings.model, self.settings.data_dir)
            for index in range(self.settings.workers):
                resolve_device(worker_settings(self.settings, index).device)
        ensure_writable_folder(self.settings.videos_dir, "GENERATOR_ARTIFACTS_DIR (or HANUL_DATA_DIR)")
        await upgrade_database(self.engine, MIGRATIONS)
        await self.remove_orphan_folders()
        await self.remove_files_no_longer_awaited()
        self._sweeper = asyncio.create_task(self._remove_orphan_folders_now_and_then(), name="orphan folders")
        for index in range(self.settings.workers):
            settings = worker_settings(self.settings, index)
            worker = Worker(
                name=f"{self.worker_id}/{index}",
                queue=self.queue,
                store=self.store,
                load_backend=lambda s=settings: self._load(s),
                cpu_pool=self.cpu_pool,
                lease_seconds=self.settings.lease_seconds,
                poll_interval=self.settings.poll_interval,
                mp4_preset=self.settings.mp4_preset,
                mp4_parts=self.settings.mp4_parts,
                encodes_in_flight=self.settings.encodes_in_flight,
                previews=self.previews,
                metrics=self.metrics,
            )
            self.workers.append(worker)
            self._worker_tasks.append(asyncio.create_task(worker.run(), name=f"worker {worker.name}"))
        if not self.workers and not self._profile.done():
            from generator.pipelines.describe import describe_model

            self._profile.set_result(describe_model(self.settings))
        self.videos = Videos(
            queue=self.queue,
            store=self.store,
            profile_source=self.profile,
            settings=self.settings,
            files=Files(session_factory(self.engine), self.store),
            characters=Characters(session_factory(self.engine), self.store),
            on_enqueued=self._wake_workers,
        )
        return create_app(self.settings, self.videos, self.health, self.metrics_text)

    async def remove_orphan_folders(self, older_than: float = ORPHAN_FOLDER_SECONDS) -> list[str]:
        """Remove job folders that no job row names and in which nothing has changed for `older_than` seconds
        (left by a process killed between writing a job's uploads and inserting its row)."""
        loop = asyncio.get_running_loop()
        candidates = await loop.run_in_executor(self.cpu_pool, self.store.job_folders_older_than, older_than)
        if not candidates:
            return []
        orphans = sorted(set(candidates) - await self.queue.known_ids(candidates))
        for video_id in orphans:
            await loop.run_in_executor(self.cpu_pool, self.store.delete_job, video_id)
        if orphans:
            log.warning("removed %d job folder(s) that no job names (left by a killed process)", len(orphans))
        return orphans

    async def remove_files_no_longer_awaited(self) -> list[str]:
        """The files of deleted videos that were kept while a job that extends or edits them waited, once none
        waits (`Videos.delete`)."""
        done = await self.queue.deleted_and_no_longer_awaited()
        for video_id in done:
            await remove_files(self.store, self.queue, video_id)
        if done:
            log.info(
                "removed the files of %d deleted video(s) that no waiting job extends or edits any more", len(done)
            )
        return done

    async def _remove_orphan_folders_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(ORPHAN_FOLDER_SECONDS)
            try:
                await self.remove_orphan_folders()
                await self.remove_files_no_longer_awaited()
            except Exception:
                log.exception("removing orphan job folders failed")

    def _load(self, settings: GeneratorSettings) -> VideoBackend:
        """Runs on a worker's GPU thread; the first loaded model's profile becomes the API's."""
        backend = self.backend_factory(settings)
        self.memory_tier = getattr(backend, "memory_tier", None)
        loop = self._profile.get_loop()
        loop.call_soon_threadsafe(self._set_profile, backend.profile)
        return backend

    def _set_profile(self, profile: ModelProfile) -> None:
        if not self._profile.done():
            self._profile.set_result(profile)

    async def profile(self) -> ModelProfile:
        """The loaded model's profile; while the model is still loading, 503 after a short wait."""
        if self._profile.done():
            return self._profile.result()
        self._refuse_if_every_worker_failed()  # at once: waiting would not change it
        try:
            return await asyncio.wait_for(asyncio.shield(self._profile), PROFILE_WAIT_SECONDS)
        except TimeoutError:
            self._refuse_if_every_worker_failed()
            raise APIError(
                503,
                "The video model is still loading; try again shortly.",
                type="server_error",
                code="model_loading",
                headers={"Retry-After": "10"},
            ) from None

    def _refuse_if_every_worker_failed(self) -> None:
        failed = [w.status.error for w in self.workers if w.status.state == "failed"]
        if failed and len(failed) == len(self.workers):
            raise APIError(503, f"The video model could not be loaded: {failed[0]}", type="server_error")

    def _wake_workers(self) -> None:
        for worker in self.workers:
            worker.wake()

    async def health(self) -> dict[str, Any]:
        workers = [
            {
                "name": w.status.name,
                "state": w.status.state,
                "job": w.status.job_id,
                "next_job": w.status.next_job_id,
                "jobs_done": w.status.jobs_done,
                "error": w.status.error,
            }
            for w in self.workers
        ]
        healthy = not self.workers or any(w["state"] not in ("failed", "stopped") for w in workers)
        try:
            queue = await self.queue.counts()
        except Exception as error:
            return {"status": "error", "error": f"database unreachable: {type(error).__name__}", "workers": workers}
        return {
            "status": "ok" if healthy else "error",
            "model": self._profile.result().name if self._profile.done() else None,
            "family": self._profile.result().family if self._profile.done() else None,
            "memory_tier": self.memory_tier,
            "model_loaded": self._profile.done(),
            "queue": queue,
            "workers": workers,
        }

    async def metrics_text(self) -> bytes:
        """`GET /metrics`: the queue read now, GPU memory, and what the workers counted."""
        self.metrics.observe_queue(await self.queue.counts())
        self.metrics.observe_gpu()
        return self.metrics.exposition()

    async def stop(self) -> None:
        """Stop workers (running jobs go back to the queue), then close the database."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await asyncio.gather(*(worker.stop() for worker in self.workers), return_exceptions=True)
        if self.videos is not None:
            self.videos.close()
        for task in self._worker_tasks:
            task.cancel()
        await asyncio.gather(*self._worker_tasks, return_exceptions=True)
        self.cpu_pool.shutdown(wait=True)
        await self.engine.dispose()


@dataclass
class RunningGenerator:
    """A generator serving HTTP inside the caller's event loop."""

    service: GeneratorService
    runner: web.AppRunner
    base_url: str  # e.g. http://127.0.0.1:8189/v1

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.service.stop()


async def start_generator(
    settings: GeneratorSettings,
    *,
    backend_factory: BackendFactory = default_backend_factory,
    profile: ModelProfile | None = None,
) -> RunningGenerator:
    """Start the service and its HTTP server on settings.host:port (port 0 picks a free one)."""
    service = GeneratorService(settings, backend_factory=backend_factory, profile=profile)
    try:
        app = await service.start()
    except BaseException:  # e.g. StorageError: an unwritable artifacts folder
        await service.stop()
        raise
    # keepalive_timeout also runs from the moment a connection opens: a client that never completes its request
    # headers (or never sends one) is closed after it, as is an idle keep-alive connection.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=settings.idle_timeout)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        await service.stop()
        raise
    port = runner.addresses[0][1]
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    log.info("generator listening on http://%s:%s (model %s)", settings.host, port, settings.model)
    return RunningGenerator(service=service, runner=runner, base_url=f"http://{host}:{port}/v1")


def serve_forever(settings: GeneratorSettings) -> int:
    """`python -m generator serve`: run until SIGINT or SIGTERM, then stop cleanly."""

    async def main() -> int:
        try:
            running = await start_generator(settings)
        except ModelUnavailable as error:
            print(f"hanul generator: {error}", file=sys.stderr)
            return 2
        except OSError as error:
            log.error("cannot listen on %s:%s: %s", settings.host, settings.port, error)
            return 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"Hanul generator: {running.base_url} (Ctrl+C to stop)", flush=True)
        await stop.wait()
        log.info("stopping: running jobs go back to the queue")
        await running.stop()
        return 0

    return asyncio.run(main())
