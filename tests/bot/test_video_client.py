"""The bot's generator client against a running generator: a retried submit never makes a second job."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

from bot.videos import VideoClient, VideoOrder, VideoState
from tests.support.generator_service import SlowBackend, running_generator, tiny_backend, wait_until


async def test_resubmitting_one_generation_makes_one_job(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running:
        client = VideoClient(running.base_url)
        try:
            spec = VideoOrder(prompt="a heron takes off", seconds=1, size="1280x720", request_key="hanul-7-1.0")
            first = await client.create(spec)
            retried = await client.create(spec)  # e.g. the first answer was lost in a timeout
            other = await client.create(VideoOrder(prompt="a heron takes off", seconds=1, size="1280x720"))
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
            video = await client.create(VideoOrder(prompt="a slow pan across a valley", seconds=12, size="1280x720"))
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


async def test_track_sees_the_finished_video_at_once_not_at_its_next_poll(tmp_path):
    """The generator holds each answer until the job changes: the end is seen when it happens, even with a poll
    interval far longer than the render."""
    slow = SlowBackend(tiny_backend(), step_delay=0.3)
    async with running_generator(tmp_path, backend=slow) as running:
        queue = running.service.queue
        completed_at: list[float] = []
        real_complete = queue.complete

        async def complete(*args, **kwargs):
            done = await real_complete(*args, **kwargs)
            completed_at.append(time.monotonic())
            return done

        queue.complete = complete
        client = VideoClient(running.base_url)
        asks: list[tuple[float, VideoState | None, bool]] = []
        real_retrieve_held = client.retrieve_held

        async def retrieve_held(video_id, wait, seen):
            state, held = await real_retrieve_held(video_id, wait, seen)
            asks.append((wait, seen, held))
            return state, held

        client.retrieve_held = retrieve_held
        try:
            video = await client.create(VideoOrder(prompt="a slow pan across a valley", seconds=1, size="1280x720"))
            final = await client.track(video.id, poll_interval=30.0)
            returned_at = time.monotonic()
        finally:
            await client.close()
    assert final.status == "completed"
    assert returned_at - completed_at[0] < 2.0  # polling every 30 s would have taken until the next poll
    # Every answer was held until the job changed; the first, with nothing seen yet, came at once.
    assert asks[0][1] is None and all(wait > 0 and held for wait, _, held in asks)
    assert all(seen is not None for _, seen, _ in asks[1:])
    assert len(asks) <= 8, asks  # one per change (queued, rendering, progress steps, completed), no polling


async def test_a_generator_that_answers_at_once_is_asked_once_per_poll_interval(tmp_path, monkeypatch):
    """Other OpenAI-compatible servers ignore `wait`: the bot must not turn into a busy loop against them."""
    import bot.videos

    monkeypatch.setattr(bot.videos, "MIN_ASK_GAP", 0.001)
    slow = SlowBackend(tiny_backend(), step_delay=0.15)
    async with running_generator(tmp_path, backend=slow, GENERATOR_LEASE_SECONDS=30) as running:
        client = VideoClient(running.base_url)
        asks = 0
        real_retrieve = client.retrieve

        async def ignoring_wait(video_id, wait, seen):
            nonlocal asks
            asks += 1
            return await real_retrieve(video_id), False

        client.retrieve_held = ignoring_wait
        try:
            video = await client.create(VideoOrder(prompt="a slow pan across a valley", seconds=4, size="1280x720"))
            started = time.monotonic()
            final = await client.track(video.id, poll_interval=0.25)
            took = time.monotonic() - started
        finally:
            await client.close()
    assert final.status == "completed"
    # One ask per poll interval, plus one soon after each change (the lease of 30 s renews progress every second).
    assert asks <= 2 * took / 0.25 + 4, (asks, took)


async def test_a_change_too_soon_to_report_is_reported_when_the_interval_allows_though_nothing_else_changes(
    tmp_path,
):
    """A held answer brings a change the report interval holds back; the next hold must end when the report may
    go out, or the member would see the old state until some later change."""
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running:
        client = VideoClient(running.base_url)
        reports: list[tuple[float, VideoState]] = []

        async def on_progress(state: VideoState) -> None:
            reports.append((time.monotonic(), state))

        try:
            ahead = await client.create(VideoOrder(prompt="the first in line", seconds=1, size="1280x720"))
            video = await client.create(VideoOrder(prompt="the second in line", seconds=1, size="1280x720"))
            tracking = asyncio.create_task(client.track(video.id, on_progress, report_interval=1.5))
            await wait_until(lambda: len(reports) == 1)
            assert reports[0][1].queue_position == 2
            await client.cancel(ahead.id)  # the held answer brings position 1 at once; too soon to report it
            cancelled_at = time.monotonic()
            await wait_until(lambda: len(reports) == 2, limit=10)
            assert reports[1][1].queue_position == 1
            assert reports[1][0] - reports[0][0] >= 1.5
            assert reports[1][0] - cancelled_at < 5
            tracking.cancel()
        finally:
            await client.close()
