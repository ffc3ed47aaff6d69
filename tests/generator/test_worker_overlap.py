"""A worker renders the next job while earlier ones encode, up to GENERATOR_ENCODES_IN_FLIGHT of them: the GPU
waits only when every encode slot is busy (measured on an H100: one slot left the GPU idle 64 % of a full queue
when encoding took longer than rendering). Within one job the MP4 encodes beside the previews and the tail. The
next job is claimed, and its inputs loaded, while the current one renders its last stretch."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from generator import models
from generator.media import EncodeError, tails, writing
from generator.service import start_generator
from tests.generator.test_extensions import extend
from tests.support.generator_service import (
    SlowBackend,
    generator_settings,
    probe_mp4,
    running_generator,
    sdk_client,
    tiny_backend,
    wait_until,
)


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_the_next_render_waits_only_when_every_encode_slot_is_busy(tmp_path, monkeypatch, in_flight):
    gate = threading.Event()
    encoding: list[str] = []
    real_finish = writing.Mp4Writer.finish

    def held_finish(writer, max_bytes):  # the MP4 encoded along the render is finished after it
        encoding.append(str(writer.path))
        gate.wait(timeout=60)
        return real_finish(writer, max_bytes)

    monkeypatch.setattr(writing.Mp4Writer, "finish", held_finish)
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
            # Nor was a job claimed ahead: it would hold its lease while waiting, where another host could take it.
            statuses = [(await generator.service.queue.get(video.id)).status for video in videos]
            assert statuses.count(models.QUEUED) == 4 - (in_flight + 1)
        finally:
            gate.set()

        async def all_completed() -> bool:
            rows = [await generator.service.queue.get(video.id) for video in videos]
            return all(row.status == models.COMPLETED for row in rows)

        await wait_until(all_completed, limit=60)
        assert len(backend.prompts) == 4


async def test_the_previews_and_tail_are_written_while_the_mp4_encodes(tmp_path, monkeypatch):
    tail_written = threading.Event()
    real_finish, real_save_tail = writing.Mp4Writer.finish, tails.save_tail

    def finish_after_the_tail(writer, max_bytes):
        # One after the other, the tail would wait for the MP4 and the MP4 for the tail: the test times out.
        assert tail_written.wait(timeout=30), "the tail was not written while the MP4 was encoding"
        return real_finish(writer, max_bytes)

    def save_tail(frames, path, fps):
        written = real_save_tail(frames, path, fps)
        tail_written.set()
        return written

    monkeypatch.setattr(writing.Mp4Writer, "finish", finish_after_the_tail)
    monkeypatch.setattr(tails, "save_tail", save_tail)
    async with running_generator(tmp_path / "generator", tiny_backend()) as generator, sdk_client(generator) as client:
        video = await client.videos.create_and_poll(prompt="a lighthouse at dusk", seconds="1", poll_interval_ms=50)
        assert video.status == "completed"
        row = await generator.service.queue.get(video.id)
        assert row.timings["encode_s"] > 0


async def test_a_failed_mp4_fails_the_job_only_after_the_other_files_are_written(tmp_path, monkeypatch):
    real_save_tail = tails.save_tail
    finished: list[str] = []

    def failing_finish(writer, max_bytes):
        raise EncodeError("cannot fit under the cap")

    def slow_save_tail(frames, path, fps):
        threading.Event().wait(0.5)  # still writing when the MP4 has already failed
        written = real_save_tail(frames, path, fps)
        finished.append("tail")
        return written

    monkeypatch.setattr(writing.Mp4Writer, "finish", failing_finish)
    monkeypatch.setattr(tails, "save_tail", slow_save_tail)
    async with running_generator(tmp_path / "generator", tiny_backend()) as generator, sdk_client(generator) as client:
        video = await client.videos.create_and_poll(prompt="a lighthouse at dusk", seconds="1", poll_interval_ms=50)
        assert video.status == "failed" and "cannot fit under the cap" in video.error.message
        assert finished == ["tail"]  # the job ended after the second thread had finished writing


class HeldLastStep:
    """Wraps a backend: a render whose prompt has `word` in it waits for `start` before its first step and for
    `last_step` (up to `wait` seconds) before reporting its last one. Records whether `last_step` came in time."""

    def __init__(self, inner, word: str, wait: float = 10.0) -> None:
        self.inner, self.profile, self.word, self.wait = inner, inner.profile, word, wait
        self.start, self.last_step = threading.Event(), threading.Event()
        self.in_time: list[bool] = []

    def render(self, request, on_step=None):
        if self.word not in request.prompt:
            return self.inner.render(request, on_step)
        assert self.start.wait(timeout=60)

        def held_step(step: int, total: int) -> None:
            if step == total:
                self.in_time.append(self.last_step.wait(timeout=self.wait))
            if on_step is not None:
                on_step(step, total)

        return self.inner.render(request, held_step)


async def test_the_next_jobs_inputs_are_loaded_while_the_current_one_renders(tmp_path, monkeypatch):
    backend = HeldLastStep(tiny_backend(), word="hold")
    real_load_tail = tails.load_tail

    def load_tail(path):
        tail = real_load_tail(path)
        backend.last_step.set()
        return tail

    monkeypatch.setattr(tails, "load_tail", load_tail)
    async with running_generator(tmp_path, backend) as generator, sdk_client(generator) as client:
        parent = await client.videos.create_and_poll(prompt="a kite", seconds="1", poll_interval_ms=50)
        held = await client.videos.create(prompt="hold the camera still", seconds="1")
        extension = await extend(client, parent.id, "the string snaps", "1")
        backend.start.set()
        for video in (held, extension):
            finished = await client.videos.poll(video.id, poll_interval_ms=50)
            assert finished.status == "completed", finished.error
        # Claimed ahead, then its own turn began (from then a lost worker would have counted against it).
        row = await generator.service.queue.get(extension.id)
        assert (row.claimed_ahead, row.unblamed_attempts, row.attempts) == (False, 0, 1)
    # The extension's parent tail was read before the held render's last step: the render did not wait for it.
    assert backend.in_time == [True]


async def test_a_job_claimed_ahead_goes_back_to_the_queue_when_the_worker_stops(tmp_path):
    backend = HeldLastStep(tiny_backend(), word="hold", wait=60)
    running = await start_generator(generator_settings(tmp_path), backend_factory=lambda _settings: backend)
    try:
        async with sdk_client(running) as client:
            held = await client.videos.create(prompt="hold the camera still", seconds="1")
            waiting = await client.videos.create(prompt="a lighthouse at dusk", seconds="1")
            backend.start.set()
            worker = running.service.workers[0]
            await wait_until(lambda: worker.status.next_job_id == waiting.id)
            assert (await running.service.health())["workers"][0]["next_job"] == waiting.id
            assert (await running.service.queue.get(waiting.id)).claimed_ahead  # its turn has not begun
    finally:
        stopping = asyncio.create_task(running.stop())
        await asyncio.sleep(0.2)
        backend.last_step.set()  # the held render reaches its next step, sees the stop and ends
        await stopping
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as reopened:
        for video in (held, waiting):
            row = await reopened.service.queue.get(video.id)
            assert (row.status, row.attempts, row.lease_owner, row.claimed_ahead) == (models.QUEUED, 0, None, False)


class SegmentsAfterWrites:
    """Wraps a backend: every pipeline call after a video's first waits (up to 10 s) until the MP4 writer has taken
    frames since the call before, and records whether it did. With `fail_at`, that call fails instead."""

    def __init__(self, inner, fail_at: int | None = None) -> None:
        self.inner, self.profile, self.fail_at = inner, inner.profile, fail_at
        self.calls = 0
        self.written = threading.Event()
        self.in_time: list[bool] = []

    def render(self, request, on_step=None):
        self.calls += 1
        if self.calls > 1:
            self.in_time.append(self.written.wait(timeout=10))
            self.written.clear()
        if self.calls == self.fail_at:
            raise RuntimeError("the GPU fell over")
        return self.inner.render(request, on_step)


def watch_writes(monkeypatch, backend: SegmentsAfterWrites) -> list[int]:
    """Patch the MP4 writer to tell `backend` of each part; returns the part sizes as they come."""
    parts: list[int] = []
    real_write = writing.Mp4Writer.write

    def write(writer, frames):
        real_write(writer, frames)
        parts.append(len(frames))
        backend.written.set()

    monkeypatch.setattr(writing.Mp4Writer, "write", write)
    return parts


async def test_a_long_videos_mp4_is_encoded_while_its_later_segments_render(tmp_path, monkeypatch):
    backend = SegmentsAfterWrites(tiny_backend())
    parts = watch_writes(monkeypatch, backend)
    async with running_generator(tmp_path, backend) as generator, sdk_client(generator) as client:
        video = await client.videos.create_and_poll(prompt="a long drive along the coast", seconds="6")
        assert video.status == "completed", video.error
        frames = probe_mp4((await client.videos.download_content(video.id)).read())["frames"]
    assert backend.calls >= 3 and backend.in_time == [True] * (backend.calls - 1)  # each segment's frames went on
    assert sum(parts) == len(frames) == 6 * 8 and len(parts) == backend.calls


async def test_a_render_that_fails_midway_leaves_no_partial_mp4(tmp_path, monkeypatch):
    backend = SegmentsAfterWrites(tiny_backend(), fail_at=3)
    watch_writes(monkeypatch, backend)
    async with running_generator(tmp_path, backend) as generator, sdk_client(generator) as client:
        video = await client.videos.create_and_poll(prompt="a long drive along the coast", seconds="6")
        assert video.status == "failed" and "the GPU fell over" in video.error.message
        assert list(generator.service.store.job_dir(video.id).rglob("*")) == []


async def test_an_mp4_over_the_byte_cap_is_encoded_again_smaller_without_repeating_the_first_encode(
    tmp_path, monkeypatch
):
    attempts: list[dict] = []
    real_attempt = writing.encode_attempt

    def counted(frames, fps, path, width, height, preset, **rate):
        attempts.append(rate)
        return real_attempt(frames, fps, path, width, height, preset, **rate)

    monkeypatch.setattr(writing, "encode_attempt", counted)
    async with running_generator(tmp_path) as generator, sdk_client(generator) as client:
        video = await client.videos.create_and_poll(
            prompt="detailed noise", seconds="2", size="256x256", extra_body={"max_bytes": 65536}, poll_interval_ms=50
        )
        assert video.status == "completed", video.error
        assert len((await client.videos.download_content(video.id)).read()) <= 65536
    # The CRF encode was the one made along the render; only the capped ones ran afterwards.
    assert attempts and all(rate.get("crf") is None and rate.get("bitrate") for rate in attempts)


async def test_an_extensions_new_part_is_encoded_while_it_renders_and_follows_the_parents_stream(tmp_path, monkeypatch):
    backend = SegmentsAfterWrites(tiny_backend())
    parts = watch_writes(monkeypatch, backend)
    async with running_generator(tmp_path, backend) as generator, sdk_client(generator) as client:
        parent = await client.videos.create_and_poll(prompt="a kite", seconds="1", poll_interval_ms=50)
        parent_frames = probe_mp4((await client.videos.download_content(parent.id)).read())["frames"]
        parts.clear()
        encodes_after: list[object] = []  # whole-clip encodes once the render is over: none, the part is used
        monkeypatch.setattr(writing, "encode_attempt", lambda *args, **kwargs: encodes_after.append(args))
        child = await extend(client, parent.id, "the string snaps", "3")
        child = await client.videos.poll(child.id, poll_interval_ms=50)
        assert child.status == "completed", child.error
        frames = probe_mp4((await client.videos.download_content(child.id)).read())["frames"]
        folder = generator.service.store.job_dir(child.id)
        left = sorted(path.name for path in folder.rglob("*") if path.is_file())
    assert backend.calls >= 3 and backend.in_time == [True] * (backend.calls - 1)  # each segment's frames went on
    assert len(parts) == backend.calls - 1  # the extension's segments, each its own part
    assert sum(parts) == 3 * 8 and len(frames) == 4 * 8
    assert np.array_equal(frames[:8], parent_frames)  # the parent's stream, continued as it is
    assert left == ["spritesheet.jpg", "tail.mkv", "thumbnail.webp", "video.mp4"]  # the new part file is gone
    assert encodes_after == []
