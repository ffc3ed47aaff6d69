"""A picture posted in a clip's thread, or in a reply to a clip, starts a video from it (as `/video image:` does):
the real bot against the fake Discord, the real in-process generator (tiny model) and the offline director."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from bot.models import POSTED
from tests.bot.test_discord import make_clip, message_id_of
from tests.support.hanul_bot import running_bot, wait_until


def picture(fmt: str, colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def reference_seen_by_generator(data: Path, video_id: str) -> np.ndarray:
    """The start image the generator stored for the job (`input_reference`, normalised to the render size)."""
    (path,) = data.rglob(f"{video_id}/reference.png")
    return np.asarray(Image.open(path).convert("RGB"))


async def test_a_picture_posted_in_the_clips_thread_is_animated_from_the_threads_prompt(tmp_path, monkeypatch):
    data = tmp_path / "data"
    async with running_bot(data, monkeypatch) as (bot, fake):
        thread_id, _ = await make_clip(fake, "a lighthouse on a cliff")
        red = fake.attachment("photo.png", picture("PNG", (255, 0, 0)), "image/png")
        posted = fake.say(thread_id, "", attachments=[red])  # no words: the thread's prompt is the request
        status = await fake.wait_for(
            "POST", f"/channels/{thread_id}/messages", lambda c: "message_reference" in (c.json or {})
        )
        assert str(status.json["message_reference"]["message_id"]) == posted["id"]  # answers the member's picture
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        first, animated = sorted(await bot.studio.store.history(1001), key=lambda r: r.id)

    assert fake.downloads == [red["url"]]
    assert (animated.kind, animated.parent_id, animated.status) == ("animate", first.id, POSTED)
    assert animated.conversation_id == first.conversation_id and animated.thread_id == thread_id
    assert animated.params["image"] == "photo.png"
    assert "lighthouse" in animated.request_text.lower() and "lighthouse" in animated.expanded_prompt.lower()
    reference = reference_seen_by_generator(data, animated.video_id)
    assert reference[..., 0].mean() > 200 and reference[..., 1:].mean() < 40  # the red picture reached it
    assert not list(data.rglob(f"{first.video_id}/reference.png"))  # the first clip was text-to-video


async def test_a_reply_to_a_clip_with_a_picture_animates_it_with_the_replys_words(tmp_path, monkeypatch):
    data = tmp_path / "data"
    async with running_bot(data, monkeypatch) as (bot, fake):
        thread_id, clip = await make_clip(fake, "a fox in the snow")
        blue = fake.attachment("fox.jpg", picture("JPEG", (0, 0, 255)), "image/jpeg")
        fake.say(thread_id, "the fox jumps into the snow", reply_to=message_id_of(fake, clip), attachments=[blue])
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        first, animated = sorted(await bot.studio.store.history(1001), key=lambda r: r.id)

    assert (animated.kind, animated.parent_id) == ("animate", first.id)
    assert animated.request_text == "the fox jumps into the snow"  # not an extension of the clip
    assert "jumps into the snow" in animated.expanded_prompt.lower()
    reference = reference_seen_by_generator(data, animated.video_id)
    assert reference[..., 2].mean() > 200 and reference[..., :2].mean() < 40


async def test_a_file_that_is_no_picture_or_too_large_gets_a_clear_answer_and_is_not_downloaded(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        thread_id, clip = await make_clip(fake)
        notes = fake.attachment("notes.txt", b"just some words", "text/plain")
        fake.say(thread_id, "", attachments=[notes])
        answer = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "PNG, JPEG" in c.content)
        assert answer.content == "⚠️ The attachment must be a PNG, JPEG or WebP image under 16 MiB."
        huge = fake.attachment("huge.png", picture("PNG", (0, 255, 0)), "image/png")
        huge["size"] = 40 * 1024 * 1024  # what Discord says of the file: it is refused before it is fetched
        fake.say(thread_id, "animate this", reply_to=message_id_of(fake, clip), attachments=[huge])
        await wait_until(lambda: len(fake.find("POST", f"/channels/{thread_id}/messages", _refused)) == 2)
        await bot.deliveries.wait_idle()
        assert fake.downloads == []
        assert len(await bot.studio.store.history(1001)) == 1  # nothing new was made or recorded


def _refused(call) -> bool:
    return "PNG, JPEG" in call.content


async def test_video_image_option_takes_the_same_path(tmp_path, monkeypatch):
    data = tmp_path / "data"
    async with running_bot(data, monkeypatch) as (bot, fake):
        green = fake.attachment("field.webp", picture("WEBP", (0, 255, 0)), "image/webp")
        fake.slash(
            "video",
            {"prompt": "wind over a green field", "image": green["id"]},
            types={"image": 11},
            resolved={"attachments": {green["id"]: green}},
        )
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()
        (record,) = await bot.studio.store.history(1001)

    assert (record.kind, record.params["image"]) == ("generate", "field.webp")
    assert fake.downloads == [green["url"]]
    reference = reference_seen_by_generator(data, record.video_id)
    assert reference[..., 1].mean() > 200 and reference[..., [0, 2]].mean() < 40


async def test_a_picture_posted_after_another_file_is_the_one_animated(tmp_path, monkeypatch):
    data = tmp_path / "data"
    async with running_bot(data, monkeypatch) as (bot, fake):
        thread_id, _ = await make_clip(fake, "a lighthouse on a cliff")
        notes = fake.attachment("notes.txt", b"where I took it", "text/plain")
        green = fake.attachment("photo.png", picture("PNG", (0, 255, 0)), "image/png")
        fake.say(thread_id, "", attachments=[notes, green])
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        _, animated = sorted(await bot.studio.store.history(1001), key=lambda r: r.id)

    assert fake.downloads == [green["url"]]  # the text file is left alone
    assert animated.kind == "animate" and animated.params["image"] == "photo.png"
    reference = reference_seen_by_generator(data, animated.video_id)
    assert reference[..., 1].mean() > 200
