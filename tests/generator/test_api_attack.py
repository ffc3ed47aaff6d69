"""The Videos API attacked as a hostile or careless client would: headers and file names that are not UTF-8, odd
digits in a query, and deletes that race the requests reading what they delete. Each answer is a clear 4xx in
OpenAI's shape, never a 500, and a refused request leaves no files behind."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import openai
import pytest
from PIL import Image

from tests.generator.test_edits_and_characters import mp4
from tests.support.generator_service import poll, probe_mp4, running_generator

KEY = "hanul-attack-key"


def png(size: tuple[int, int] = (64, 48), noisy: bool = False) -> bytes:
    pixels = np.full((size[1], size[0], 3), (30, 160, 220), np.uint8)
    if noisy:  # noise compresses badly: half the file cuts into its pixels, not its header
        pixels = np.random.default_rng(3).integers(0, 256, pixels.shape, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


async def raw_request(base_url: str, request: bytes) -> tuple[int, bytes]:
    """Send bytes as they are (headers a client library would refuse to send); the status and body."""
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    return int(answer.split(b" ", 2)[1]), answer.split(b"\r\n\r\n", 1)[1]


def job_folders(running) -> set[str]:
    root = running.service.store.root
    return {path.name for path in root.iterdir() if path.name.startswith("video_")} if root.is_dir() else set()


async def test_an_authorization_header_that_is_not_utf8_is_a_401_not_a_500(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_API_KEY=KEY) as running:
        for value in (b"Bearer \xff\xfe", b"\xff", f"Bearer {KEY}\xe9".encode("latin-1")):
            head = b"GET /v1/videos HTTP/1.1\r\nHost: test\r\nConnection: close\r\nAuthorization: " + value
            status, body = await raw_request(running.base_url, head + b"\r\n\r\n")
            assert status == 401, body
            assert b'"invalid_api_key"' in body


async def test_a_character_frame_index_in_other_digits_is_a_400(client):
    character = await client.videos.create_character(name="하늘", video=("sky.png", png(), "image/png"))
    url = f"{client.base_url}videos/characters/{character.id}/content"
    async with aiohttp.ClientSession() as session:
        for index in ("²", "½", "٠", "１"):  # superscript, fraction, Arabic-Indic and full-width digits
            async with session.get(url, params={"index": index}) as response:
                assert response.status == 400, (index, await response.text())
                assert (await response.json())["error"]["param"] == "index"
        async with session.get(url, params={"index": "0"}) as response:
            assert response.status == 200 and response.content_type == "image/png"


@pytest.mark.parametrize(
    ("disposition", "shown"),
    [
        (b'filename="caf\xe9.png"', "caf\ufffd.png"),  # Latin-1 from an old client
        (b"filename*=UTF-8''a%00b%ED%95%98.png", "ab\ud558.png"),  # NUL: PostgreSQL cannot store it
    ],
)
async def test_an_uploaded_file_name_that_no_database_can_store_is_cleaned_not_a_500(
    tiny_generator, client, disposition, shown
):
    body = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nvision\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; ' + disposition + b"\r\n"
        b"Content-Type: image/\xffpng\r\n\r\n" + png() + b"\r\n--b--\r\n"
    )
    head = (
        f"POST /v1/files HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n\r\n"
    ).encode()
    status, answer = await raw_request(tiny_generator.base_url, head + body)
    assert status == 200, answer
    stored = await client.files.retrieve(json.loads(answer)["id"])
    assert stored.filename == shown
    # The file serves as a reference image all the same.
    video = await client.videos.create(prompt="x", seconds="1", extra_body={"input_reference": {"file_id": stored.id}})
    assert (await poll(client, video.id)).status == "completed"


async def test_a_remix_racing_the_delete_of_its_source_is_a_404_and_leaves_no_folder(tiny_generator, client):
    source = await client.videos.create(
        prompt="a red kite", seconds="1", extra_body={"input_reference": {"image_url": data_url(png())}}
    )
    assert (await poll(client, source.id)).status == "completed"
    videos = tiny_generator.service.videos
    listed = videos.queue.artifacts_of

    async def listed_then_deleted(video_id: str):
        rows = await listed(video_id)
        if video_id == source.id:  # the source's DELETE lands between its rows being read and its files
            await videos.delete(source.id)
        return rows

    videos.queue.artifacts_of = listed_then_deleted
    try:
        with pytest.raises(openai.NotFoundError):
            await client.videos.remix(source.id, prompt="a blue kite")
    finally:
        videos.queue.artifacts_of = listed
    assert job_folders(tiny_generator) == set()
    assert (await client.videos.list()).data == []


async def test_a_character_deleted_while_a_create_copies_its_frames_is_a_404_and_leaves_no_folder(
    tiny_generator, client
):
    character = await client.videos.create_character(name="Mina", video=("mina.png", png(), "image/png"))
    characters = tiny_generator.service.videos.characters
    found = characters.get

    async def found_then_deleted(character_id: str, param: str = "character_id"):
        row = await found(character_id, param)
        characters.get = found
        await characters.delete(character_id)  # its DELETE lands before its frames are copied
        return row

    characters.get = found_then_deleted
    with pytest.raises(openai.NotFoundError) as missing:
        await client.videos.create(prompt="Mina waves", seconds="1", extra_body={"characters": [character.id]})
    assert missing.value.body["param"] == "characters"
    assert job_folders(tiny_generator) == set()


async def test_a_reference_image_that_turns_out_unreadable_leaves_no_folder_behind(tiny_generator, client):
    character = await client.videos.create_character(name="Mina", video=("mina.png", png(), "image/png"))
    broken = png((256, 256), noisy=True)
    broken = broken[: len(broken) // 2]  # the header is whole: it fails only once its pixels are decoded
    with pytest.raises(openai.BadRequestError) as refused:
        await client.videos.create(
            prompt="Mina",
            seconds="1",
            extra_body={"characters": [character.id], "input_reference": {"image_url": data_url(broken)}},
        )
    assert refused.value.body["param"] == "input_reference"
    assert job_folders(tiny_generator) == set()


async def test_an_uploaded_clip_faster_than_60_fps_is_edited_at_its_own_length(client, monkeypatch):
    from generator import render

    seen: list[np.ndarray] = []
    window = render._source_window
    monkeypatch.setattr(render, "_source_window", lambda source, *a: (seen.append(source), window(source, *a))[1])
    # 0.4 s at 120 fps, darkest first: the edit renders at 60 fps (the most it takes), 24 frames of the whole clip.
    clip = np.repeat(np.linspace(0, 250, 48).astype(np.uint8)[:, None, None, None], 64 * 96 * 3, axis=1)
    edited = await client.videos.edit(
        prompt="slow motion", video=("fast.mp4", mp4(clip.reshape(48, 64, 96, 3), 120), "video/mp4")
    )
    edited = await poll(client, edited.id)
    assert edited.status == "completed", edited.error
    assert edited.seconds == "0.4"  # not 0.8: 48 frames played at 60 fps
    facts = probe_mp4((await client.videos.download_content(edited.id)).read())
    assert (facts["fps"], len(facts["frames"])) == (60, 24)
    source = next(frames for frames in seen if frames is not None)
    assert len(source) == 24 and source[-1].mean() > 200  # the clip's end, not its middle


async def test_listing_after_a_video_that_never_was_is_a_400_not_the_first_page_again(client):
    first = await client.videos.create(prompt="one", seconds="1")
    await client.videos.create(prompt="two", seconds="1")
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.videos.list(after="video_" + "0" * 32)
    assert unknown.value.body["param"] == "after"
    # A deleted video still marks its place.
    await client.videos.delete(first.id)
    assert (await client.videos.list(after=first.id, order="asc")).data[0].prompt == "two"
