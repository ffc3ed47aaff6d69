"""Pictures members attach, carelessly or hostilely, through real discord.py (tests/support/discord_fake.py) and the
in-process generator: a file whose content type lies, a file too large to fetch, an attachment Discord no longer
serves; and a character deleted while clips made with it live on. Each gets a clear answer in the member's language,
and nothing is recorded or fetched for nothing."""

from __future__ import annotations

import io

from PIL import Image

from tests.bot.test_discord import make_clip, message_id_of
from tests.bot.test_discord_edits_and_characters import create_character, generations, png
from tests.support.discord_fake import APP_ID
from tests.support.hanul_bot import running_bot, wait_until

NOT_A_PICTURE = "⚠️ The attachment must be a PNG, JPEG or WebP image under 16 MiB."


def encoded(fmt: str, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def answers(fake, channel_id: int, words: str) -> list:
    return fake.find("POST", f"/channels/{channel_id}/messages", lambda c: words in (c.content or ""))


async def test_a_picture_whose_content_type_lies_is_refused_in_the_members_words(tmp_path, monkeypatch):
    """Before: an AVIF or GIF named .png (Discord says image/png) went to the generator, whose English refusal
    reached the member ("The generator refused this request: 'input_reference' must be…"), and a failed request
    was left in their history. A JPEG named .png is taken as the JPEG it is."""
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        thread_id, clip = await make_clip(fake)
        avif = fake.attachment("photo.png", encoded("AVIF"), "image/png")
        fake.say(thread_id, "", attachments=[avif])
        await wait_until(lambda: len(answers(fake, thread_id, "PNG, JPEG")) == 1)
        gif = fake.attachment("cat.webp", encoded("GIF"), "image/webp")
        fake.say(thread_id, "the cat blinks", reply_to=message_id_of(fake, clip), attachments=[gif])
        await wait_until(lambda: len(answers(fake, thread_id, "PNG, JPEG")) == 2)
        assert [c.content for c in answers(fake, thread_id, "PNG, JPEG")] == [NOT_A_PICTURE] * 2
        assert not answers(fake, thread_id, "generator refused")
        assert len(await bot.studio.store.history(1001)) == 1  # nothing recorded for them

        jpeg = fake.attachment("photo.png", encoded("JPEG", (30, 30, 220)), "image/png")
        fake.say(thread_id, "", attachments=[jpeg])
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        assert len(await bot.studio.store.history(1001)) == 2


async def test_a_character_picture_is_checked_before_it_is_fetched(tmp_path, monkeypatch):
    """Before: `/character create image:` downloaded any attachment whole (a 500 MB video too) and only then
    looked at its type and size; and a picture whose type lies reached the generator."""
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        huge = fake.upload("mochi.png", encoded("PNG"), "image/png")
        huge["size"] = 400 * 1024 * 1024  # what Discord says of the file
        said = await create_character(fake, "Mochi", image=huge, description="a small white cat")
        assert said == NOT_A_PICTURE
        clip = fake.upload("mochi.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(64), "video/mp4")
        said = await create_character(fake, "Mochi", image=clip, description="a small white cat")
        assert said == NOT_A_PICTURE
        assert fake.downloads == []

        lying = fake.upload("mochi.png", encoded("GIF"), "image/png")
        said = await create_character(fake, "Mochi", image=lying, description="a small white cat")
        assert said == NOT_A_PICTURE
        assert await bot.studio.store.usable_characters(1001, None) == []


async def test_an_attachment_discord_no_longer_serves_gets_a_clear_answer(tmp_path, monkeypatch):
    """Before: a picture whose CDN link answered 404 or 403 (the member deleted their message at once, or the
    link expired) was "something went wrong" with an error id, in the thread and for `/character create`."""
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        thread_id, _ = await make_clip(fake)
        gone = fake.attachment("photo.png", encoded("PNG"), "image/png")
        del fake.cdn[gone["url"]]
        fake.say(thread_id, "", attachments=[gone])
        await wait_until(lambda: len(answers(fake, thread_id, "⚠️")) == 1)
        (said,) = answers(fake, thread_id, "⚠️")
        assert "attach it again" in said.content and "went wrong" not in said.content

        picture = fake.upload("mochi.png", encoded("PNG"), "image/png")
        del fake.cdn[picture["url"]]
        sent = fake.slash("character create", {"name": "Mochi", "image": picture}, locale="ko")
        answered = await fake.wait_for("POST", f"/webhooks/{APP_ID}/{sent['token']}")
        assert "다시 첨부" in answered.content
        assert len(await bot.studio.store.history(1001)) == 1
        assert await bot.studio.store.usable_characters(1001, None) == []


async def test_a_clip_made_with_a_character_since_deleted_can_still_be_refined(tmp_path, monkeypatch):
    """Before: once a character was deleted (by its owner: another member's shared one too), refining, extending or
    re-rolling any clip made with it failed with "I can't find that video any more": the request still named the
    character, which the generator no longer has."""
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        picture = fake.upload("mochi.png", png(), "image/png")
        await create_character(fake, "Mochi", image=picture, description="a small white cat")
        fake.slash("video", {"prompt": "Mochi surfing at sunset", "character": "Mochi"})
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()
        (first,) = await generations(bot)
        fake.slash("character delete", {"character": "Mochi"})
        await fake.wait_for("POST", "/webhooks/", lambda c: "**Mochi** deleted" in c.content)

        fake.say(first.thread_id, "a dog runs in")
        await wait_until(lambda: len(fake.clips()) == 2 or bool(answers(fake, first.thread_id, "⚠️")))
        await bot.deliveries.wait_idle()
        assert not answers(fake, first.thread_id, "⚠️")
        _, refined = await generations(bot)
        assert refined.status == "posted" and "small white cat" in refined.expanded_prompt.lower()
