"""A worker renders the next job while earlier ones encode, up to GENERATOR_ENCODES_IN_FLIGHT of them: the GPU
waits only when every encode slot is busy (measured on an H100: one slot left the GPU idle 64 % of a full queue
when encoding took longer than rendering)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from generator import encode, models
from tests.support.generator_service import SlowBackend, running_generator, sdk_client, tiny_backend, wait_until


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_the_next_render_waits_only_when_every_encode_slot_is_busy(tmp_path, monkeypatch, in_flight):
    gate = threading.Event()
    encoding: list[str] = []
    real_encode = encode.encode_mp4

    def held_encode(frames, fps, path, max_bytes, **options):
        encoding.append(str(path))
        gate.wait(timeout=60)
        return real_encode(frames, fps, path, max_bytes, **options)

    monkeypatch.setattr(encode, "encode_mp4", held_encode)
    backend = SlowBackend(tiny_backend())
    async with (
        running_generator(tmp_path / "generator", backend, GENERATOR_ENCODES_IN_FLIGHT=in_flight) as generator,
        sdk_client(generator) as client,
    ):
        try:
            videos = [await client.videos.create(prompt=f"clip {index}", seconds="1") for index in range(4)]
            await wait_until(lambda: len(encoding) == in_flight)
            # Every slot is encoding: one more render runs (its frames then wait for a slot), and no further one.
            await wait_until(lambda: len(backend.prompts) == in_flight + 1)
            await asyncio.sleep(0.3)
            assert len(backend.prompts) == in_flight + 1
            assert len(encoding) == in_flight
        finally:
            gate.set()

        async def all_completed() -> bool:
            rows = [await generator.service.queue.get(video.id) for video in videos]
            return all(row.status == models.COMPLETED for row in rows)

        await wait_until(all_completed, limit=60)
        assert len(backend.prompts) == 4
