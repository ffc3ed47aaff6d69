"""The generator's Prometheus metrics (`GET /metrics`): queue depth and jobs by status (read from the database at
each scrape, so every host shows the fleet's queue), render and encode seconds, failures by kind, live previews
and GPU memory (this process's workers).

Each service owns a registry of its own, not prometheus_client's global one, so two generators (or a generator
and the bot) in one process, as in tests and `python -m bot` with its in-process generator, never collide.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# A distilled LTX clip renders in about a second on an H200, a Wan 14B one in minutes; a 60 s chain longer still.
RENDER_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
ENCODE_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class GeneratorMetrics:
    """The metrics of one generator process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.queue_depth = Gauge(
            "hanul_generator_queue_depth", "Jobs queued and waiting for a worker (all hosts).", registry=registry
        )
        self.jobs = Gauge(
            "hanul_generator_jobs", "Unfinished jobs by status (all hosts).", ["status"], registry=registry
        )
        self.jobs_finished = Counter(
            "hanul_generator_jobs_finished",
            "Jobs this process's workers ended, by status (completed, failed, cancelled).",
            ["status"],
            registry=registry,
        )
        self.render_seconds = Histogram(
            "hanul_generator_render_seconds",
            "GPU time of one job's render (every segment).",
            buckets=RENDER_BUCKETS,
            registry=registry,
        )
        self.encode_seconds = Histogram(
            "hanul_generator_encode_seconds",
            "Time from a finished render to its stored MP4, thumbnail and tail.",
            buckets=ENCODE_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "hanul_generator_failures",
            "Failed jobs by kind (out_of_memory, render_failed, worker_lost).",
            ["kind"],
            registry=registry,
        )
        self.previews = Counter("hanul_generator_previews", "Live previews written.", registry=registry)
        self.gpu_memory = Gauge(
            "hanul_generator_gpu_memory_bytes",
            "CUDA memory of this process by device and kind (allocated, reserved, peak allocated).",
            ["device", "kind"],
            registry=registry,
        )
        for status in ("completed", "failed", "cancelled"):
            self.jobs_finished.labels(status)  # present at 0 from the start: rates need a first sample
        for kind in ("out_of_memory", "render_failed", "worker_lost"):
            self.failures.labels(kind)

    def job_ended(self, status: str, failure: str | None = None) -> None:
        """A job this process's workers ended (by rendering it, or by a claim that found its worker gone): its status,
        and for a failed one the kind of failure."""
        self.jobs_finished.labels(status).inc()
        if status == "failed":
            self.failures.labels(failure or "unknown").inc()

    def observe_queue(self, counts: dict[str, int]) -> None:
        """The unfinished jobs by status, as `JobQueue.counts` reads them."""
        for status, count in counts.items():
            self.jobs.labels(status).set(count)
        self.queue_depth.set(counts.get("queued", 0))

    def observe_gpu(self) -> None:
        """CUDA memory of every device this process has used; nothing without CUDA (and no CUDA context is made)."""
        import torch

        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return
        for index in range(torch.cuda.device_count()):
            device = f"cuda:{index}"
            self.gpu_memory.labels(device, "allocated").set(torch.cuda.memory_allocated(index))
            self.gpu_memory.labels(device, "reserved").set(torch.cuda.memory_reserved(index))
            self.gpu_memory.labels(device, "peak").set(torch.cuda.max_memory_allocated(index))

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
