"""Two generator processes on one PostgreSQL database and one artifacts folder: each job is claimed and rendered
once, a killed process's lease is taken over, and every clip downloads the same from either process."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.reliability.test_crash_recovery import FILES_OF_A_COMPLETED_JOB, LONG_CLIP, RENDER_SHARE, client_for
from tests.support.generator_service import wait_until
from tests.support.processes import ProcessFactory, job_folder_contents, job_rows

SHORT_JOBS = 10


async def test_two_generators_share_the_queue_and_take_over_a_killed_ones_job(
    generator_processes: ProcessFactory, postgres_url: str, tmp_path: Path
) -> None:
    # One anonymous client sends all eleven jobs: its share of the queue (by address) must hold them.
    shared = {
        "DATABASE_URL": postgres_url,
        "GENERATOR_ARTIFACTS_DIR": tmp_path / "shared-videos",
        "GENERATOR_MAX_QUEUE_PER_USER": 100,
    }
    fleet = {name: generator_processes(name, **shared) for name in ("fleet-a", "fleet-b")}
    for process in fleet.values():
        process.launch()  # both migrate the same empty database at the same moment
    for process in fleet.values():
        process.wait_ready()
    clients = {name: client_for(process.base_url) for name, process in fleet.items()}
    a, b = clients["fleet-a"], clients["fleet-b"]

    long = await a.videos.create(prompt="a long take of a harbour", **LONG_CLIP)

    async def rendering() -> bool:
        video = await b.videos.retrieve(long.id)  # the other process sees the same row
        return video.status == "in_progress" and 0 < video.progress < RENDER_SHARE

    await wait_until(rendering, limit=60)
    shorts = [await (a, b)[n % 2].videos.create(prompt=f"short clip {n}", seconds="1") for n in range(SHORT_JOBS)]
    owner = (await job_rows(postgres_url))[long.id].lease_owner
    victim_name, survivor_name = ("fleet-a", "fleet-b") if owner == "fleet-a/0" else ("fleet-b", "fleet-a")
    assert owner == f"{victim_name}/0"

    fleet[victim_name].kill()
    held = {row.id for row in (await job_rows(postgres_url)).values() if row.lease_owner == owner}
    assert long.id in held

    survivor = clients[survivor_name]
    every = [long, *shorts]
    finished = await asyncio.wait_for(
        asyncio.gather(*(survivor.videos.poll(v.id, poll_interval_ms=100) for v in every)), 120
    )
    assert [video.status for video in finished] == ["completed"] * len(every)

    rows = await job_rows(postgres_url)
    assert sorted(rows) == sorted(video.id for video in every), "DB rows == created ids"
    for row in rows.values():
        assert row.status == "completed"
        assert row.attempts == (2 if row.id in held else 1), row.id
        finished = {kind: count for kind, count in row.artifacts.items() if kind != "preview"}  # a preview may stay
        assert finished == {"video": 1, "thumbnail": 1, "spritesheet": 1, "tail": 1}, row.id

    logs = "".join(process.log() for process in fleet.values())
    for video in every:
        # A job is rendered, or claimed ahead in another render's last second (and lost with a killed process).
        claims = set(re.findall(rf"(?:rendering|claimed) {video.id}(?: ahead)? \(attempt (\d)\)", logs))
        assert len(claims) == rows[video.id].attempts, f"{video.id} was claimed {len(claims)} times"
        renders = re.findall(rf"rendering {video.id} \(attempt (\d)\)", logs)
        assert len(renders) == len(set(renders)), f"{video.id} was rendered twice in one attempt"
        assert len(re.findall(rf"{video.id} completed in", logs)) == 1, f"{video.id} finished more than once"
    assert f"lease of {owner} expired, taking it over" in fleet[survivor_name].log()

    folders = list((tmp_path / "shared-videos").iterdir())
    assert sorted(folder.name for folder in folders) == sorted(rows)
    for folder in folders:
        assert job_folder_contents(folder) == {f"attempt-{rows[folder.name].attempts}": FILES_OF_A_COMPLETED_JOB}

    fleet[victim_name].start()  # back after the crash: it serves what the other one rendered
    clients[victim_name] = client_for(fleet[victim_name].base_url)
    for video in every:
        on_disk = (
            tmp_path / "shared-videos" / video.id / f"attempt-{rows[video.id].attempts}" / "video.mp4"
        ).read_bytes()
        for client in clients.values():
            assert (await client.videos.download_content(video.id)).read() == on_disk

    for client in clients.values():
        await client.close()
