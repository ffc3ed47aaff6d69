"""The bot's generator client against a running generator: a retried submit never makes a second job."""

from __future__ import annotations

import time
from itertools import pairwise

from bot.videos import VideoClient, VideoSpec, VideoState
from tests.support.generator_service import SlowBackend, running_generator, tiny_backend


async def test_resubmitting_one_generation_makes_one_job(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running:
        client = VideoClient(running.base_url)
        try:
            spec = VideoSpec(prompt="a heron takes off", seconds=1, size="1280x720", request_key="hanul-7-1.0")
            first = await client.create(spec)
            retried = await client.create(spec)  # e.g. the first answer was lost in a timeout
            other = await client.create(VideoSpec(prompt="a heron takes off", seconds=1, size="1280x720"))
            assert retried.id == first.id
            assert other.id != first.id
            assert (await running.service.queue.counts())["queued"] == 2
        finally:
            await client.close()


async def test_progress_reports_are_spaced_by_the_report_interval(tmp_path):
    """Discord rate-limits message edits: progress reaches the member at most once per interval, plus the end."""
    slow = SlowBackend(tiny_backend(), step_delay=0.05)
    async with running_generator(tmp_path, backend=slow, GENERATOR_LEASE_SECONDS=0.6) as running:
        client = VideoClient(running.base_url)
        try:
            video = await client.create(VideoSpec(prompt="a slow pan across a valley", seconds=12, size="1280x720"))
            reports: list[tuple[float, VideoState]] = []

            async def on_progress(state: VideoState) -> None:
                reports.append((time.monotonic(), state))

            final = await client.track(video.id, on_progress, poll_interval=0.02, report_interval=0.5)
        finally:
            await client.close()
    assert final.status == "completed"
    assert reports[-1][1].status == "completed"
    assert len(reports) >= 3  # queued or rendering, some progress, the end
    gaps = [later - earlier for (earlier, _), (later, _) in pairwise(reports[:-1])]
    assert all(gap >= 0.5 for gap in gaps), gaps
