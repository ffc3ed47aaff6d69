"""Issue #17: a generator that answers garbage (a web page with 200, a progress that is not a number, an unknown
status, an endless or non-MP4 "clip") ends the video with a clear message: nothing crashes, nothing stays open
(holding the member's place in the queue), nothing is polled forever, downloads stop at the upload limit, and
only MP4s are posted."""

from __future__ import annotations

import asyncio
import io

import pytest

from bot.console import console_main
from bot.models import FAILED, POSTED
from tests.support.garbage_generator import garbage_generator
from tests.support.hanul import bot_settings
from tests.support.hanul_bot import running_bot, wait_until

LIMIT = 1024 * 1024  # the channel's upload limit in these tests
FAILURES = {
    "html": "expected a video object, got '<html><body><h1>Welcome to nginx!",
    "bad_id": "the video id '../../",
    "progress": "progress 'lots' is not a number",
    "status": "unknown status 'thinking'",
    "endless_zeros": "the clip is not an MP4",
    "not_mp4": "the clip is not an MP4",
}


def status_texts(fake) -> list[str]:
    return [c.content for c in fake.find("PATCH", "/messages/")]


async def request_video(bot, fake, prompt: str) -> tuple[dict, int]:
    """/video; returns its interaction and its generation id once the request is recorded."""
    before = {r.id for r in await bot.studio.store.history(1001)}
    payload = fake.slash("video", {"prompt": prompt}, size_limit=LIMIT)
    await fake.wait_for("POST", "/threads", lambda c: prompt[:10] in c.json["name"])
    (record,) = [r for r in await bot.studio.store.history(1001) if r.id not in before]
    return payload, record.id


async def ended(bot, generation_id: int) -> str:
    for _ in range(600):
        record = await bot.studio.store.generation(generation_id)
        if not record.is_open:
            return record.status
        await asyncio.sleep(0.05)
    raise AssertionError(f"#{generation_id} is still open")


@pytest.mark.parametrize("mode", sorted(FAILURES))
async def test_a_generator_answering_garbage_ends_the_video_with_a_clear_message(tmp_path, monkeypatch, mode):
    async with (
        garbage_generator(mode) as garbage,
        running_bot(tmp_path / "data", monkeypatch, GENERATOR_URL=garbage.base_url, HANUL_MAX_QUEUED_PER_USER=1) as (
            bot,
            fake,
        ),
    ):
        payload, generation_id = await request_video(bot, fake, "a cat surfing at sunset")
        assert await ended(bot, generation_id) == FAILED
        await bot.deliveries.wait_idle()
        await wait_until(lambda: any(FAILURES[mode] in t and "failed" in t for t in status_texts(fake)))
        assert fake.clips() == []
        if mode in ("html", "bad_id"):  # refused as it was queued: the member's answer says so too
            token = payload["token"]
            await wait_until(lambda: any("Sorry, the video generator" in c.content for c in fake.find("POST", token)))
        # The failed request holds no place in the queue: the next one is not refused as "queue full".
        second, _ = await request_video(bot, fake, "a dog surfing at dawn")
        await wait_until(lambda: any(c.content for c in fake.find("POST", second["token"])))
        assert not [c for c in fake.find("POST", second["token"]) if "already have" in c.content]


@pytest.mark.parametrize("mode", ["endless_mp4", "huge_declared"])
async def test_a_clip_larger_than_the_upload_limit_is_not_downloaded_beyond_it(tmp_path, monkeypatch, mode):
    async with (
        garbage_generator(mode) as garbage,
        running_bot(tmp_path / "data", monkeypatch, GENERATOR_URL=garbage.base_url) as (bot, fake),
    ):
        _, generation_id = await request_video(bot, fake, "a cat surfing at sunset")
        notice = await fake.wait_for("POST", "/messages", lambda c: "accepts at most 1.0 MiB" in c.content)
        size = "1536.0 MiB" if mode == "huge_declared" else "> 1.0 MiB"  # as declared, else as far as it was read
        assert f"The clip is {size} but" in notice.content
        assert f"hanul:smaller:{generation_id}" in notice.custom_ids
        await bot.deliveries.wait_idle()
        assert fake.clips() == [] and (await bot.studio.store.generation(generation_id)).status == POSTED
        assert garbage.bytes_sent < 32 * LIMIT  # not the 1.5 GB it offered


async def test_the_console_survives_a_generator_answering_garbage(tmp_path):
    async with garbage_generator("progress") as garbage:
        out = io.StringIO()
        settings = bot_settings(tmp_path / "data", GENERATOR_URL=garbage.base_url)
        lines = io.StringIO("a cat surfing at sunset\n/quit\n")
        assert await console_main(settings, lines, out, poll_interval=0.05) == 0
    output = out.getvalue()
    assert "failed: the video generator sent an answer I can't use (progress 'lots' is not a number)" in output
    assert output.rstrip().endswith("Bye.")
