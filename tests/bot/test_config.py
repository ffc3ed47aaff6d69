"""`/config`: a server's own settings, set from inside Discord by members who manage it, driven through real
discord.py against the fake Discord; the environment's values stay every other server's."""

from __future__ import annotations

import discord

from bot.guild_config import GuildConfigs, defaults, resolve
from bot.settings import BotSettings
from tests.support.discord_fake import CHANNEL_ID, EPHEMERAL, GUILD_ID, guild_payload, text_channel_payload
from tests.support.hanul_bot import running_bot, wait_until

MANAGE = discord.Permissions(manage_guild=True).value
OTHER_GUILD = GUILD_ID + 7
OTHER_CHANNEL = CHANNEL_ID + 7
SECOND_CHANNEL = CHANNEL_ID + 8


def join_other_server(fake) -> None:
    """The bot is in a second server too (and the first has a second channel)."""
    fake.feed("GUILD_CREATE", guild_payload(OTHER_GUILD, channels=[text_channel_payload(OTHER_CHANNEL, OTHER_GUILD)]))
    channels = [text_channel_payload(), text_channel_payload(SECOND_CHANNEL, name="memes")]
    fake.feed("GUILD_CREATE", guild_payload(channels=channels, roles=[555]))


def configure(fake, subcommand: str, options: dict | None = None, **who) -> None:
    fake.slash("config", options, subcommand=subcommand, **{"permissions": MANAGE, **who})


async def answered(fake, words: str):
    call = await fake.wait_for("POST", "/webhooks/", lambda c: words in c.content)
    assert call.json["flags"] & EPHEMERAL
    return call


def settings_lines(call) -> str:
    """A /config answer below its title (which explains the ✎ mark)."""
    return call.content.split("operator's defaults)\n", 1)[1]


async def started(fake, prompt: str):
    """The thread a /video opened, by its name."""
    return await fake.wait_for("POST", "/threads", lambda c: prompt in (c.json or {}).get("name", ""))


async def test_config_is_registered_for_server_managers_only(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (_, fake):
        (config,) = [c for c in fake.find("PUT", "/commands")[0].json if c["name"] == "config"]
        assert int(config["default_member_permissions"]) == MANAGE  # Discord hides it from everyone else
        assert config["contexts"] == [0]  # servers only, never DMs
        assert {o["name"] for o in config["options"]} == {
            "show",
            "limits",
            "defaults",
            "output",
            "language",
            "channel",
            "role",
            "reset",
        }


async def test_config_changes_one_server_and_not_another(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        join_other_server(fake)
        configure(fake, "defaults", {"seconds": 2.0, "aspect": "9:16", "style": "claymation"})
        saved = await answered(fake, "Saved.")
        assert "default 2s · shape 9:16 · style claymation ✎" in saved.content
        configure(fake, "show", guild_id=OTHER_GUILD, channel_id=OTHER_CHANNEL)
        other = await answered(fake, "default 1s")  # the operator's HANUL_DEFAULT_SECONDS, unchanged
        assert "9:16" not in other.content and "✎" not in settings_lines(other)

        fake.slash("video", {"prompt": "a snail racing"})
        fake.slash("video", {"prompt": "a slug racing"}, guild_id=OTHER_GUILD, channel_id=OTHER_CHANNEL)
        await started(fake, "a snail racing")
        await started(fake, "a slug racing")
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        made = {r.request_text: r for r in await bot.studio.store.history(1001)}
        here, there = made["a snail racing"], made["a slug racing"]
        assert (here.params["seconds"], here.params["aspect"], here.params["style"]) == (2.0, "9:16", "claymation")
        assert (there.params["seconds"], there.params["aspect"], there.params["style"]) == (1.0, "16:9", None)
        assert "claymation" in here.expanded_prompt.lower() and "claymation" not in there.expanded_prompt.lower()


async def test_members_who_do_not_manage_the_server_are_refused(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        # Discord shows the command to managers only, but a server can grant it to anyone in its integration
        # settings: the bot checks again.
        configure(fake, "limits", {"daily_quota": 1}, permissions=0, user_id=2002)
        await answered(fake, "Only members who can manage this server")
        configure(fake, "show", permissions=0, user_id=2002)
        await wait_until(lambda: len(fake.find("POST", "/webhooks/", lambda c: "Only members" in c.content)) == 2)
        assert (await bot.studio.config(GUILD_ID)).overridden == frozenset()


async def test_a_daily_quota_set_with_config_applies_in_that_server_only(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        join_other_server(fake)
        configure(fake, "limits", {"daily_quota": 1})
        assert "· 1 a day · 0s between requests ✎" in (await answered(fake, "Saved.")).content
        fake.slash("video", {"prompt": "a heron fishing"})
        await started(fake, "a heron fishing")
        fake.slash("video", {"prompt": "a second heron"})
        refusal = await answered(fake, "You've used all 1 videos for today")
        assert refusal.json["flags"] & EPHEMERAL
        fake.slash("video", {"prompt": "a crane fishing"}, guild_id=OTHER_GUILD, channel_id=OTHER_CHANNEL)
        await started(fake, "a crane fishing")  # the other server keeps the operator's quota of 20
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        assert sorted(r.request_text for r in await bot.studio.store.history(1001)) == [
            "a crane fishing",
            "a heron fishing",
        ]

        configure(fake, "reset", {"setting": "daily_quota"})
        assert "20 a day" in (await answered(fake, "20 a day")).content
        fake.slash("video", {"prompt": "a third heron"})
        await started(fake, "a third heron")  # back to the operator's default
        await wait_until(lambda: len(fake.clips()) == 3)
        await bot.deliveries.wait_idle()


async def test_a_server_may_tighten_the_operators_limits_but_not_loosen_them(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch, HANUL_MAX_SECONDS=10) as (bot, fake):
        configure(fake, "limits", {"longest": 30.0})
        await answered(fake, "`max_seconds` must be from 1 to 10 here")
        configure(fake, "limits", {"longest": 3.0, "queue": 1})
        await answered(fake, "longest 3s")
        fake.slash("video", {"prompt": "a fox", "seconds": 5.0})
        await answered(fake, "1 to 3 seconds")
        assert (await bot.studio.config(GUILD_ID)).max_seconds == 3.0
        assert (await bot.studio.config(OTHER_GUILD)).max_seconds == 10.0


async def test_allowed_channels_and_the_servers_language(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        join_other_server(fake)
        memes = text_channel_payload(SECOND_CHANNEL, name="memes") | {"permissions": "0"}
        configure(
            fake,
            "channel",
            {"action": "add", "channel": str(SECOND_CHANNEL)},
            types={"channel": 7},
            resolved={"channels": {str(SECOND_CHANNEL): memes}},
        )
        await answered(fake, f"Channels: <#{SECOND_CHANNEL}> ✎")
        configure(fake, "language", {"language": "ko"})
        await answered(fake, "저장했습니다.")  # the server's language from now on

        fake.slash("video", {"prompt": "an owl"})  # a member whose Discord speaks English
        refusal = await answered(fake, "이 채널에서는 Hanul을 쓸 수 없습니다")
        assert f"<#{SECOND_CHANNEL}>" in refusal.content
        fake.slash("video", {"prompt": "an owl"}, guild_id=OTHER_GUILD, channel_id=OTHER_CHANNEL)
        await started(fake, "an owl")  # the other server: everywhere, and in the member's own language
        status = await fake.wait_for("POST", f"/channels/{OTHER_CHANNEL}/messages")
        assert "starting" in status.content
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()

        configure(fake, "reset", {"setting": "all"})
        reset = await answered(fake, "Channels: everywhere")
        assert "✎" not in settings_lines(reset) and (await bot.studio.config(GUILD_ID)).overridden == frozenset()


def test_stored_choices_the_operator_no_longer_allows_are_ignored():
    """The operator lowered a limit after a server chose more: the server gets the operator's limit."""
    settings = BotSettings(HANUL_MAX_SECONDS=8, HANUL_DAILY_QUOTA=5, HANUL_DEFAULT_SECONDS=4)
    config = resolve(settings, GUILD_ID, {"max_seconds": 12, "daily_quota": 3, "default_seconds": 9, "bogus": 1})
    assert (config.max_seconds, config.daily_quota, config.default_seconds) == (8.0, 3, 4.0)
    assert config.overridden == frozenset({"daily_quota"})
    shorter = resolve(settings, GUILD_ID, {"max_seconds": 2})
    assert (shorter.max_seconds, shorter.default_seconds) == (2.0, 2.0)  # the default fits under it
    assert defaults(settings).guild_id is None


async def test_a_guild_row_round_trips_and_reset_removes_only_that_field(sqlite_engine):
    settings = BotSettings(HANUL_DAILY_QUOTA=5)
    configs = GuildConfigs(settings, sqlite_engine)
    config = await configs.change(GUILD_ID, 1001, {"daily_quota": 2, "allowed_role_ids": [555, 555, 556]})
    assert (config.daily_quota, config.allowed_role_ids) == (2, (555, 556))
    config = await configs.change(GUILD_ID, 1001, {"output_policy": "spoiler"}, reset=("daily_quota",))
    assert (config.daily_quota, config.output_policy, config.allowed_role_ids) == (5, "spoiler", (555, 556))
    assert (await configs.effective(OTHER_GUILD)) == defaults(settings, OTHER_GUILD)
