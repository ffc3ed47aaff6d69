"""The bot's generator client against a running generator: a retried submit never makes a second job."""

from __future__ import annotations

from bot.videos import VideoClient, VideoSpec
from tests.support.generator_service import running_generator


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
