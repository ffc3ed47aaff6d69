"""How long after a job is completed the bot's `VideoClient.track` knows it: with held answers (`?wait=`, what
the bot does) and with plain polling every `--poll-interval` seconds (what it did before). The generator runs
the tiny model on the CPU in this process over real HTTP, each render stretched to 1–2 s (spread, so the ends
fall anywhere between two polls, as real renders' do); each job is followed from its creation. Prints one JSON
line. Needs no GPU: the figure is the service's, not the model's.

Then the cost of holding: `--jobs` jobs created at once and followed at once (each render 2 s), counting how often
the generator read a job to answer (or re-check) a status request.

    python bench/follow_latency.py [--jobs 10] [--poll-interval 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class StretchedBackend:
    """The tiny backend, each render first waiting the next of `delays` seconds."""

    def __init__(self, inner, delays: list[float]) -> None:
        self.inner, self.profile, self.delays = inner, inner.profile, list(delays)

    def render(self, request, on_step=None):
        time.sleep(self.delays.pop(0) if self.delays else 0.0)
        return self.inner.render(request, on_step)


@asynccontextmanager
async def tiny_generator(delays: list[float]):
    """The generator on the tiny model, in this process, with each render stretched by the next of `delays`."""
    from generator.pipelines import load_backend
    from generator.service import start_generator
    from generator.settings import GeneratorSettings

    with tempfile.TemporaryDirectory() as folder:
        settings = GeneratorSettings(
            _env_file=None,
            HANUL_DATA_DIR=folder,
            DATABASE_URL=f"sqlite+aiosqlite:///{folder}/bench.db",
            GENERATOR_MODEL="tiny",
            GENERATOR_DEVICE="cpu",
            GENERATOR_DTYPE="float32",
            GENERATOR_API_KEY="",
            GENERATOR_HOST="127.0.0.1",
            GENERATOR_PORT=0,
        )
        stretched = StretchedBackend(load_backend(settings), delays)
        running = await start_generator(settings, backend_factory=lambda _settings: stretched)
        try:
            yield running
        finally:
            await running.stop()


def order(index: int):
    from bot.videos import VideoOrder

    return VideoOrder(prompt=f"a paper boat, take {index}", seconds=1, size="1280x720")


async def follow(jobs: int, poll_interval: float, held: bool) -> list[float]:
    """Seconds from each job's completion (the worker's commit) to `track` returning it."""
    import bot.videos
    from bot.videos import VideoClient

    delays = [1.0 + (index * 0.618) % 1.0 for index in range(jobs)]  # golden-ratio steps: evenly spread
    async with tiny_generator(delays) as running:
        queue = running.service.queue
        completed: dict[str, float] = {}
        real_complete = queue.complete

        async def complete(lease, **kwargs):
            done = await real_complete(lease, **kwargs)
            completed[lease.video_id] = time.monotonic()
            return done

        queue.complete = complete  # type: ignore[method-assign]
        hold = bot.videos.HOLD_SECONDS
        bot.videos.HOLD_SECONDS = hold if held else 0.0  # 0: never ask for a hold, i.e. poll
        client = VideoClient(running.base_url)
        seen_after = []
        try:
            for index in range(jobs):
                video = await client.create(order(index))
                final = await client.track(video.id, poll_interval=poll_interval)
                assert final.status == "completed", final
                seen_after.append(time.monotonic() - completed[video.id])
        finally:
            bot.videos.HOLD_SECONDS = hold
            await client.close()
        return seen_after


async def reads_when_followed_at_once(jobs: int, poll_interval: float) -> tuple[int, float]:
    """Jobs of 2 s created at once and followed at once, as the bot follows a busy server's requests: how many
    times the generator read a job for a status request, and the seconds it took."""
    from bot.videos import VideoClient
    from generator.videos import Videos

    reads = 0
    real_view = Videos._view

    async def counted_view(self, job):
        nonlocal reads
        reads += 1
        return await real_view(self, job)

    Videos._view = counted_view  # type: ignore[method-assign]
    try:
        async with tiny_generator([2.0] * jobs) as running:
            client = VideoClient(running.base_url)
            try:
                videos = [await client.create(order(index)) for index in range(jobs)]
                started = time.monotonic()
                finals = await asyncio.gather(*(client.track(v.id, poll_interval=poll_interval) for v in videos))
                assert all(final.status == "completed" for final in finals), finals
                return reads, time.monotonic() - started
            finally:
                await client.close()
    finally:
        Videos._view = real_view  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=1.0, help="the bot's (HanulBot poll_interval)")
    args = parser.parse_args()
    figures: dict[str, object] = {"jobs": args.jobs, "poll_interval_s": args.poll_interval}
    for name, held in (("held", True), ("polling", False)):
        delays = asyncio.run(follow(args.jobs, args.poll_interval, held))
        figures[f"{name}_median_s"] = round(statistics.median(delays), 4)
        figures[f"{name}_max_s"] = round(max(delays), 4)
    reads, seconds = asyncio.run(reads_when_followed_at_once(args.jobs, args.poll_interval))
    figures.update({"at_once_job_reads": reads, "at_once_seconds": round(seconds, 2)})
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
