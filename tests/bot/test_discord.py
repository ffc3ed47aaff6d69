"""The Discord bot, driven through real discord.py with real-shaped gateway and REST payloads (see
tests/support/discord_fake.py), the real generator (tiny model) and the offline director."""

from __future__ import annotations

from bot.models import POSTED
from tests.support.discord_fake import CHANNEL_ID, EPHEMERAL, Call
from tests.support.hanul_bot import running_bot


def is_ephemeral_followup(call: Call) -> bool:
    return call.method == "POST" and "/webhooks/" in call.path and bool((call.json or {}).get("flags", 0) & EPHEMERAL)


async def test_video_command_defers_threads_shows_progress_and_posts_the_clip(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        sync = fake.find("PUT", "/commands")[0]
        assert {"video", "history", "queue", "cancel", "settings", "help", "Extend this video"} <= {
            c["name"] for c in sync.json
        }
        fake.slash("video", {"prompt": "a cat surfing at sunset", "seconds": 1.0, "aspect": "16:9"})
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
        edits = fake.find("PATCH", f"/messages/{status_id}")
        assert edits and "done" in edits[-1].content  # the status message ends with a link to the clip
        started = await fake.wait_for("POST", "/webhooks/", is_ephemeral_followup)
        assert "discord.com/channels" in started.content

        await bot.deliveries.wait_idle()
        record = (await bot.studio.store.history(1001))[0]
        assert record.status == POSTED and record.thread_id == status_id and record.result_message_id
        assert record.params["max_bytes"] < 10 * 1024 * 1024  # asked the generator to fit the upload limit
