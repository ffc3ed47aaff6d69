"""`GET /metrics`: the generator's Prometheus metrics, read with prometheus_client's own parser."""

from __future__ import annotations

from datetime import timedelta

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from generator import models
from generator.metrics import GeneratorMetrics
from generator.models import VideoJob
from generator.storage import new_video_id
from hanul_core.db import utcnow
from tests.support.generator_service import SlowBackend, running_generator, sdk_client, tiny_backend, wait_until


async def scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    async with aiohttp.ClientSession() as session, session.get(base_url.removesuffix("/v1") + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_jobs_renders_encodes_and_failures(tmp_path):
    backend = SlowBackend(tiny_backend(), fail_on={"explode": RuntimeError("boom")})
    async with running_generator(tmp_path, backend) as running, sdk_client(running) as client:
        before = await scrape(running.base_url)
        for name in (
            "hanul_generator_queue_depth",
            "hanul_generator_render_seconds_count",
            "hanul_generator_encode_seconds_count",
        ):
            assert (name, ()) in before, name
        assert before[("hanul_generator_jobs", (("status", "queued"),))] == 0
        assert before[("hanul_generator_jobs_finished_total", (("status", "completed"),))] == 0
        assert before[("hanul_generator_failures_total", (("kind", "render_failed"),))] == 0
        assert before[("hanul_generator_failures_total", (("kind", "worker_lost"),))] == 0

        done = await client.videos.create_and_poll(prompt="a cat", seconds="1", poll_interval_ms=50)
        failed = await client.videos.create_and_poll(prompt="explode please", seconds="1", poll_interval_ms=50)
        assert (done.status, failed.status) == ("completed", "failed")
        after = await scrape(running.base_url)

    assert after[("hanul_generator_render_seconds_count", ())] == 1  # the failed render never finished
    assert after[("hanul_generator_render_seconds_sum", ())] > 0
    assert after[("hanul_generator_encode_seconds_count", ())] == 1
    assert after[("hanul_generator_jobs_finished_total", (("status", "completed"),))] == 1
    assert after[("hanul_generator_jobs_finished_total", (("status", "failed"),))] == 1
    assert after[("hanul_generator_failures_total", (("kind", "render_failed"),))] == 1
    assert after[("hanul_generator_queue_depth", ())] == 0


def abandoned_job(attempts: int, cancel_requested: bool = False) -> VideoJob:
    """A job a host that is gone was rendering: in progress, its lease run out a second ago."""
    return VideoJob(
        id=new_video_id(),
        model="tiny",
        prompt="a lighthouse in fog",
        seconds="1",
        size="64x64",
        seed=1,
        params={},
        status=models.IN_PROGRESS,
        attempts=attempts,
        lease_owner="lost-host/0",
        lease_expires_at=utcnow() - timedelta(seconds=1),
        cancel_requested=cancel_requested,
    )


async def test_metrics_count_the_jobs_a_claim_ends_instead_of_taking_over(tmp_path):
    """A worker's claim fails a job whose workers were lost `max_attempts` times (`worker_lost`) and ends one that
    was cancelled while its worker was gone: both count like the jobs a render ends, and what their lost attempts
    left is removed as a render's end removes it (the failed job's last live preview stays, as any failed job's)."""
    async with running_generator(tmp_path, GENERATOR_MAX_ATTEMPTS=2) as running:
        lost, cancelled = abandoned_job(attempts=2), abandoned_job(attempts=1, cancel_requested=True)
        store = running.service.store
        for job, attempts in ((lost, 2), (cancelled, 1)):
            for attempt in range(1, attempts + 1):  # what the killed workers had written
                store.path_for(job.id, "video", attempt).write_bytes(b"half an mp4")
            store.write_bytes(job.id, "preview", b"RIFF....WEBP")
        async with running.service.queue.sessions.begin() as session:  # the running worker's next claim finds them
            session.add_all([lost, cancelled])
        finished = ("hanul_generator_jobs_finished_total", (("status", "cancelled"),))

        async def both_counted_and_cleared() -> bool:
            after = await scrape(running.base_url)
            lost_counted = after[("hanul_generator_failures_total", (("kind", "worker_lost"),))] == 1
            counted = lost_counted and after[finished] == 1
            return counted and not store.job_dir(cancelled.id).exists() and not store.attempt_dir(lost.id, 2).exists()

        await wait_until(both_counted_and_cleared)
        after = await scrape(running.base_url)
        failed = await running.service.queue.get(lost.id)
        assert (failed.status, failed.error_code) == (models.FAILED, "worker_lost")
        assert (await running.service.queue.get(cancelled.id, include_deleted=True)).status == models.CANCELLED
        assert [path.name for path in store.job_dir(lost.id).iterdir()] == ["preview.webp"]
    assert after[("hanul_generator_jobs_finished_total", (("status", "failed"),))] == 1
    assert after[("hanul_generator_failures_total", (("kind", "render_failed"),))] == 0


async def test_metrics_ask_for_the_api_key_like_the_api(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_API_KEY="sesame") as running:
        url = running.base_url.removesuffix("/v1") + "/metrics"
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as refused:
                assert refused.status == 401
            async with session.get(url, headers={"Authorization": "Bearer sesame"}) as allowed:
                assert allowed.status == 200
                assert "hanul_generator_queue_depth" in await allowed.text()


def test_two_generators_in_one_process_keep_their_own_metrics():
    first, second = GeneratorMetrics(), GeneratorMetrics()  # the global registry would refuse the second
    first.previews.inc()
    assert b"hanul_generator_previews_total 1.0" in first.exposition()
    assert b"hanul_generator_previews_total 0.0" in second.exposition()
