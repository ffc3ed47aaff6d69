"""The Discord bot, driven through real discord.py with real-shaped gateway and REST payloads (see
tests/support/discord_fake.py), the real generator (tiny model) and the offline director."""

from __future__ import annotations

import asyncio

from bot.models import POSTED
from tests.support.discord_fake import CHANNEL_ID, EPHEMERAL, Call
from tests.support.hanul_bot import running_bot, wait_until


def is_ephemeral_followup(call: Call) -> bool:
    return call.method == "POST" and "/webhooks/" in call.path and bool((call.json or {}).get("flags", 0) & EPHEMERAL)


async def test_video_command_defers_threads_shows_progress_and_posts_the_clip(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        sync = fake.find("PUT", "/commands")[0]
        assert {"video", "history", "queue", "cancel", "settings", "help", "Extend this video"} <= {
            c["name"] for c in sync.json
        }
        # Four seconds render long enough (several segments) for progress edits to be seen before the end.
        fake.slash("video", {"prompt": "a cat surfing at sunset", "seconds": 4.0, "aspect": "16:9"})
        defer = await fake.wait_for("POST", "/callback")
        assert defer.json["type"] == 5 and defer.json["data"]["flags"] & EPHEMERAL  # acknowledged at once
        assert fake.calls.index(defer) < len(fake.calls)  # (first thing the interaction got)

        status = await fake.wait_for("POST", f"/channels/{CHANNEL_ID}/messages")
        assert "a cat surfing at sunset" in status.content
        thread = await fake.wait_for("POST", "/threads")
        status_id = int(thread.path.split("/")[4])
        prompt = await fake.wait_for("POST", f"/channels/{status_id}/messages", lambda c: "Prompt" in c.content)
        assert "A cat surfing at sunset" in prompt.content
        assert any(cid.startswith("hanul:edit:") for cid in prompt.custom_ids)

        clip = await fake.wait_for("POST", f"/channels/{status_id}/messages", lambda c: bool(c.files))
        ((name, data),) = clip.files.items()
        assert name.endswith(".mp4") and data[4:8] == b"ftyp"
        kinds = {cid.split(":")[1] for cid in clip.custom_ids}
        assert kinds == {"reroll", "extend", "edit", "delete"}
        # The status message's last word is a link to the clip; it is written after the upload, so wait for it.
        done = await fake.wait_for("PATCH", f"/messages/{status_id}", lambda c: "done" in c.content)
        started = await fake.wait_for("POST", "/webhooks/", is_ephemeral_followup)
        assert "discord.com/channels" in started.content

        await bot.deliveries.wait_idle()
        edits = fake.find("PATCH", f"/messages/{status_id}")
        assert edits[-1] is done and done.custom_ids == []  # no progress edit lands after it, no cancel button
        assert fake.calls.index(clip) < fake.calls.index(done)
        progress = edits[:-1]
        assert progress and all(any(c.startswith("hanul:cancel:") for c in e.custom_ids) for e in progress)
        record = (await bot.studio.store.history(1001))[0]
        assert record.status == POSTED and record.thread_id == status_id and record.result_message_id
        assert record.params["max_bytes"] < 10 * 1024 * 1024  # asked the generator to fit the upload limit


async def make_clip(fake, prompt: str = "a cat surfing at sunset", **who) -> tuple[int, Call]:
    """/video, then wait for the clip; returns the thread id and the clip's POST."""
    before = len(fake.clips())
    fake.slash("video", {"prompt": prompt}, **who)
    thread = await fake.wait_for("POST", "/threads", lambda c: prompt[:10] in (c.json or {}).get("name", ""))
    thread_id = int(thread.path.split("/")[4])
    await wait_until(lambda: len(fake.clips()) > before)
    clip = fake.clips()[-1]
    # The clip is Hanul's once it has recorded where it posted it: its status then links to it (a reply or a command
    # on the clip sent before that would find no clip of Hanul's).
    link = f"/{message_id_of(fake, clip)}"
    await wait_until(lambda: any(c.method == "PATCH" and link in c.content for c in fake.calls))
    return thread_id, clip


def message_id_of(fake, call: Call) -> int:
    """The id the fake gave the message this POST created."""
    for message_id, message in fake.messages.items():
        if message["content"] == (call.json or {}).get("content") and message["channel_id"] == call.path.split("/")[2]:
            return message_id
    raise AssertionError("message not found")


async def test_writing_in_the_thread_refines_and_only_the_owner_can(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        thread_id, _ = await make_clip(fake)
        fake.say(thread_id, "what a nice cat", user_id=2002)  # someone else chatting: ignored
        fake.say(thread_id, "make it night time")
        changed = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "Changed:" in c.content)
        assert "night time" in changed.content.lower()
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        first, second = sorted(await bot.studio.store.history(1001), key=lambda r: r.id)
        assert second.kind == "refine" and second.parent_id == first.id and second.seed == first.seed
        assert "night time" in second.expanded_prompt.lower()
        assert await bot.studio.store.history(2002) == []


async def test_replying_to_a_clip_extends_it(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        thread_id, clip = await make_clip(fake)
        clip_id = message_id_of(fake, clip)
        fake.say(thread_id, "now a wave knocks it over", reply_to=clip_id)
        status = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "message_reference" in c.json)
        assert status.json["message_reference"]["message_id"]  # the status answers the member's reply
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        parent, child = sorted(await bot.studio.store.history(1001), key=lambda r: r.id)
        assert (child.kind, child.parent_id, child.request_text) == ("extend", parent.id, "now a wave knocks it over")


async def test_buttons_reroll_and_only_the_owner_may_delete(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        _, clip = await make_clip(fake)
        clip_id = message_id_of(fake, clip)
        reroll = next(cid for cid in clip.custom_ids if cid.startswith("hanul:reroll:"))
        fake.click(clip_id, reroll)
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        first, second = sorted(await bot.studio.store.history(1001), key=lambda r: r.id)
        assert second.kind == "reroll" and second.seed != first.seed
        assert second.expanded_prompt == first.expanded_prompt

        delete = next(cid for cid in clip.custom_ids if cid.startswith("hanul:delete:"))
        fake.click(clip_id, delete, user_id=2002)
        refusal = await fake.wait_for("POST", "/webhooks/", lambda c: "Only the member" in c.content)
        assert is_ephemeral_followup(refusal)
        assert not fake.find("DELETE", f"/messages/{clip_id}")
        fake.click(clip_id, delete)
        await fake.wait_for("DELETE", f"/messages/{clip_id}")
        await fake.wait_for("POST", "/webhooks/", lambda c: "deleted" in c.content)


async def test_extend_button_and_message_command_open_a_modal_whose_submit_extends(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        thread_id, clip = await make_clip(fake)
        clip_id = message_id_of(fake, clip)
        fake.message_command("Extend this video", clip_id)
        modal = await fake.wait_for("POST", "/callback", lambda c: c.json["type"] == 9)
        assert modal.json["data"]["custom_id"].startswith("hanul:extend-modal:")
        fake.click(clip_id, next(cid for cid in clip.custom_ids if cid.startswith("hanul:extend:")))
        await wait_until(lambda: len(fake.find("POST", "/callback", lambda c: c.json["type"] == 9)) == 2)
        fake.submit_modal(
            modal.json["data"]["custom_id"], {"what_next": "it rides into the night"}, channel_id=thread_id
        )
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        child = (await bot.studio.store.history(1001))[0]
        assert child.kind == "extend" and child.request_text == "it rides into the night"


async def test_refusals_are_ephemeral_and_say_why(tmp_path, monkeypatch):
    async with running_bot(
        tmp_path / "data",
        monkeypatch,
        HANUL_ALLOWED_CHANNEL_IDS=str(CHANNEL_ID),
        HANUL_COOLDOWN_SECONDS=600,
        HANUL_ADMIN_USER_IDS="3003",
    ) as (_, fake):
        fake.slash("video", {"prompt": "a cat"}, channel_id=CHANNEL_ID + 100)
        wrong_place = await fake.wait_for("POST", "/webhooks/", is_ephemeral_followup)
        assert "isn't enabled in this channel" in wrong_place.content and f"<#{CHANNEL_ID}>" in wrong_place.content
        fake.slash("video", {"prompt": "a cat", "seconds": 30.0})
        await fake.wait_for("POST", "/webhooks/", lambda c: "1 to 20 seconds" in c.content and is_ephemeral_followup(c))
        await make_clip(fake, "a dog")
        fake.slash("video", {"prompt": "a second dog"}, locale="ko")
        slow = await fake.wait_for("POST", "/webhooks/", lambda c: "천천히" in c.content)
        assert is_ephemeral_followup(slow)  # and in the member's language
        fake.slash("video", {"prompt": "an admin cat"}, user_id=3003)  # an admin the operator named: no cooldown
        await fake.wait_for("POST", "/threads", lambda c: "admin cat" in c.json["name"])


async def test_direct_messages_use_reply_chains_instead_of_threads(tmp_path, monkeypatch):
    from tests.support.discord_fake import DM_CHANNEL_ID

    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.slash("video", {"prompt": "a lighthouse in a storm"}, dm=True)
        await wait_until(lambda: len(fake.clips()) == 1)
        clip = fake.clips()[0]
        assert clip.path == f"/channels/{DM_CHANNEL_ID}/messages"
        assert not fake.find("POST", "/threads")
        await bot.deliveries.wait_idle()
        record = (await bot.studio.store.history(1001))[0]
        assert int(clip.json["message_reference"]["message_id"]) == record.status_message_id
        fake.say(DM_CHANNEL_ID, "make the sea calm", reply_to=record.status_message_id, dm=True)
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        refined = (await bot.studio.store.history(1001))[0]
        assert refined.kind == "refine" and refined.guild_id is None


async def test_settings_history_queue_and_cancel(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.slash("settings", {"seconds": 2.0, "aspect": "9:16", "language": "ko"})
        saved = await fake.wait_for("POST", "/webhooks/", lambda c: "저장했습니다" in c.content)
        assert is_ephemeral_followup(saved) and "9:16" in saved.content
        member = await bot.studio.store.member(1001)
        assert (member.seconds, member.aspect, member.language) == (2.0, "9:16", "ko")
        fake.slash("cancel")
        await fake.wait_for("POST", "/webhooks/", lambda c: "진행 중인 영상이 없습니다" in c.content)
        await make_clip(fake)
        await bot.deliveries.wait_idle()
        record = (await bot.studio.store.history(1001))[0]
        assert record.params["aspect"] == "9:16" and record.params["seconds"] == 2.0
        fake.slash("history")
        history = await fake.wait_for("POST", "/webhooks/", lambda c: f"#{record.id}" in c.content)
        assert f"hanul:rerun:{record.id}" in history.custom_ids
        assert f"/{record.result_message_id}" in history.content  # a link to the clip
        fake.slash("queue")
        await fake.wait_for(
            "POST", "/webhooks/", lambda c: "진행 중인 영상이 없습니다" in c.content and "⏳" not in c.content
        )
        fake.slash("help", user_id=4004)
        await fake.wait_for("POST", "/callback", lambda c: "/video" in c.content)


async def test_after_a_restart_each_unfinished_clip_is_posted_exactly_once(tmp_path, monkeypatch):
    from bot.limits import Requester
    from bot.studio import Destination, VideoOptions

    data = tmp_path / "data"
    member = Requester(user_id=1001, name="mina", guild_id=None, channel_id=CHANNEL_ID)
    place = Destination(guild_id=None, channel_id=CHANNEL_ID, max_bytes=10 * 1024 * 1024)
    async with running_bot(data, monkeypatch) as (bot, fake):
        # Two requests reach the generator, then the bot goes down before posting either.
        studio = bot.studio
        ids = []
        for prompt in ("a red kite", "a blue kite"):
            draft = await studio.new_video(member, prompt, VideoOptions(), place)
            attached = await studio.attach(draft.generation, status_message_id=fake.snowflake())
            record = await studio.submit(attached)
            ids.append(record.id)
            for _ in range(600):
                if (await studio.videos.retrieve(record.video_id)).status == "completed":
                    break
                await asyncio.sleep(0.05)
        # One was even downloaded and marked completed; the crash came before its upload.
        await studio.store.mark_completed(ids[1])
        assert not fake.clips()

    async with running_bot(data, monkeypatch) as (bot, fake):
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        for generation_id in ids:
            record = await bot.studio.store.generation(generation_id)
            assert record.status == POSTED and record.result_message_id is not None

    async with running_bot(data, monkeypatch) as (bot, fake):
        await bot.deliveries.wait_idle()
        assert fake.clips() == []  # nothing is posted twice


async def test_a_clip_too_big_for_the_channel_says_so_and_offers_a_smaller_one(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.slash("video", {"prompt": "a waterfall"}, size_limit=10 * 1024 * 1024)
        await fake.wait_for("POST", "/threads")
        generation = (await bot.studio.store.history(1001))[0]
        # The server lost its boost while the clip rendered: the upload limit is now below the clip's size.
        await bot.studio.store.update_generation(generation.id, params=generation.params | {"upload_limit": 1000})
        notice = await fake.wait_for("POST", "/messages", lambda c: "accepts at most" in c.content)
        assert not fake.clips()
        smaller = f"hanul:smaller:{generation.id}"
        assert smaller in notice.custom_ids
        fake.click(message_id_of(fake, notice), smaller)
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()
        small = (await bot.studio.store.history(1001))[0]
        assert (small.kind, small.parent_id) == ("smaller", generation.id)
        assert small.params["max_bytes"] < generation.params["max_bytes"]  # a tighter cap for the encoder
