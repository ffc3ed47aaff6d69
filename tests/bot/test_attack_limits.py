"""Members getting around the limits and rights, and careless admins: a clip's length carried past a server's longest
clip by a follow-up, the operator's role list skipped in a DM, @everyone on a server's role list, a deleted clip
re-run by someone else, and /config values no number should be. Driven through real discord.py against the fake
Discord, asserting what Hanul said there and what the generator was asked to render."""

from __future__ import annotations

import io

import discord
import pytest
from PIL import Image

from bot.guild_config import BadConfig, GuildConfigs
from bot.models import POSTED
from bot.settings import BotSettings
from tests.support.discord_fake import CHANNEL_ID, EPHEMERAL, GUILD_ID
from tests.support.hanul_bot import running_bot, wait_until

MANAGE = discord.Permissions(manage_guild=True).value
ALLOWED_ROLE = 555  # a role of the fake server


def answers_to(fake, payload: dict) -> list[str]:
    return [c.content for c in fake.calls if payload["token"] in c.path and c.content]


async def answered(fake, payload: dict) -> str:
    """The one ephemeral answer an interaction got."""
    await wait_until(lambda: bool(answers_to(fake, payload)))
    (call,) = [c for c in fake.calls if payload["token"] in c.path and c.content]
    assert (call.json or {}).get("flags", 0) & EPHEMERAL
    return call.content


def saved(fake) -> list:
    """The answers to /config that saved something."""
    return fake.find("POST", "/webhooks/", lambda c: "Saved." in c.content)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (255, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_follow_ups_are_cut_to_the_longest_clip_of_the_server_asked_from(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch, HANUL_MAX_SECONDS=3) as (bot, fake):
        # A 3 s clip made in a DM (the operator's limits), and one made here before the server chose 1 s.
        fake.slash("video", {"prompt": "a long lighthouse night", "seconds": 3.0}, dm=True)
        await wait_until(lambda: len(fake.clips()) == 1)
        fake.slash("video", {"prompt": "a long harbour morning", "seconds": 3.0})
        thread = await fake.wait_for("POST", "/threads", lambda c: "harbour" in c.json["name"])
        thread_id = int(thread.path.split("/")[4])
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        made = {r.request_text: r for r in await bot.studio.store.history(1001)}
        in_dm = made["a long lighthouse night"]
        assert in_dm.params["seconds"] == made["a long harbour morning"].params["seconds"] == 3.0
        fake.slash("config", {"longest": 1.0}, subcommand="limits", permissions=MANAGE, user_id=2002)
        await fake.wait_for("POST", "/webhooks/", lambda c: "longest 1s" in c.content)

        # The DM clip's re-run button (from /history) pressed here; a picture posted in the thread of the one made here.
        rerun = fake.old_bot_message(CHANNEL_ID, [f"hanul:rerun:{in_dm.id}"])
        assert (await answered(fake, fake.click(rerun, f"hanul:rerun:{in_dm.id}"))).startswith("🎬 ")
        await wait_until(lambda: len(fake.clips()) == 3)
        await bot.deliveries.wait_idle()
        fake.say(thread_id, "", attachments=[fake.attachment("kite.png", png(), "image/png")])
        await wait_until(lambda: len(fake.clips()) == 4)
        await bot.deliveries.wait_idle()

        follow_ups = [r for r in await bot.studio.store.history(1001) if r.kind in ("rerun", "animate")]
        assert sorted(r.kind for r in follow_ups) == ["animate", "rerun"]
        for record in follow_ups:
            assert record.guild_id == GUILD_ID and record.status == POSTED
            assert record.params["seconds"] == 1.0, record.kind
            asked = await bot.studio.videos.retrieve(record.video_id)
            assert float(asked.seconds) <= 1.0, record.kind  # what the generator rendered


async def test_the_operators_role_list_is_not_skipped_in_a_dm(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch, HANUL_ALLOWED_ROLE_IDS=str(ALLOWED_ROLE)) as (bot, fake):
        in_dm = await answered(fake, fake.slash("video", {"prompt": "a free kite"}, dm=True))
        assert "open to some roles only" in in_dm
        here = await answered(fake, fake.slash("video", {"prompt": "a free kite"}))
        assert f"<@&{ALLOWED_ROLE}>" in here
        assert await bot.studio.store.history(1001) == [] and fake.clips() == []  # nothing recorded or rendered
        fake.slash("video", {"prompt": "a paid kite"}, roles=(ALLOWED_ROLE,))
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()
        assert [r.request_text for r in await bot.studio.store.history(1001)] == ["a paid kite"]


async def test_everyone_on_a_servers_role_list_lets_every_member_in(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        everyone = {"id": str(GUILD_ID), "name": "@everyone", "permissions": "0", "position": 0, "color": 0}
        everyone |= {"hoist": False, "managed": False, "mentionable": False, "flags": 0}
        artists = everyone | {"id": str(ALLOWED_ROLE), "name": "artists", "position": 1}
        for count, role in enumerate((everyone, artists), 1):
            fake.slash(
                "config",
                {"action": "add", "role": role["id"]},
                subcommand="role",
                permissions=MANAGE,
                user_id=2002,
                types={"role": 8},
                resolved={"roles": {role["id"]: role}},
            )
            await wait_until(lambda count=count: len(saved(fake)) == count)
        assert f"Roles: everyone, <@&{ALLOWED_ROLE}> ✎" in saved(fake)[-1].content  # not a mention of the server id
        assert (await bot.studio.config(GUILD_ID)).allowed_role_ids == (GUILD_ID, ALLOWED_ROLE)
        fake.slash("video", {"prompt": "a crowd of kites"})  # a member with no role but @everyone
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()
        assert [r.status for r in await bot.studio.store.history(1001)] == [POSTED]


async def test_a_deleted_clip_cannot_be_made_again_by_another_member(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.slash("video", {"prompt": "an embarrassing dance"})
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()
        (clip,) = await bot.studio.store.history(1001)
        posted = next(m for m in fake.messages if fake.messages[m].get("attachments"))
        deleted = fake.click(posted, f"hanul:delete:{clip.id}")
        assert "deleted" in await answered(fake, deleted)

        seen = fake.slash(
            "history",
            {"member": "1001"},
            user_id=2002,
            types={"member": 6},
            resolved={"users": {"1001": {"id": "1001", "username": "mina", "discriminator": "0", "avatar": None}}},
        )
        await wait_until(lambda: bool(answers_to(fake, seen)))
        (listed,) = [c for c in fake.calls if seen["token"] in c.path and c.content]
        assert f"hanul:rerun:{clip.id}" not in listed.custom_ids
        for action in ("rerun", "reroll", "smaller"):  # an old button, or a custom_id typed by hand
            message = fake.old_bot_message(CHANNEL_ID, [f"hanul:{action}:{clip.id}"])
            refusal = await answered(fake, fake.click(message, f"hanul:{action}:{clip.id}", user_id=2002))
            assert "I can't find that video" in refusal, action
        assert await bot.studio.store.history(2002) == [] and len(fake.clips()) == 1


async def test_config_numbers_that_are_no_numbers_are_refused(sqlite_engine):
    configs = GuildConfigs(BotSettings(HANUL_COOLDOWN_SECONDS=30, HANUL_DAILY_QUOTA=5), sqlite_engine)
    for name, value in (
        ("cooldown_seconds", float("nan")),  # would pass every comparison: no cooldown at all
        ("max_seconds", float("nan")),
        ("daily_quota", float("nan")),  # int(nan) raised ValueError: a crash, not a refusal
        ("max_queued_per_user", float("inf")),
    ):
        with pytest.raises(BadConfig) as refused:
            await configs.change(GUILD_ID, 1001, {name: value})
        assert refused.value.code == "number", name
    config = await configs.effective(GUILD_ID)
    assert (config.cooldown_seconds, config.daily_quota, config.overridden) == (30.0, 5, frozenset())
