"""Requests an attacker (or a broken client) sends: bodies that are not text, forms of a million parts, half-sent
requests, clients that name no user, and Idempotency-Keys reused by someone else (issue 17)."""

from __future__ import annotations

import asyncio
import os
import time
from urllib.parse import urlsplit

import aiohttp
import openai
import pytest

from generator.service import ORPHAN_FOLDER_SECONDS
from generator.storage import new_video_id
from hanul_core.db import StorageError
from tests.support.generator_service import poll, running_generator, sdk_client

PATHS = ("/v1/videos", "/v1/videos/extensions", "/v1/videos/video_0123456789abcdef0123456789abcdef/remix")


def address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def raw_request(base_url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are; the status and body of the answer."""
    reader, writer = await asyncio.open_connection(*address(base_url))
    try:
        writer.write(head + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1]


def request_head(path: str, length: int, content_type: str | None, extra: str = "") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", f"Content-Length: {length}", "Connection: close"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", None])
async def test_a_form_body_that_is_not_utf8_is_a_400_not_a_500(tmp_path, path, content_type):
    body = b"prompt=\xff\xfe\xfa caf\xe9"
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running:
        status, answer = await raw_request(running.base_url, request_head(path, len(body), content_type), body)
        assert status == 400, answer
        assert b'"invalid_request_error"' in answer
        # Percent-escapes that decode to something other than UTF-8 are the same mistake.
        escaped = b"prompt=%FF%FE"
        head = request_head(path, len(escaped), "application/x-www-form-urlencoded")
        status, answer = await raw_request(running.base_url, head, escaped)
        assert status == 400, answer


async def test_an_unknown_form_field_is_refused_as_it_arrives(tmp_path):
    """The answer comes while the client is still sending the rest of the body, not after all of it."""
    boundary = "b0undary"
    first = f'--{boundary}\r\nContent-Disposition: form-data; name="not_a_field"\r\n\r\nx\r\n'.encode()
    total = len(first) + 10 * 1024 * 1024  # announced but never sent: only the first part arrives
    head = request_head("/v1/videos", total, f"multipart/form-data; boundary={boundary}")
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running:
        reader, writer = await asyncio.open_connection(*address(running.base_url))
        try:
            writer.write(head + first)
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 10)
            answer = await asyncio.wait_for(reader.read(4096), 10)
        finally:
            writer.close()
    assert b" 400 " in status_line
    assert b"unknown_parameter" in answer and b"not_a_field" in answer


async def test_a_form_of_many_tiny_parts_is_refused_quickly_and_health_keeps_answering(tmp_path):
    boundary = "manyparts"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nx\r\n'.encode()
    body = part * 100_000 + f"--{boundary}--\r\n".encode()  # 6.6 MB of parts
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running:
        health = running.base_url.replace("/v1", "/healthz")
        async with aiohttp.ClientSession() as http:
            slowest = 0.0

            async def probe_health() -> None:
                nonlocal slowest
                for _ in range(20):
                    started = time.perf_counter()
                    async with http.get(health) as response:
                        assert response.status == 200
                    slowest = max(slowest, time.perf_counter() - started)
                    await asyncio.sleep(0.02)

            started = time.perf_counter()
            posting = http.post(
                f"{running.base_url}/videos",
                data=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            async with posting as response:
                refused = await response.json()
                assert response.status == 400
            took = time.perf_counter() - started
            await probe_health()
    assert refused["error"]["code"] == "too_many_fields"
    assert took < 5, f"refusing took {took:.1f} s"
    assert slowest < 1, f"/healthz took {slowest:.2f} s"


async def test_a_silent_connection_and_half_sent_headers_are_closed(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_IDLE_TIMEOUT=1) as running:
        silent = await asyncio.open_connection(*address(running.base_url))
        half = await asyncio.open_connection(*address(running.base_url))
        half[1].write(b"POST /v1/videos HTTP/1.1\r\nHost: test\r\nContent-Le")
        await half[1].drain()
        started = time.perf_counter()
        for reader, writer in (silent, half):
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
            writer.close()
        assert time.perf_counter() - started < 8


async def test_a_body_that_stops_arriving_gets_408_and_the_connection_closes(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0, GENERATOR_BODY_TIMEOUT=1) as running:
        reader, writer = await asyncio.open_connection(*address(running.base_url))
        try:
            writer.write(request_head("/v1/videos", 1000, "application/json").replace(b"close", b"keep-alive"))
            writer.write(b'{"prompt": "half')
            await writer.drain()
            # The answer, then the server's close once aiohttp's lingering read of the rest (10 s at most) has ended.
            answer = await asyncio.wait_for(reader.read(), 20)
        finally:
            writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request_timeout" in answer


async def test_clients_that_name_no_user_cannot_fill_the_queue_for_everyone(tmp_path):
    async with (
        running_generator(
            tmp_path, GENERATOR_WORKERS=0, GENERATOR_MAX_QUEUE=5, GENERATOR_MAX_QUEUE_PER_USER=2
        ) as running,
        sdk_client(running) as client,
    ):
        for _ in range(2):
            await client.videos.create(prompt="nameless", seconds="1")
        with pytest.raises(openai.RateLimitError) as raised:
            await client.videos.create(prompt="nameless again", seconds="1")
        assert "without a 'user'" in raised.value.body["message"]
        named = await client.videos.create(prompt="a named member", seconds="1", extra_body={"user": "alice"})
        assert named.status == "queued"


async def test_anonymous_clients_are_told_apart_by_their_api_key(tmp_path):
    async with running_generator(
        tmp_path, GENERATOR_WORKERS=0, GENERATOR_MAX_QUEUE_PER_USER=1, GENERATOR_API_KEY="k1"
    ) as running:
        async with sdk_client(running, api_key="k1") as client:
            await client.videos.create(prompt="first", seconds="1")
            with pytest.raises(openai.RateLimitError):
                await client.videos.create(prompt="second", seconds="1")


async def test_an_idempotency_key_reused_by_another_user_makes_that_user_a_new_job(tmp_path):
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running, sdk_client(running) as client:
        headers = {"Idempotency-Key": "request-1"}
        alice = await client.videos.create(
            prompt="alice's secret", seconds="1", extra_headers=headers, extra_body={"user": "alice"}
        )
        mallory = await client.videos.create(
            prompt="anything", seconds="1", extra_headers=headers, extra_body={"user": "mallory"}
        )
        nameless = await client.videos.create(prompt="nameless", seconds="1", extra_headers=headers)
        alice_again = await client.videos.create(
            prompt="alice's secret", seconds="1", extra_headers=headers, extra_body={"user": "alice"}
        )
    assert mallory.id != alice.id and mallory.prompt == "anything"
    assert nameless.id not in (alice.id, mallory.id)
    assert alice_again.id == alice.id


def aged(folder, seconds: float) -> None:
    """Make `folder` and what it holds look untouched for `seconds`."""
    then = time.time() - seconds
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (then, then))


async def test_job_folders_no_job_names_are_removed_at_start_once_nothing_can_be_writing_them(tmp_path):
    """A process killed between writing a job's upload and inserting its row left the folder behind."""
    async with running_generator(tmp_path, GENERATOR_WORKERS=0) as running, sdk_client(running) as client:
        video = await client.videos.create(prompt="kept", seconds="1")
        store = running.service.store
    folders = {name: store.job_dir(new_video_id()) for name in ("old orphan", "fresh orphan")}
    folders["job"] = store.job_dir(video.id)
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "reference.png").write_bytes(b"an upload")
    aged(folders["old orphan"], ORPHAN_FOLDER_SECONDS + 60)
    aged(folders["job"], ORPHAN_FOLDER_SECONDS + 60)
    async with running_generator(tmp_path, GENERATOR_WORKERS=0):
        assert not folders["old orphan"].exists()
        assert folders["fresh orphan"].exists()  # perhaps another host's request, about to insert its row
        assert folders["job"].exists()


async def test_an_unwritable_artifacts_folder_stops_the_start_with_its_name(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError) as raised:
        async with running_generator(tmp_path / "data", GENERATOR_ARTIFACTS_DIR=str(blocker / "videos")):
            pass
    assert str(blocker / "videos") in str(raised.value) and "GENERATOR_ARTIFACTS_DIR" in str(raised.value)


async def test_a_remix_by_someone_else_never_finds_the_source_users_job_by_key(tmp_path):
    """A remix inherits its source's user; the key is still the remixer's, not the source user's."""
    async with running_generator(tmp_path) as running, sdk_client(running) as client:
        alice = {"user": "alice"}
        source = await poll(
            client, (await client.videos.create(prompt="alice's clip", seconds="1", extra_body=alice)).id
        )
        private = await client.videos.create(
            prompt="alice's private idea", seconds="1", extra_body=alice, extra_headers={"Idempotency-Key": "k"}
        )
        remix = await client.videos.remix(source.id, prompt="mallory's", extra_headers={"Idempotency-Key": "k"})
    assert remix.id != private.id and remix.prompt == "mallory's"
