"""Members and admins attacking the bot, carelessly or on purpose: a channel where Hanul may not post, a reply
deleted before Hanul answers it, a busy server's queue, refinements sent one after another. Each ends with a clear
answer on Discord, and nothing stays open holding a member's place in the queue."""

from __future__ import annotations

import logging

import discord
import pytest

from bot.limits import Requester
from bot.models import FAILED, POSTED
from bot.studio import Destination, VideoOptions
from tests.support.discord_fake import CHANNEL_ID, EPHEMERAL, Call, Fault
from tests.support.hanul_bot import running_bot, wait_until

FORBIDDEN = Fault(403, '{"message": "Missing Permissions", "code": 50013}', {"Content-Type": "application/json"})
ADMIN_ID = 345678901234567890  # a real-length snowflake: mentions of it are as long as real ones


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def answers_to(fake, payload: dict) -> list[Call]:
    return [c for c in fake.calls if payload["token"] in c.path and c.content]


async def answered(fake, payload: dict) -> str:
    """The one ephemeral answer an interaction got."""
    await wait_until(lambda: bool(answers_to(fake, payload)))
    (reply,) = answers_to(fake, payload)
    assert (reply.json or {}).get("flags", 0) & EPHEMERAL
    return reply.content


def without(*names: str) -> int:
    """Every permission but these, as Discord puts the bot's own permissions into an interaction."""
    allowed = discord.Permissions.all()
    allowed.update(**dict.fromkeys(names, False))
    return allowed.value


async def test_a_channel_where_hanul_may_not_post_is_refused_before_anything_is_made(tmp_path, monkeypatch, caplog):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        no_files = fake.slash("video", {"prompt": "a cat on a boat"}, app_permissions=without("attach_files"))
        said = await answered(fake, no_files)
        assert "not allowed to post videos here" in said and "Attach Files" in said and "Send Messages" not in said
        mute = fake.slash(
            "video", {"prompt": "a cat on a boat"}, locale="ko", app_permissions=without("send_messages_in_threads")
        )
        assert "스레드에서 메시지 보내기" in await answered(fake, mute)  # a thread would be made: it must talk there
        assert not fake.find("POST", f"/channels/{CHANNEL_ID}/messages")  # no status message, nothing rendered
        assert await bot.studio.store.history(1001) == []
    assert errors_logged(caplog) == []


async def test_a_post_discord_forbids_ends_the_request_and_frees_the_members_place(tmp_path, monkeypatch, caplog):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        # The channel's overwrites forbid what the interaction did not say: the status message, then the prompt in
        # the thread, are refused.
        fake.fail("POST", f"/channels/{CHANNEL_ID}/messages", FORBIDDEN)
        first = fake.slash("video", {"prompt": "a cat on a boat"})
        assert "Ask a server admin to give Hanul" in await answered(fake, first)
        fake.fail("POST", "/messages", FORBIDDEN, predicate=lambda c: "Prompt" in c.content)
        second = fake.slash("video", {"prompt": "a dog on a boat"})
        assert "Ask a server admin to give Hanul" in await answered(fake, second)
        thread = await fake.wait_for("POST", "/threads", lambda c: "a dog" in c.json["name"])
        status_id = int(thread.path.split("/")[4])
        failed = await fake.wait_for("PATCH", f"/messages/{status_id}", lambda c: "failed" in c.content)
        assert failed.custom_ids == []  # no cancel button left under a request that ended
        assert [r.status for r in await bot.studio.store.history(1001)] == [FAILED, FAILED]
        # Two failed requests do not fill the queue (two at a time): the next one is made.
        third = fake.slash("video", {"prompt": "a bird on a boat"})
        assert (await answered(fake, third)).startswith("🎬 ")
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()
    assert errors_logged(caplog) == []


async def test_a_reply_deleted_before_hanul_answers_it_still_extends_the_clip(tmp_path, monkeypatch, caplog):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.slash("video", {"prompt": "a red kite over the sea"})
        await wait_until(lambda: len(fake.clip_messages()) == 1)
        await bot.deliveries.wait_idle()
        clip = fake.clip_messages()[0]
        thread_id = int(clip["channel_id"])
        reply = fake.say(thread_id, "now it flies away", reply_to=int(clip["id"]))
        fake.delete_message(int(reply["id"]), thread_id)  # a moderator (or the member) removes it at once
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        extension = max(await bot.studio.store.history(1001), key=lambda r: r.id)
        assert (extension.kind, extension.status) == ("extend", POSTED)
    assert errors_logged(caplog) == []


async def test_a_busy_servers_queue_fits_in_one_message(tmp_path, monkeypatch, caplog):
    async with running_bot(tmp_path / "data", monkeypatch, HANUL_ADMIN_USER_IDS=str(ADMIN_ID)) as (bot, fake):
        admin = Requester(user_id=ADMIN_ID, name="boss", guild_id=None, channel_id=CHANNEL_ID)
        place = Destination(guild_id=None, channel_id=CHANNEL_ID, max_bytes=10 * 1024 * 1024)
        for n in range(25):  # admins bypass the queue cap; the titles are as long as titles get
            request = f"{n} a very long winded request about a cat who sails around the world alone"
            await bot.studio.new_video(admin, request, VideoOptions(), place)
        for locale, more in (("en-US", "more."), ("ko", "개 더.")):
            said = await answered(fake, fake.slash("queue", user_id=ADMIN_ID, locale=locale))
            assert len(said) <= 2000 and said.endswith(more)
            shown = said.count("\n`#")
            assert 10 <= shown < 25 and f"{25 - shown}" in said.rsplit("\n", 1)[1]
    assert errors_logged(caplog) == []


async def test_refinements_sent_one_after_another_build_on_each_other(tmp_path, monkeypatch, caplog):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.slash("video", {"prompt": "a cat on a boat"})
        await wait_until(lambda: len(fake.clip_messages()) == 1)
        await bot.deliveries.wait_idle()
        thread_id = int(fake.clip_messages()[0]["channel_id"])
        fake.say(thread_id, "make it night time")
        fake.say(thread_id, "add falling snow")  # before the first is even read
        await wait_until(lambda: len(fake.clips()) == 3, within=60)
        await bot.deliveries.wait_idle()
        first, second = sorted(
            (r for r in await bot.studio.store.history(1001) if r.kind == "refine"), key=lambda r: r.id
        )
        assert "night" in first.expanded_prompt.lower()
        assert "snow" in second.expanded_prompt.lower() and "night" in second.expanded_prompt.lower()
    assert errors_logged(caplog) == []


async def test_video_asked_inside_a_clips_thread(tmp_path, monkeypatch, caplog):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.slash("video", {"prompt": "a cat on a boat"})
        await wait_until(lambda: len(fake.clip_messages()) == 1)
        thread_id = int(fake.clip_messages()[0]["channel_id"])
        # Someone else's /video in this thread is refused: the thread is its owner's conversation.
        other = fake.slash("video", {"prompt": "a horse on a hill"}, channel_id=thread_id, user_id=2002)
        assert "This thread belongs to <@1001>" in await answered(fake, other)
        assert await bot.studio.store.history(2002) == []
        # The owner's own /video there makes a clip in the thread, and writing there then refines that newest one.
        mine = fake.slash("video", {"prompt": "a dog in a park"}, channel_id=thread_id)
        assert (await answered(fake, mine)).startswith("🎬 ")
        await wait_until(lambda: len(fake.clip_messages()) == 2)
        await bot.deliveries.wait_idle()
        fake.say(thread_id, "make it night time")
        await wait_until(lambda: len(fake.clip_messages()) == 3)
        await bot.deliveries.wait_idle()
        cat, dog, night = sorted(await bot.studio.store.history(1001), key=lambda r: r.id)
        assert [r.status for r in (cat, dog, night)] == [POSTED] * 3 and dog.thread_id == thread_id
        assert night.kind == "refine" and night.parent_id == dog.id and "dog" in night.expanded_prompt.lower()
    assert errors_logged(caplog) == []
