"""kill -9 of a generator mid-render: after a restart every job completes, none is lost, none is finished twice."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import openai

from tests.support.generator_service import probe_mp4, wait_until
from tests.support.processes import ProcessFactory, job_folder_contents, job_rows

FILES_OF_A_COMPLETED_JOB = {"video.mp4", "thumbnail.webp", "spritesheet.jpg", "tail.mkv"}
# Long enough that the tiny model is still rendering while a test kills its process (15 s at 40 steps took ~1 s).
LONG_CLIP = {"seconds": "30", "extra_body": {"num_inference_steps": 100, "seed": 7}}
RENDER_SHARE = 90  # progress below this is the render; above it, encoding


def client_for(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=30)


async def test_a_job_killed_mid_render_completes_once_after_a_restart(
    generator_processes: ProcessFactory, tmp_path: Path
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'generator.db'}"
    generator = generator_processes("crash", DATABASE_URL=database_url, GENERATOR_LEASE_SECONDS=2).start()

    async with client_for(generator.base_url) as client:
        long = await client.videos.create(prompt="a long take of a river at dawn", **LONG_CLIP)
        waiting = [await client.videos.create(prompt=f"a short clip {n}", seconds="1") for n in range(2)]

        async def rendering() -> bool:
            video = await client.videos.retrieve(long.id)
            return video.status == "in_progress" and 0 < video.progress < RENDER_SHARE

        await wait_until(rendering, limit=60)
    generator.kill()

    before = await job_rows(database_url)
    assert set(before) == {long.id, *(video.id for video in waiting)}
    assert before[long.id].status == "in_progress", "the kill must land while the clip renders"
    assert before[long.id].progress < RENDER_SHARE
    assert (before[long.id].attempts, before[long.id].lease_owner) == (1, "crash/0")
    # The worker claims its next job in the last second of a render: if the kill landed there, that job died with it.
    claimed_ahead = {video.id for video in waiting if before[video.id].status == "in_progress"}
    assert len(claimed_ahead) <= 1
    for video in waiting:
        expected = (1, "crash/0") if video.id in claimed_ahead else (0, None)
        assert (before[video.id].attempts, before[video.id].lease_owner) == expected
        assert before[video.id].status in ("queued", "in_progress")

    generator.start()  # the same process again: same worker id, database and files
    async with client_for(generator.base_url) as client:
        finished = await asyncio.wait_for(
            asyncio.gather(*(client.videos.poll(v.id, poll_interval_ms=100) for v in [long, *waiting])), 90
        )
        assert [video.status for video in finished] == ["completed"] * 3
        clip = probe_mp4((await client.videos.download_content(long.id)).read())
    assert len(clip["frames"]) == int(LONG_CLIP["seconds"]) * 8  # the whole clip, at the tiny model's 8 fps

    after = await job_rows(database_url)
    assert set(after) == set(before), "no job appeared or vanished"
    assert {row.status for row in after.values()} == {"completed"}
    assert after[long.id].attempts == 2  # the killed attempt, then the one that finished
    assert [after[video.id].attempts for video in waiting] == [2 if v.id in claimed_ahead else 1 for v in waiting]
    for row in after.values():
        finished = {kind: count for kind, count in row.artifacts.items() if kind != "preview"}  # a preview may stay
        assert finished == {"video": 1, "thumbnail": 1, "spritesheet": 1, "tail": 1}, row.id
        assert row.lease_owner is None

    videos = tmp_path / "processes" / "crash" / "videos"
    assert sorted(folder.name for folder in videos.iterdir()) == sorted(after)
    for folder in videos.iterdir():
        attempt = f"attempt-{after[folder.name].attempts}"
        assert job_folder_contents(folder) == {attempt: FILES_OF_A_COMPLETED_JOB}, "one set of files, no leftovers"

    log = generator.log()
    assert len(re.findall(rf"rendering {long.id} \(attempt 1\)", log)) == 1
    assert len(re.findall(rf"rendering {long.id} \(attempt 2\)", log)) == 1
    assert "lease of crash/0 expired, taking it over" in log
    for video_id in after:
        assert len(re.findall(rf"{video_id} completed in", log)) == 1, f"{video_id} finished more than once"
