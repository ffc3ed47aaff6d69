"""The Videos API through the unmodified openai SDK, against a running generator on the tiny model."""

from __future__ import annotations

import asyncio
import json
import threading

import aiohttp
import numpy as np
import openai
import pytest

from generator.pipelines.tiny import save_tiny_pipeline
from generator.service import start_generator
from tests.support.generator_service import (
    RecordingBackend,
    SlowBackend,
    generator_settings,
    poll,
    probe_mp4,
    running_generator,
    sdk_client,
    tiny_backend,
    wait_until,
)
from tests.support.processes import job_folder_contents


async def test_create_and_poll_renders_a_clip_the_sdk_can_download(client):
    video = await client.videos.create_and_poll(prompt="a cat surfing at sunset", seconds="4", poll_interval_ms=50)
    assert video.status == "completed"
    assert video.progress == 100
    assert video.seconds == "4"
    assert video.size == "720x1280"  # no size asked: the spec's default
    assert video.model_extra["rendered_size"] == "64x96"  # the tiny model's native portrait size
    assert video.completed_at >= video.created_at
    assert video.model == "tiny"

    clip = probe_mp4((await client.videos.download_content(video.id)).read())
    assert clip["codec"] == "h264"
    assert clip["pix_fmt"] == "yuv420p"
    assert clip["fps"] == 8
    assert len(clip["frames"]) == 4 * 8
    assert clip["faststart"]

    thumbnail = (await client.videos.download_content(video.id, variant="thumbnail")).read()
    assert thumbnail[:4] == b"RIFF" and thumbnail[8:12] == b"WEBP"
    spritesheet = (await client.videos.download_content(video.id, variant="spritesheet")).read()
    assert spritesheet[:3] == b"\xff\xd8\xff"


async def test_retrieve_reports_progress_and_queue_position(tmp_path):
    gate = threading.Event()  # the first job renders only when the test says so: positions are certain
    async with (
        running_generator(tmp_path, SlowBackend(tiny_backend(), gate=gate)) as running,
        sdk_client(running) as client,
    ):
        try:
            first = await client.videos.create(prompt="first", seconds="2")
            await wait_until(lambda: running.service.workers[0].status.job_id == first.id)
            second = await client.videos.create(prompt="second", seconds="2")
            third = await client.videos.create(prompt="third", seconds="2")
            held = await client.videos.retrieve(first.id)
            assert held.status == "in_progress" and held.model_extra["queue_position"] is None
            assert (second.status, second.model_extra["queue_position"]) == ("queued", 1)
            assert (third.status, third.model_extra["queue_position"]) == ("queued", 2)
        finally:
            gate.set()
        done = await poll(client, third.id)
        assert done.status == "completed" and done.progress == 100
        assert done.model_extra["queue_position"] is None
        assert [(await client.videos.retrieve(v.id)).status for v in (first, second)] == ["completed"] * 2


async def test_a_job_far_back_in_the_queue_is_told_to_poll_less_often(tmp_path):
    """openai-poll-after-ms: half a second while a job renders, a quarter of the estimated wait for a queued job
    (at least half a second, at most five), none once it has ended; the SDK's own poll helper waits that long."""
    async with (
        running_generator(
            tmp_path, SlowBackend(tiny_backend(), step_delay=1.0), GENERATOR_MAX_QUEUE_PER_USER=30
        ) as running,
        sdk_client(running) as client,
    ):
        steps = {"extra_body": {"num_inference_steps": 3}}  # 3 s a render

        async def hint(video_id: str) -> tuple[dict, str | None]:
            response = await client.videos.with_raw_response.retrieve(video_id)
            return json.loads(response.text), response.headers.get("openai-poll-after-ms")

        finished = await poll(client, (await client.videos.create(prompt="first", seconds="2", **steps)).id)
        assert (await hint(finished.id))[1] is None
        rendering = await client.videos.create(prompt="second", seconds="2", **steps)
        await wait_until(lambda: running.service.workers[0].status.job_id == rendering.id)
        body, after = await hint(rendering.id)
        assert (body["status"], after) == ("in_progress", "500")
        queued = [await client.videos.create(prompt=f"queued {n}", seconds="2", **steps) for n in range(21)]
        # Past the typical render time's one-second cache: read afresh with 21 unrendered jobs the newest. It comes
        # from the completed job, not from the newest jobs (which have not run).
        await asyncio.sleep(1.1)
        for video, least in ((queued[1], 750), (queued[-1], 5000)):
            body, after = await hint(video.id)
            assert body["status"] == "queued" and body["eta_seconds"] is not None, body
            assert after == str(round(min(5000, max(500, body["eta_seconds"] * 1000 / 4)))), body
            assert int(after) >= least, body  # each job ahead is a 3 s render
        for video in queued:
            await client.videos.delete(video.id)


async def test_the_eta_of_a_queued_job_counts_the_jobs_rendering_at_once(tmp_path):
    """Two jobs rendering at once (two workers, here or on other hosts of a fleet): the queue moves two jobs per
    typical render, so the jobs at positions 1 and 2 are done after one, 3 and 4 after two. A job claimed ahead
    only waits for its worker's GPU and does not count."""
    async with (
        running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_MAX_QUEUE_PER_USER=30) as running,
        sdk_client(running) as client,
    ):
        queue = running.service.queue
        videos = [await client.videos.create(prompt=f"clip {n}", seconds="2") for n in range(8)]
        done = await queue.claim("host-a")
        assert await queue.complete(done.lease, artifacts=[], seconds="2", timings={"render_s": 3.5, "encode_s": 0.5})
        for host in ("host-a", "host-b"):
            assert await queue.claim(host) is not None
        ahead = await queue.claim("host-a")
        assert await queue.wait_for_turn(ahead.lease)

        async def etas() -> list[tuple[int, float]]:
            await asyncio.sleep(1.1)  # past the one-second cache of the queue's pace
            found = [await client.videos.retrieve(video.id) for video in videos]
            return [
                (v.model_extra["queue_position"], v.model_extra["eta_seconds"]) for v in found if v.status == "queued"
            ]

        assert await etas() == [(1, 4.0), (2, 4.0), (3, 8.0), (4, 8.0)]


def test_the_poll_hint_is_capped_at_five_seconds():
    from generator.api import poll_after_ms
    from generator.models import IN_PROGRESS, QUEUED, VideoJob
    from generator.videos import VideoView

    assert poll_after_ms(VideoView(VideoJob(status=QUEUED), queue_position=500, eta_seconds=900.0)) == 5000
    assert poll_after_ms(VideoView(VideoJob(status=QUEUED), queue_position=3, eta_seconds=None)) == 500
    assert poll_after_ms(VideoView(VideoJob(status=IN_PROGRESS), queue_position=None, eta_seconds=900.0)) == 500


async def test_extra_fields_travel_in_extra_body(client):
    video = await client.videos.create(
        prompt="a lighthouse in a storm",
        seconds="2",
        size="64x96",
        extra_body={
            "seed": 1234,
            "negative_prompt": "blurry",
            "num_inference_steps": 1,
            "guidance_scale": 1.0,
            "user": "discord:42",
        },
    )
    assert video.model_extra["seed"] == 1234
    assert video.model_extra["negative_prompt"] == "blurry"
    assert video.model_extra["user"] == "discord:42"
    assert video.size == "64x96"
    assert (await poll(client, video.id)).status == "completed"


async def test_same_seed_renders_the_same_frames(tmp_path):
    recorder = RecordingBackend(tiny_backend())
    async with running_generator(tmp_path, backend=recorder) as running, sdk_client(running) as client:
        a = await client.videos.create(prompt="waves", seconds="2", extra_body={"seed": 7})
        b = await client.videos.create(prompt="waves", seconds="2", extra_body={"seed": 7})
        c = await client.videos.create(prompt="waves", seconds="2", extra_body={"seed": 8})
        for video in (a, b, c):
            assert (await poll(client, video.id)).status == "completed"
        first, second, other = recorder.outputs
        assert np.array_equal(first, second)
        assert not np.array_equal(first, other)
        # The MP4s match up to encoder noise (x264's frame threads are not bit-exact on a busy CPU).
        frames_a = probe_mp4((await client.videos.download_content(a.id)).read())["frames"]
        frames_b = probe_mp4((await client.videos.download_content(b.id)).read())["frames"]
        assert np.abs(frames_a.astype(int) - frames_b).mean() < 1.0


async def test_json_bodies_work_as_well_as_multipart(tiny_generator):
    async with aiohttp.ClientSession() as http:
        body = {"prompt": "json body", "seconds": 2}
        async with http.post(f"{tiny_generator.base_url}/videos", json=body) as response:
            assert response.status == 200
            body = await response.json()
    assert body["object"] == "video" and body["seconds"] == "2"
    assert body["status"] in ("queued", "in_progress")  # the idle worker may claim it before the answer is built


@pytest.mark.parametrize(
    ("size", "expected"),
    [("1280x720", "96x64"), ("720x1280", "64x96"), ("1024x1024", "64x64"), ("128x64", "128x64"), ("100x70", "96x64")],
)
async def test_sizes_map_onto_what_the_model_renders(client, size, expected):
    video = await client.videos.create(prompt="x", seconds="1", size=size)
    assert video.size == size  # as asked
    assert video.model_extra["rendered_size"] == expected
    await client.videos.delete(video.id)


async def test_listing_pages_through_every_video(client):
    ids = [(await client.videos.create(prompt=f"clip {i}", seconds="1")).id for i in range(5)]
    page = await client.videos.list(limit=2)
    assert [v.id for v in page.data] == ids[::-1][:2]
    assert page.has_more
    listed = [video.id async for video in client.videos.list(limit=2)]
    assert listed == ids[::-1]
    ascending = [video.id async for video in client.videos.list(limit=3, order="asc")]
    assert ascending == ids


async def test_delete_cancels_a_queued_job(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running, sdk_client(running) as client:
        video = await client.videos.create(prompt="never rendered", seconds="1")
        deleted = await client.videos.delete(video.id)
        assert deleted.deleted and deleted.id == video.id
        with pytest.raises(openai.NotFoundError):
            await client.videos.retrieve(video.id)
        assert await running.service.queue.counts() == {"queued": 0, "in_progress": 0}


async def test_delete_cancels_a_running_job_between_steps(tmp_path):
    slow = SlowBackend(tiny_backend(), step_delay=0.3)
    async with running_generator(tmp_path, backend=slow) as running, sdk_client(running) as client:
        video = await client.videos.create(prompt="slow", seconds="4")
        await wait_until(lambda: running.service.workers[0].status.job_id == video.id)
        await client.videos.delete(video.id)
        job = None

        async def finished():
            nonlocal job
            job = await running.service.queue.get(video.id, include_deleted=True)
            return job.status in ("cancelled", "completed", "failed")

        await wait_until(finished, limit=10)
        assert job.status == "cancelled"
        assert not (running.service.store.root / video.id / "video.mp4").exists()
        after = await client.videos.create_and_poll(prompt="next one", seconds="1", poll_interval_ms=50)
        assert after.status == "completed"


async def test_delete_removes_a_finished_video_and_its_files(tiny_generator, client):
    video = await client.videos.create_and_poll(prompt="keep briefly", seconds="1", poll_interval_ms=50)
    folder = tiny_generator.service.store.root / video.id
    assert (folder / "attempt-1" / "video.mp4").exists()
    await client.videos.delete(video.id)
    assert not folder.exists()
    with pytest.raises(openai.NotFoundError):
        await client.videos.download_content(video.id)


async def test_max_bytes_caps_the_mp4(client):
    video = await client.videos.create(
        prompt="detailed noise", seconds="4", size="256x256", extra_body={"max_bytes": 65536}
    )
    video = await poll(client, video.id)
    assert video.status == "completed"
    data = (await client.videos.download_content(video.id)).read()
    assert len(data) <= 65536
    assert len(probe_mp4(data)["frames"]) == 32


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 32_001}, "prompt"),
        ({"prompt": "x", "seconds": "abc"}, "seconds"),
        ({"prompt": "x", "seconds": "0"}, "seconds"),
        ({"prompt": "x", "seconds": "61"}, "seconds"),
        ({"prompt": "x", "size": "huge"}, "size"),
        ({"prompt": "x", "size": "9000x9000"}, "size"),
        ({"prompt": "x", "model": "some-other-model"}, "model"),
        ({"prompt": "x", "extra_body": {"seed": -1}}, "seed"),
        ({"prompt": "x", "extra_body": {"seed": "lucky"}}, "seed"),
        ({"prompt": "x", "extra_body": {"num_inference_steps": 1000}}, "num_inference_steps"),
        ({"prompt": "x", "extra_body": {"max_bytes": 10}}, "max_bytes"),
        ({"prompt": "x", "extra_body": {"colour": "blue"}}, "colour"),
    ],
)
async def test_invalid_requests_get_400_naming_the_parameter(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as raised:
        await client.videos.create(**kwargs)
    error = raised.value.body
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"]


async def test_missing_prompt_in_json_is_named(tiny_generator):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{tiny_generator.base_url}/videos", json={"seconds": 4}) as response:
            assert response.status == 400
            body = await response.json()
    assert body["error"]["param"] == "prompt"
    assert body["error"]["code"] == "missing_required_parameter"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/videos/video_00000000000000000000000000000000", {}, 404),
        ("GET", "/videos/..%2F..%2Fetc%2Fpasswd", {}, 404),
        ("GET", "/videos/video_%00", {}, 404),
        ("DELETE", "/videos/not-an-id", {}, 404),
        ("GET", "/videos/not-an-id/content", {}, 404),
        ("GET", "/nothing/here", {}, 404),
        ("PUT", "/videos", {}, 405),
        ("POST", "/videos", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/videos", {"data": b"[1, 2]", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/videos", {"data": b"prompt", "headers": {"Content-Type": "text/plain"}}, 400),
        ("GET", "/videos?limit=-1", {}, 400),
        ("GET", "/videos?limit=101", {}, 400),
        ("GET", "/videos?limit=many", {}, 400),
        ("GET", "/videos?order=sideways", {}, 400),
        ("GET", "/videos?after=../x", {}, 400),
    ],
)
async def test_bad_requests_get_openai_shaped_errors(tiny_generator, method, path, kwargs, status):
    async with aiohttp.ClientSession() as http:
        async with http.request(method, tiny_generator.base_url + path, **kwargs) as response:
            assert response.status == status
            body = json.loads(await response.text())
    assert set(body["error"]) == {"message", "type", "param", "code"}


async def test_content_of_an_unfinished_video_is_refused(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running, sdk_client(running) as client:
        video = await client.videos.create(prompt="waiting", seconds="1")
        with pytest.raises(openai.BadRequestError) as raised:
            await client.videos.download_content(video.id)
        assert raised.value.body["code"] == "video_not_ready"
        with pytest.raises(openai.BadRequestError):
            await client.videos.download_content(video.id, variant="poster")  # type: ignore[arg-type]


async def test_oversized_body_is_refused_with_413(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_MAX_REQUEST_BYTES=4096) as running:
        async with aiohttp.ClientSession() as http:
            form = aiohttp.FormData()
            form.add_field("prompt", "x")
            form.add_field("input_reference", b"\0" * 10_000, filename="a.png", content_type="image/png")
            async with http.post(f"{running.base_url}/videos", data=form) as response:
                assert response.status == 413
                assert (await response.json())["error"]["code"] == "request_too_large"
            async with http.post(f"{running.base_url}/videos", json={"prompt": "y" * 10_000}) as response:
                assert response.status == 413


async def test_full_queue_answers_429(tmp_path):
    async with (
        running_generator(
            tmp_path, GENERATOR_WORKERS=0, GENERATOR_MAX_QUEUE=2, GENERATOR_MAX_QUEUE_PER_USER=5
        ) as running,
        sdk_client(running) as client,
    ):
        await client.videos.create(prompt="one", seconds="1")
        await client.videos.create(prompt="two", seconds="1")
        with pytest.raises(openai.RateLimitError):
            await client.videos.create(prompt="three", seconds="1")


async def test_one_user_cannot_fill_the_queue(tmp_path):
    async with (
        running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_MAX_QUEUE_PER_USER=2) as running,
        sdk_client(running) as client,
    ):
        for _ in range(2):
            await client.videos.create(prompt="mine", seconds="1", extra_body={"user": "alice"})
        with pytest.raises(openai.RateLimitError) as raised:
            await client.videos.create(prompt="mine again", seconds="1", extra_body={"user": "alice"})
        assert "alice" in raised.value.body["message"]
        await client.videos.create(prompt="someone else", seconds="1", extra_body={"user": "bob"})


async def test_api_key_is_required_when_set(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_API_KEY="s3cret-key") as running:
        async with sdk_client(running, api_key="wrong") as wrong:
            with pytest.raises(openai.AuthenticationError):
                await wrong.videos.list()
        async with sdk_client(running, api_key="s3cret-key") as right:
            assert (await right.videos.list()).data == []
        async with aiohttp.ClientSession() as http:
            async with http.get(running.base_url.replace("/v1", "/healthz")) as response:
                assert response.status == 200


async def test_health_reports_model_queue_and_workers(tiny_generator, client):
    await client.videos.create_and_poll(prompt="warm up", seconds="1", poll_interval_ms=50)
    async with aiohttp.ClientSession() as http:
        async with http.get(tiny_generator.base_url.replace("/v1", "/healthz")) as response:
            report = await response.json()
    assert report["status"] == "ok"
    assert report["model"] == "tiny"
    assert report["queue"] == {"queued": 0, "in_progress": 0}
    assert report["workers"][0]["jobs_done"] >= 1


async def test_out_of_memory_fails_the_job_and_the_worker_carries_on(tmp_path):
    import torch

    faulty = SlowBackend(tiny_backend(), fail_on={"enormous": torch.cuda.OutOfMemoryError("CUDA out of memory")})
    async with running_generator(tmp_path, backend=faulty) as running, sdk_client(running) as client:
        failed = await client.videos.create_and_poll(prompt="an enormous scene", seconds="1", poll_interval_ms=50)
        assert failed.status == "failed"
        assert failed.error.code == "out_of_memory"
        assert "memory" in failed.error.message
        fine = await client.videos.create_and_poll(prompt="a small scene", seconds="1", poll_interval_ms=50)
        assert fine.status == "completed"


async def test_real_loading_path_serves_a_saved_model_folder(tmp_path):
    """save_pretrained → GENERATOR_MODEL=<folder> → from_pretrained inside the service, no test backend."""
    folder = save_tiny_pipeline(tmp_path / "model")
    running = await start_generator(generator_settings(tmp_path / "data", GENERATOR_MODEL=str(folder)))
    try:
        async with sdk_client(running) as client:
            video = await client.videos.create_and_poll(prompt="from a folder", seconds="1", poll_interval_ms=50)
            assert video.status == "completed"
            assert video.model == str(folder)
            assert video.model_extra["rendered_size"] == "64x96"  # the saved profile travels with the folder
    finally:
        await running.stop()


async def test_a_retried_create_with_the_same_idempotency_key_returns_the_first_job(client, tiny_generator):
    headers = {"Idempotency-Key": "member-42-request-7"}
    first = await client.videos.create(prompt="once", seconds="1", extra_headers=headers)
    again = await client.videos.create(prompt="once", seconds="1", extra_headers=headers)
    other = await client.videos.create(prompt="once", seconds="1", extra_headers={"Idempotency-Key": "another"})
    assert again.id == first.id
    assert other.id != first.id
    listed = [video.id async for video in client.videos.list()]
    assert sorted(listed) == sorted({first.id, other.id})


async def test_an_idempotency_key_sent_again_with_another_request_is_refused(client, tiny_generator):
    headers = {"Idempotency-Key": "member-42-request-8"}
    first = await client.videos.create(prompt="a lighthouse", seconds="1", extra_headers=headers)
    await client.videos.poll(first.id, poll_interval_ms=50)  # a remix needs a finished source
    for other in (
        client.videos.create(prompt="a different lighthouse", seconds="1", extra_headers=headers),
        client.videos.remix(first.id, prompt="a lighthouse", extra_headers=headers),
    ):
        with pytest.raises(openai.UnprocessableEntityError) as raised:
            await other
        assert raised.value.body["code"] == "idempotency_key_reused" and first.id in raised.value.body["message"]
    assert [video.id async for video in client.videos.list()] == [first.id]  # nothing made, nothing left
    assert sorted(path.name for path in tiny_generator.service.store.root.iterdir()) == [first.id]


async def test_concurrent_retries_with_one_key_make_one_job(client):
    headers = {"Idempotency-Key": "burst"}
    videos = await asyncio.gather(
        *(client.videos.create(prompt="burst", seconds="1", extra_headers=headers) for _ in range(8))
    )
    assert len({video.id for video in videos}) == 1


async def test_a_malformed_idempotency_key_is_refused(client):
    with pytest.raises(openai.BadRequestError) as raised:
        await client.videos.create(prompt="x", seconds="1", extra_headers={"Idempotency-Key": "k" * 201})
    assert raised.value.body["param"] == "Idempotency-Key"


async def test_files_left_by_a_killed_attempt_are_cleaned_up(tmp_path):
    """A worker killed mid-encode leaves its attempt's folder (and perhaps a dot-named temporary file) behind;
    the attempt that finishes keeps only its own files."""
    gate = threading.Event()  # the leftovers are in place before the render starts
    async with (
        running_generator(tmp_path, SlowBackend(tiny_backend(), gate=gate)) as running,
        sdk_client(running) as client,
    ):
        try:
            video = await client.videos.create(prompt="a kite", seconds="1")
            store = running.service.store
            folder = store.job_dir(video.id)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / ".0123abcd.reference.png.4441.tmp").write_bytes(b"half a file")
            killed = store.attempt_dir(video.id, 7)
            killed.mkdir()
            (killed / "video.mp4").write_bytes(b"half an mp4")
        finally:
            gate.set()
        assert (await poll(client, video.id)).status == "completed"
    files = {"spritesheet.jpg", "tail.mkv", "thumbnail.webp", "video.mp4"}
    assert job_folder_contents(folder) == {"attempt-1": files}
