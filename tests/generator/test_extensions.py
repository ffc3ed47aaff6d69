"""Extensions, remixes, image-to-video and long videos through the openai SDK (issue: extend, remix, i2v)."""

from __future__ import annotations

import asyncio
import base64
import io

import aiohttp
import numpy as np
import openai
import pytest
from PIL import Image

from generator.stitch import seam_report
from tests.support.generator_service import (
    HeldRenders,
    poll,
    probe_mp4,
    running_generator,
    sdk_client,
    tiny_backend,
    wait_until,
)

FPS = 8  # the tiny model's frame rate


async def extend(client: openai.AsyncOpenAI, parent_id: str, prompt: str, seconds: str, **extra):
    """The call that works with openai-python 3.x: the reference travels in extra_body (as form field video[id])."""
    return await client.videos.extend(
        prompt=prompt, seconds=seconds, video=openai.omit, extra_body={"video": {"id": parent_id}, **extra}
    )


async def frames_of(client: openai.AsyncOpenAI, video_id: str) -> np.ndarray:
    return probe_mp4((await client.videos.download_content(video_id)).read())["frames"]


async def picture(client: openai.AsyncOpenAI, video_id: str, variant: str) -> np.ndarray:
    data = (await client.videos.download_content(video_id, variant=variant)).read()
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def image_bytes(fmt: str, size=(96, 64), colour=(200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG header claiming width × height pixels, with a tiny compressed body: a bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 64)  # only the first rows; decoders give up or pad
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


async def test_extension_appends_new_frames_and_keeps_the_parent(client):
    parent = await client.videos.create_and_poll(prompt="a cat on a surfboard", seconds="2", poll_interval_ms=50)
    child = await poll(client, (await extend(client, parent.id, "a wave knocks it over", "3")).id)
    assert child.status == "completed"
    assert child.seconds == "5"  # the stitched total
    assert child.size == parent.size
    assert child.model_extra["parent_video_id"] == parent.id
    assert child.model_extra["kind"] == "extend"

    parent_frames = await frames_of(client, parent.id)
    child_frames = await frames_of(client, child.id)
    assert len(parent_frames) == 2 * FPS
    assert len(child_frames) == 5 * FPS
    # The parent's frames open the extension as they were, not re-encoded: no generation lost, none dropped or doubled.
    assert np.array_equal(child_frames[: len(parent_frames)], parent_frames)
    assert (await client.videos.retrieve(parent.id)).seconds == "2"  # the parent stays as it was
    # The previews show the whole video: the thumbnail is the parent's first frame, not the continuation's.
    thumbnail = await picture(client, child.id, "thumbnail")
    to_parent = np.abs(thumbnail.astype(int) - parent_frames[0]).mean()
    to_new = np.abs(thumbnail.astype(int) - child_frames[len(parent_frames)]).mean()
    assert to_parent < to_new / 2, (to_parent, to_new)


async def test_deleting_the_parent_while_its_extension_renders_loses_nothing(tmp_path):
    backend = HeldRenders(tiny_backend())
    backend.release.set()
    async with running_generator(tmp_path, backend) as running, sdk_client(running) as client:
        parent = await client.videos.create_and_poll(prompt="a kite", seconds="2", poll_interval_ms=50)
        parent_frames = await frames_of(client, parent.id)
        backend.started.clear()
        backend.release.clear()
        child = await extend(client, parent.id, "the string snaps", "1")
        await wait_until(backend.started.is_set)  # inputs read, rendering
        await client.videos.delete(parent.id)
        backend.release.set()
        child = await poll(client, child.id)
        assert child.status == "completed", child.error
        child_frames = await frames_of(client, child.id)
        assert len(child_frames) == 3 * FPS and np.array_equal(child_frames[: 2 * FPS], parent_frames)
        # Kept while the extension was unfinished (it might have been between its claim and reading them).
        assert await running.service.remove_files_no_longer_awaited() == [parent.id]
        assert not (running.service.store.root / parent.id).exists()


async def test_deleting_the_parent_while_its_extension_waits_in_the_queue_loses_nothing(tmp_path):
    backend = HeldRenders(tiny_backend())
    backend.release.set()
    async with running_generator(tmp_path, backend) as running, sdk_client(running) as client:
        service, folder = running.service, running.service.store.root
        parent = await client.videos.create_and_poll(prompt="a kite", seconds="2", poll_interval_ms=50)
        parent_frames = await frames_of(client, parent.id)
        backend.started.clear()
        backend.release.clear()
        await client.videos.create(prompt="a render that keeps the worker busy", seconds="1")
        await wait_until(backend.started.is_set)
        child = await extend(client, parent.id, "the string snaps", "1")  # waits: its inputs are not read yet
        await client.videos.delete(parent.id)
        with pytest.raises(openai.NotFoundError):
            await client.videos.retrieve(parent.id)  # gone for clients at once
        assert (folder / parent.id).exists()  # its files wait for the extension
        assert await service.remove_files_no_longer_awaited() == []
        backend.release.set()
        child = await poll(client, child.id)
        assert child.status == "completed", child.error
        child_frames = await frames_of(client, child.id)
        assert len(child_frames) == 3 * FPS and np.array_equal(child_frames[: 2 * FPS], parent_frames)
        assert await service.remove_files_no_longer_awaited() == [parent.id]
        assert not (folder / parent.id).exists()
        assert await service.queue.artifacts_of(parent.id) == []
        assert await service.remove_files_no_longer_awaited() == []


async def test_a_parent_squeezed_under_a_byte_cap_is_continued_as_it_is(client):
    parent = await client.videos.create_and_poll(
        prompt="detailed noise", seconds="2", size="256x256", extra_body={"max_bytes": 65536}, poll_interval_ms=50
    )
    assert parent.status == "completed", parent.error
    child = await poll(client, (await extend(client, parent.id, "more noise", "1")).id)
    assert child.status == "completed", child.error
    parent_frames = await frames_of(client, parent.id)
    child_frames = await frames_of(client, child.id)
    assert len(child_frames) == 3 * FPS
    # Its stream (a capped bitrate, with the parameter sets of a CRF encode) continued: not a generation lost.
    assert np.array_equal(child_frames[: len(parent_frames)], parent_frames)


async def test_seam_is_no_jumpier_than_the_clip_itself(client):
    parent = await client.videos.create_and_poll(prompt="a red balloon", seconds="2", poll_interval_ms=50)
    child = await poll(client, (await extend(client, parent.id, "it floats away", "2")).id)
    frames = await frames_of(client, child.id)
    report = seam_report(frames[: 2 * FPS], frames[2 * FPS :])
    # Random weights: neighbouring frames already differ a lot; the joint must not stand out from them.
    assert report.ratio < 1.5, report
    assert report.colour_jump < 2 * report.inner_colour_change + 2, report


async def test_an_extension_of_an_extension_keeps_the_lineage(client):
    first = await client.videos.create_and_poll(prompt="a fox in snow", seconds="1", poll_interval_ms=50)
    second = await poll(client, (await extend(client, first.id, "it runs", "1")).id)
    third = await poll(client, (await extend(client, second.id, "it jumps", "2")).id)
    assert third.status == "completed"
    assert third.seconds == "4"
    assert third.model_extra["parent_video_id"] == second.id
    assert second.model_extra["parent_video_id"] == first.id
    assert len(await frames_of(client, third.id)) == 4 * FPS


async def test_an_uploaded_mp4_can_be_extended(client):
    source = await client.videos.create_and_poll(prompt="clouds", seconds="2", poll_interval_ms=50)
    mp4 = (await client.videos.download_content(source.id)).read()
    child = await client.videos.extend(prompt="the sun comes out", seconds="1", video=("clip.mp4", mp4, "video/mp4"))
    child = await poll(client, child.id)
    assert child.status == "completed", child.error
    assert child.model_extra["parent_video_id"] is None
    assert len(await frames_of(client, child.id)) == 3 * FPS


async def test_remix_keeps_settings_and_seed_with_a_new_prompt(client):
    source = await client.videos.create_and_poll(
        prompt="a red car", seconds="2", size="64x96", extra_body={"seed": 99}, poll_interval_ms=50
    )
    remix = await poll(client, (await client.videos.remix(source.id, prompt="a blue car")).id)
    assert remix.status == "completed"
    assert remix.remixed_from_video_id == source.id
    assert remix.prompt == "a blue car"
    assert remix.model_extra["seed"] == 99
    assert (remix.size, remix.seconds) == (source.size, source.seconds)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
async def test_image_to_video_takes_a_reference_image(client, tiny_generator, fmt):
    data = image_bytes(fmt, size=(300, 200))
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}[fmt]
    video = await client.videos.create(
        prompt="the red square slides", seconds="1", input_reference=(f"ref.{fmt.lower()}", data, mime)
    )
    assert video.size == "1280x720"  # a 3:2 image picks the landscape size
    assert video.model_extra["rendered_size"] == "96x64"
    stored = tiny_generator.service.store.root / video.id / "reference.png"
    with Image.open(stored) as reference:
        assert reference.size == (96, 64)  # kept at the render size: the original is never decoded again
        assert reference.getpixel((10, 10))[0] > 150
    assert (await poll(client, video.id)).status == "completed"


async def test_image_as_a_data_url_is_accepted_in_json(client, tiny_generator):
    url = "data:image/png;base64," + base64.b64encode(image_bytes("PNG")).decode()
    body = {"prompt": "from a data url", "seconds": 1, "input_reference": {"image_url": url}}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{tiny_generator.base_url}/videos", json=body) as response:
            assert response.status == 200, await response.text()
            video_id = (await response.json())["id"]
    assert (await poll(client, video_id)).status == "completed"
    assert (tiny_generator.service.store.root / video_id / "reference.png").exists()


async def test_twenty_seconds_render_as_one_chained_job(client):
    video = await client.videos.create(prompt="a long drive along the coast", seconds="20")
    video = await poll(client, video.id)
    assert video.status == "completed"
    assert video.seconds == "20"
    assert len(await frames_of(client, video.id)) == 20 * FPS


async def test_progress_rises_through_a_long_chain(tmp_path):
    # A short lease makes the worker publish progress every 0.2 s (a third of the lease).
    async with running_generator(tmp_path, GENERATOR_LEASE_SECONDS=0.6) as running, sdk_client(running) as client:
        video = await client.videos.create(prompt="a slow sunrise", seconds="12")
        seen = set()
        while (current := await client.videos.retrieve(video.id)).status in ("queued", "in_progress"):
            seen.add(current.progress)
            await asyncio.sleep(0.05)
        assert current.status == "completed"
        assert any(0 < p < 100 for p in seen), seen


async def test_unknown_parent_is_404(client):
    with pytest.raises(openai.NotFoundError):
        await extend(client, "video_" + "0" * 32, "more", "2")
    with pytest.raises(openai.NotFoundError):
        await extend(client, "../../etc/passwd", "more", "2")


async def test_unfinished_parent_is_refused(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running, sdk_client(running) as client:
        parent = await client.videos.create(prompt="not yet", seconds="1")
        with pytest.raises(openai.BadRequestError) as raised:
            await extend(client, parent.id, "more", "2")
        assert raised.value.body["code"] == "video_not_ready"
        with pytest.raises(openai.BadRequestError):
            await client.videos.remix(parent.id, prompt="other")


async def test_extension_cannot_pass_the_length_limit(client):
    parent = await client.videos.create_and_poll(prompt="x", seconds="2", poll_interval_ms=50)
    with pytest.raises(openai.BadRequestError) as raised:
        await extend(client, parent.id, "much more", "59")
    assert raised.value.body["param"] == "seconds"


async def test_extension_needs_exactly_one_video(client):
    with pytest.raises(openai.BadRequestError) as raised:
        await client.videos.extend(prompt="more", seconds="2", video=openai.omit)
    assert raised.value.body["param"] == "video"


@pytest.mark.parametrize(
    ("payload", "name", "mime", "message"),
    [
        (b"not an image at all", "x.png", "image/png", "readable"),
        (b"", "empty.png", "image/png", "empty"),
        (b"GIF89a" + b"\0" * 64, "x.gif", "image/gif", "readable"),
        ("bmp", "x.bmp", "image/bmp", "PNG, JPEG or WebP"),
        ("bomb", "bomb.png", "image/png", "pixels"),
    ],
)
async def test_bad_reference_images_are_refused(client, payload, name, mime, message):
    if payload == "bmp":
        payload = image_bytes("BMP")
    elif payload == "bomb":
        payload = png_bomb(10_000, 10_000)
    with pytest.raises(openai.BadRequestError) as raised:
        await client.videos.create(prompt="x", seconds="1", input_reference=(name, payload, mime))
    assert raised.value.body["param"] == "input_reference"
    assert message in raised.value.body["message"]


async def test_a_corrupt_upload_to_extend_is_refused(client):
    with pytest.raises(openai.BadRequestError) as raised:
        await client.videos.extend(prompt="more", seconds="1", video=("clip.mp4", b"\0\0\0 ftypisom junk", "video/mp4"))
    assert raised.value.body["param"] == "video"
