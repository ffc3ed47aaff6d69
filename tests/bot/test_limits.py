import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.limits import Limits, Refusal, Requester
from bot.settings import BotSettings
from bot.store import NewGeneration, Store


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)  # rows get real creation times

    def __call__(self) -> datetime:
        return self.now


def make(sqlite_engine, clock=None, **settings):
    store = Store(sqlite_engine)
    limits = Limits(BotSettings(**settings), store, clock=clock)
    return store, limits


async def admit(store, limits, requester):
    await store.ensure_member(requester.user_id)
    return await limits.admit(
        requester,
        lambda: store.create_generation(NewGeneration(user_id=requester.user_id, kind="generate", request_text="x")),
    )


async def test_queue_cap_holds_under_concurrent_requests(sqlite_engine):
    store, limits = make(sqlite_engine, HANUL_MAX_QUEUED_PER_USER=2, HANUL_COOLDOWN_SECONDS=0)
    member = Requester(user_id=5)
    results = await asyncio.gather(*(admit(store, limits, member) for _ in range(5)), return_exceptions=True)
    refusals = [r for r in results if isinstance(r, Refusal)]
    assert len(refusals) == 3 and {r.code for r in refusals} == {"queue_full"}
    assert refusals[0].values == {"count": 2, "limit": 2}


async def test_cooldown_is_persisted_and_says_how_long_to_wait(sqlite_engine):
    clock = Clock()
    store, limits = make(sqlite_engine, clock, HANUL_COOLDOWN_SECONDS=30)
    member = Requester(user_id=5)
    first = await admit(store, limits, member)
    await store.mark_posted(first.id, 1)
    clock.now += timedelta(seconds=10)
    # A fresh Limits (a restarted bot) still knows when the member last asked.
    limits = Limits(BotSettings(HANUL_COOLDOWN_SECONDS=30), store, clock=clock)
    with pytest.raises(Refusal) as refused:
        await admit(store, limits, member)
    assert (refused.value.code, refused.value.values) == ("cooldown", {"seconds": 20})
    clock.now += timedelta(seconds=21)
    await admit(store, limits, member)


async def test_daily_quota_counts_today_only(sqlite_engine):
    clock = Clock()
    store, limits = make(sqlite_engine, clock, HANUL_COOLDOWN_SECONDS=0, HANUL_DAILY_QUOTA=2)
    member = Requester(user_id=5)
    for _ in range(2):
        record = await admit(store, limits, member)
        await store.mark_posted(record.id, None)
    with pytest.raises(Refusal) as refused:
        await admit(store, limits, member)
    assert refused.value.code == "quota" and refused.value.values["limit"] == 2


async def test_admins_bypass_limits_but_members_need_allowed_channels_and_roles(sqlite_engine):
    store, limits = make(
        sqlite_engine,
        HANUL_MAX_QUEUED_PER_USER=1,
        HANUL_ALLOWED_CHANNEL_IDS="10",
        HANUL_ALLOWED_ROLE_IDS="20",
        HANUL_ADMIN_ROLE_IDS="30",
    )
    with pytest.raises(Refusal) as refused:
        await admit(store, limits, Requester(user_id=1, guild_id=9, channel_id=11, role_ids=(20,)))
    assert refused.value.code == "channel" and "<#10>" in refused.value.values["channels"]
    with pytest.raises(Refusal) as refused:
        await admit(store, limits, Requester(user_id=1, guild_id=9, channel_id=10, role_ids=(21,)))
    assert refused.value.code == "role"
    # A thread inside an allowed channel is allowed; DMs have no channel list to obey.
    await admit(store, limits, Requester(user_id=1, guild_id=9, channel_id=12, parent_channel_id=10, role_ids=(20,)))
    admin = Requester(user_id=2, guild_id=9, channel_id=99, role_ids=(30,))
    for _ in range(3):
        await admit(store, limits, admin)
    await store.ensure_member(1)
    made_here = await store.create_generation(NewGeneration(user_id=1, kind="generate", request_text="x", guild_id=9))
    assert limits.may_manage(admin, made_here) and not limits.may_manage(Requester(user_id=3), made_here)


async def test_server_admins_manage_only_their_servers_videos_and_get_no_limit_bypass(sqlite_engine):
    store, limits = make(sqlite_engine, HANUL_MAX_QUEUED_PER_USER=1, HANUL_ADMIN_USER_IDS="7")
    await store.ensure_member(1)
    made_in_a = await store.create_generation(NewGeneration(user_id=1, kind="generate", request_text="x", guild_id=9))
    made_in_dm = await store.create_generation(NewGeneration(user_id=1, kind="generate", request_text="y"))
    admin_of_b = Requester(user_id=2, guild_id=8, server_admin=True)
    admin_of_a = Requester(user_id=2, guild_id=9, server_admin=True)
    assert not limits.may_manage(admin_of_b, made_in_a) and limits.may_manage(admin_of_a, made_in_a)
    assert not limits.may_manage(admin_of_a, made_in_dm)  # nobody administers a DM
    assert limits.may_manage(Requester(user_id=7), made_in_a) and limits.may_manage(Requester(user_id=7), made_in_dm)
    assert not limits.may_see(Requester(user_id=2, guild_id=8), made_in_a, 8)
    assert limits.may_see(Requester(user_id=2, guild_id=9), made_in_a, 9)
    assert not limits.may_see(Requester(user_id=2, guild_id=9), made_in_dm, 9)
    await admit(store, limits, admin_of_b)
    with pytest.raises(Refusal) as refused:
        await admit(store, limits, admin_of_b)
    assert refused.value.code == "queue_full"


async def test_the_cooldown_spares_follow_ups_on_your_own_clip(sqlite_engine):
    store, limits = make(sqlite_engine, Clock(), HANUL_COOLDOWN_SECONDS=30)
    member = Requester(user_id=5)
    first = await admit(store, limits, member)
    await store.mark_posted(first.id, 1)
    await store.ensure_member(5)
    follow_up = await limits.admit(
        member,
        lambda: store.create_generation(NewGeneration(user_id=5, kind="extend", request_text="y")),
        follow_up=True,
    )
    await store.mark_posted(follow_up.id, 2)
    with pytest.raises(Refusal) as refused:
        await admit(store, limits, member)
    assert refused.value.code == "cooldown"
    assert BotSettings().cooldown_seconds == 0  # and by default there is none
