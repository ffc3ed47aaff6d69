"""Issue #17, the bot's half: one server's admin stays in that server, a video stays in the server it was made in
(a DM video with its owner), and following up on your own clip is never refused by the cooldown. Driven through
real discord.py and the fake Discord, with two servers."""

from __future__ import annotations

import json

from bot.models import CANCELLED, POSTED
from tests.support.discord_fake import (
    CHANNEL_ID,
    GUILD_ID,
    guild_payload,
    text_channel_payload,
    user_payload,
)
from tests.support.generator_service import SlowBackend, running_generator, tiny_backend
from tests.support.hanul_bot import running_bot, wait_until

OTHER_GUILD_ID = 920000000000000001
OTHER_CHANNEL_ID = 920000000000000002
MANAGE_SERVER = 1 << 5
ADMINISTRATOR = 1 << 3


def open_other_server(fake) -> None:
    """The bot joins a second server, one the first server's members have nothing to do with."""
    channel = text_channel_payload(OTHER_CHANNEL_ID, OTHER_GUILD_ID, name="elsewhere")
    fake.feed("GUILD_CREATE", guild_payload(OTHER_GUILD_ID, channels=[channel]))


def elsewhere(**who) -> dict:
    return {"guild_id": OTHER_GUILD_ID, "channel_id": OTHER_CHANNEL_ID, **who}


def answers_to(fake, payload: dict) -> list[str]:
    token = payload["token"]
    return [c.content for c in fake.calls if token in c.path and c.content]


async def answer_of(fake, payload: dict) -> str:
    await wait_until(lambda: bool(answers_to(fake, payload)))
    (content,) = answers_to(fake, payload)
    return content


def member_option(user_id: int) -> dict:
    """A `member:` option as Discord resolves it."""
    return {
        "options": {"member": str(user_id)},
        "types": {"member": 6},
        "resolved": {"users": {str(user_id): user_payload(user_id, "mina")}},
    }


def posted_in(fake, channel_id: int) -> str:
    """Everything the bot posted or edited in one channel (and threads made there), as one text."""
    sent = [c for c in fake.calls if c.method in ("POST", "PATCH") and f"/channels/{channel_id}/" in c.path]
    return "\n".join(json.dumps(c.json, ensure_ascii=False) for c in sent)


async def test_a_server_admin_elsewhere_cannot_cancel_see_or_skip_limits_here(tmp_path, monkeypatch):
    slow = SlowBackend(tiny_backend(), step_delay=1.0)  # still rendering while the others act
    async with (
        running_generator(tmp_path / "generator", slow) as generator,
        running_bot(
            tmp_path / "data",
            monkeypatch,
            GENERATOR_URL=generator.base_url,
            HANUL_MAX_QUEUED_PER_USER=1,
            HANUL_ADMIN_USER_IDS="4004",
        ) as (bot, fake),
    ):
        open_other_server(fake)
        fake.slash("video", {"prompt": "a slow secret sunrise"})
        await fake.wait_for("POST", "/threads")
        (record,) = await bot.studio.store.history(1001)

        # Manage Server in the other server: no rights here.
        cancel = fake.slash("cancel", {"video": record.id}, **elsewhere(user_id=3003, permissions=MANAGE_SERVER))
        assert "Only the member who asked" in await answer_of(fake, cancel)
        queue = fake.slash("queue", **elsewhere(user_id=3003, permissions=ADMINISTRATOR))
        assert "secret sunrise" not in await answer_of(fake, queue)
        # …and the limits hold for them like for anyone (one video at a time here).
        fake.slash("video", {"prompt": "a first kite"}, **elsewhere(user_id=3003, permissions=MANAGE_SERVER))
        await fake.wait_for("POST", "/threads", lambda c: "first kite" in c.json["name"])
        second = fake.slash("video", {"prompt": "a second kite"}, **elsewhere(user_id=3003, permissions=ADMINISTRATOR))
        assert "already have 1 videos in progress" in await answer_of(fake, second)
        assert (await bot.studio.store.generation(record.id)).is_open

        # An admin named by the operator sees every server's queue; a server admin here sees this server's.
        everything = await answer_of(fake, fake.slash("queue", **elsewhere(user_id=4004)))
        assert "secret sunrise" in everything and "first kite" in everything
        here = await answer_of(fake, fake.slash("queue", user_id=3003, permissions=MANAGE_SERVER))
        assert "secret sunrise" in here and "first kite" not in here
        # The same person with Manage Server in the video's own server may cancel it.
        cancel = fake.slash("cancel", {"video": record.id}, user_id=3003, permissions=MANAGE_SERVER)
        assert f"Cancelled #{record.id}" in await answer_of(fake, cancel)
        await bot.deliveries.wait_idle()
        assert (await bot.studio.store.generation(record.id)).status == CANCELLED


async def test_another_members_video_stays_in_its_server_and_dm_videos_with_their_owner(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        open_other_server(fake)
        fake.slash("video", {"prompt": "a secret garden party"})
        fake.slash("video", {"prompt": "a private diary page"}, dm=True)
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        records = await bot.studio.store.history(1001)
        (garden,) = [r for r in records if "garden" in r.request_text]
        (diary,) = [r for r in records if "diary" in r.request_text]
        assert (garden.guild_id, diary.guild_id) == (GUILD_ID, None)

        # /history of another member: only what they made in the server asked from.
        there = await answer_of(fake, fake.slash("history", **member_option(1001), **elsewhere(user_id=2002)))
        assert "garden" not in there and "diary" not in there
        here = await answer_of(fake, fake.slash("history", **member_option(1001), user_id=2002))
        assert "garden" in here and "diary" not in here
        in_dm = await answer_of(fake, fake.slash("history", **member_option(1001), user_id=2002, dm=True))
        assert "garden" not in in_dm and "diary" not in in_dm
        mine = await answer_of(fake, fake.slash("history", user_id=1001, dm=True))
        assert "garden" in mine and "diary" in mine  # a member's own list has everything

        # Re-run, re-roll or shrink someone else's clip from another server (a re-run button from /history, or an
        # old message with its buttons): refused as if it did not exist, and its prompt is not posted there.
        for record in (garden, diary):
            buttons = [f"hanul:{action}:{record.id}" for action in ("rerun", "reroll", "smaller")]
            message_id = fake.old_bot_message(OTHER_CHANNEL_ID, buttons)
            for custom_id in buttons:
                refusal = await answer_of(fake, fake.click(message_id, custom_id, user_id=2002))
                assert "I can't find that video" in refusal, custom_id
        # Not even in the server it was made in, for the DM video.
        here_message = fake.old_bot_message(CHANNEL_ID, [f"hanul:rerun:{diary.id}"])
        refusal = await answer_of(fake, fake.click(here_message, f"hanul:rerun:{diary.id}", user_id=2002))
        assert "I can't find that video" in refusal
        assert await bot.studio.store.history(2002) == []
        elsewhere_posts, here_posts = posted_in(fake, OTHER_CHANNEL_ID), posted_in(fake, CHANNEL_ID)
        assert garden.expanded_prompt not in elsewhere_posts and diary.expanded_prompt not in elsewhere_posts
        assert diary.expanded_prompt not in here_posts
        # In the server it was made in, another member may re-run it there.
        rerun_here = fake.old_bot_message(CHANNEL_ID, [f"hanul:rerun:{garden.id}"])
        fake.click(rerun_here, f"hanul:rerun:{garden.id}", user_id=2002)
        await wait_until(lambda: len(fake.clips()) == 3)
        await bot.deliveries.wait_idle()
        (rerun,) = await bot.studio.store.history(2002)
        assert (rerun.kind, rerun.guild_id, rerun.status) == ("rerun", GUILD_ID, POSTED)


async def test_following_up_on_your_own_clip_is_never_refused_by_the_cooldown(tmp_path, monkeypatch):
    from tests.bot.test_discord import make_clip, message_id_of

    async with running_bot(tmp_path / "data", monkeypatch, HANUL_COOLDOWN_SECONDS=600) as (bot, fake):
        thread_id, clip = await make_clip(fake)
        await bot.deliveries.wait_idle()
        fake.say(thread_id, "now a wave knocks it over", reply_to=message_id_of(fake, clip))  # at once
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        fake.say(thread_id, "make it night time")
        await wait_until(lambda: len(fake.clips()) == 3)
        await bot.deliveries.wait_idle()
        assert "Slow down" not in posted_in(fake, thread_id)
        kinds = sorted((r.kind, r.status) for r in await bot.studio.store.history(1001))
        assert kinds == [("extend", POSTED), ("generate", POSTED), ("refine", POSTED)]
        # A brand-new request still waits for the cooldown when a server sets one.
        slow = await answer_of(fake, fake.slash("video", {"prompt": "another cat"}))
        assert "Slow down" in slow
