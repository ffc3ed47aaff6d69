"""A worker whose lease passed to another attempt (it stalled past the lease; a busy worker may even take its own
job back) must leave that attempt's job and files alone, and clean up only what it wrote itself."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import update

from generator import models
from generator.models import VideoJob
from tests.support.generator_service import SlowBackend, running_generator, sdk_client, tiny_backend, wait_until


async def test_an_attempt_that_lost_its_lease_leaves_the_new_attempts_job_and_files_alone(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="generator")
    gate = threading.Event()
    async with (
        running_generator(tmp_path / "generator", SlowBackend(tiny_backend(), gate=gate)) as generator,
        sdk_client(generator) as client,
    ):
        service = generator.service
        try:
            video = await client.videos.create(prompt="a kite over the sea", seconds="1")
            await wait_until(lambda: "rendering " + video.id + " (attempt 1)" in caplog.text)

            # Meanwhile the lease expired and another worker took the job over; its files are already there.
            async with service.queue.sessions.begin() as session:
                await session.execute(
                    update(VideoJob).where(VideoJob.id == video.id).values(lease_owner="elsewhere/0", attempts=2)
                )
            theirs = service.store.path_for(video.id, "video", 2)
            theirs.write_bytes(b"the clip of attempt 2")
        finally:
            gate.set()  # the stale attempt goes on: it notices at its next heartbeat, or when it tries to finish

        await wait_until(lambda: f"lost the lease of {video.id} (attempt 1)" in caplog.text)
        assert not service.store.attempt_dir(video.id, 1).exists(), "the stale attempt removed its own files"
        assert theirs.read_bytes() == b"the clip of attempt 2", "and left the new attempt's alone"
        row = await service.queue.get(video.id)
        assert (row.status, row.lease_owner, row.attempts) == (models.IN_PROGRESS, "elsewhere/0", 2)
        assert f"{video.id} completed" not in caplog.text
