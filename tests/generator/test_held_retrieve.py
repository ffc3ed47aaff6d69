"""`GET /v1/videos/{id}?wait=S`: the answer for an unfinished job is held until its status, progress or queue
position changes (at most S seconds), so a client hears of a finished video at once instead of at its next poll."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from generator import videos
from generator.service import start_generator
from tests.support.generator_service import (
    HeldRenders,
    generator_settings,
    running_generator,
    sdk_client,
    tiny_backend,
    wait_until,
)


async def held(client, video_id: str, wait: float, seen: str | None = None):
    """retrieve with `wait` (and `seen`); returns (video, seconds it took)."""
    query = {"wait": wait} if seen is None else {"wait": wait, "seen": seen}
    started = time.monotonic()
    video = await client.videos.retrieve(video_id, extra_query=query)
    return video, time.monotonic() - started


async def test_a_held_answer_comes_when_the_video_is_finished(tmp_path, monkeypatch):
    monkeypatch.setattr(videos, "HELD_RECHECK_SECONDS", 60)  # so only this process's own change can end the hold
    backend = HeldRenders(tiny_backend())
    async with running_generator(tmp_path, backend) as running, sdk_client(running) as client:
        try:
            video = await client.videos.create(prompt="a lighthouse at dusk", seconds="1")
            await wait_until(backend.started.is_set)
            seen, _ = await held(client, video.id, 0)
            assert seen.status == "in_progress"
            waiting = asyncio.create_task(held(client, video.id, 25))
            await asyncio.sleep(1.0)
            assert not waiting.done()  # nothing changed: the answer is held
            backend.release.set()
            released = time.monotonic()
            answer, _ = await asyncio.wait_for(waiting, 20)
            # The first change it saw: the render's end (a tiny render) or a progress step on the way.
            assert answer.status == "completed" or answer.progress > seen.progress, answer
            assert time.monotonic() - released < 15
        finally:
            backend.release.set()
        done = await client.videos.poll(video.id, poll_interval_ms=50)
        assert done.status == "completed"
        again, took = await held(client, video.id, 25)  # a finished job is answered at once
        assert again.status == "completed" and took < 5


async def test_a_held_answer_with_no_change_comes_after_the_wait(tmp_path):
    backend = HeldRenders(tiny_backend())
    async with running_generator(tmp_path, backend) as running, sdk_client(running) as client:
        try:
            video = await client.videos.create(prompt="a lighthouse at dusk", seconds="1")
            await wait_until(backend.started.is_set)
            answer, took = await held(client, video.id, 0.6)
            assert answer.status == "in_progress" and 0.6 <= took < 10
        finally:
            backend.release.set()


async def test_a_change_made_by_another_host_ends_the_hold(tmp_path):
    """Another process's change wakes nothing here: the held request finds it by reading the job again."""
    async with (
        running_generator(tmp_path, GENERATOR_WORKERS=0) as api_host,
        running_generator(tmp_path, GENERATOR_WORKERS=0) as other_host,
        sdk_client(api_host) as client,
    ):
        video = await client.videos.create(prompt="a lighthouse at dusk", seconds="1")
        waiting = asyncio.create_task(held(client, video.id, 25))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert (await other_host.service.queue.claim("a worker on another host")).id == video.id
        answer, took = await asyncio.wait_for(waiting, 20)
        assert answer.status == "in_progress"
        assert took < 10


async def test_seen_names_the_state_the_client_knows_and_only_that_state_is_held(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running, sdk_client(running) as client:
        await client.videos.create(prompt="the first in line", seconds="1")
        video = await client.videos.create(prompt="the second in line", seconds="1")
        # The client last saw it third in line; it has moved since (before this request): answered at once.
        answer, took = await held(client, video.id, 20, seen="queued:0:3")
        assert answer.model_extra["queue_position"] == 2 and took < 5
        answer, took = await held(client, video.id, 0.5, seen="queued:0:2")  # as the client knows it: held
        assert answer.model_extra["queue_position"] == 2 and took >= 0.5


async def test_stopping_the_generator_answers_held_requests_at_once(tmp_path):
    running = await start_generator(generator_settings(tmp_path, GENERATOR_WORKERS=0))
    async with aiohttp.ClientSession() as session:
        try:
            async with session.post(f"{running.base_url}/videos", json={"prompt": "a kite", "seconds": "1"}) as answer:
                video_id = (await answer.json())["id"]
            waiting = asyncio.create_task(session.get(f"{running.base_url}/videos/{video_id}?wait=30"))
            await asyncio.sleep(0.3)
        finally:
            started = time.monotonic()
            await running.stop()
        assert time.monotonic() - started < 10  # not the 30 s hold, nor aiohttp's 60 s grace period
        response = await asyncio.wait_for(waiting, 10)
        assert response.status == 200 and (await response.json())["status"] == "queued"


@pytest.mark.parametrize("wait", ["-1", "31", "nan", "inf", "soon", ""])
async def test_a_bad_wait_is_a_400_naming_it(tmp_path, wait):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running, aiohttp.ClientSession() as session:
        async with session.post(f"{running.base_url}/videos", json={"prompt": "a kite", "seconds": "1"}) as answer:
            video_id = (await answer.json())["id"]
        async with session.get(f"{running.base_url}/videos/{video_id}", params={"wait": wait}) as answer:
            assert answer.status == 400
            error = (await answer.json())["error"]
            assert error["param"] == "wait" and "0 to 30" in error["message"]
