"""A look at each finished clip before it is posted: the LLM (the local OpenAI-compatible test server) is shown
the clip's spritesheet and answers with a verdict and one line of alt text; the server's output policy decides
what is posted. Driven through real discord.py against the fake Discord, the real generator (tiny model)."""

from __future__ import annotations

import logging

import discord

from bot.models import POSTED
from tests.support.discord_fake import CHANNEL_ID, GUILD_ID, guild_payload, text_channel_payload
from tests.support.hanul_bot import running_bot, wait_until
from tests.support.llm_server import LLMServer, Reply

MANAGE = discord.Permissions(manage_guild=True).value
ADULTS_CHANNEL = CHANNEL_ID + 5
SEEN = "An orange cat rides a small wave on a surfboard at sunset."


def with_vision(server: LLMServer) -> dict[str, object]:
    return {"LLM_BASE_URL": server.base_url, "LLM_TIMEOUT": 5, "LLM_MAX_RETRIES": 0, "LLM_VISION": "auto"}


def video(fake, prompt: str, **where) -> None:
    """/video as typed (`enhance` off): the only LLM call is the look at the finished clip."""
    fake.slash("video", {"prompt": prompt, "enhance": False}, **where)


async def thread_of(fake, prompt: str) -> int:
    thread = await fake.wait_for("POST", "/threads", lambda c: prompt in (c.json or {}).get("name", ""))
    return int(thread.path.split("/")[4])


async def only_record(bot):
    await bot.deliveries.wait_idle()
    (record,) = await bot.studio.store.history(1001)
    return record


async def test_the_llms_look_is_the_clips_alt_text_and_its_line_in_history(tmp_path, monkeypatch, llm_server):
    llm_server.add(Reply.json({"verdict": "fine", "description": SEEN}))
    async with running_bot(tmp_path / "data", monkeypatch, **with_vision(llm_server)) as (bot, fake):
        video(fake, "a cat surfing at sunset")
        await wait_until(lambda: len(fake.clips()) == 1)
        record = await only_record(bot)
        # The upload's multipart payload names the file and its description: Discord's alt text.
        assert fake.clips()[0].json["attachments"] == [
            {"id": 0, "filename": f"hanul-{record.id}.mp4", "description": SEEN}
        ]
        (asked,) = llm_server.chat_requests
        (image,) = asked.images
        assert image == await bot.studio.videos.download_spritesheet(record.video_id)  # the clip's own frames
        assert image[:3] == b"\xff\xd8\xff"
        assert (record.status, record.verdict, record.description) == (POSTED, "fine", SEEN)
        assert bot.studio.director.vision == "sees"

        fake.slash("history")
        await fake.wait_for("POST", "/webhooks/", lambda c: f"#{record.id}" in c.content and SEEN in c.content)


async def test_a_clip_for_adults_is_posted_as_a_spoiler_where_the_server_says_so(tmp_path, monkeypatch, llm_server):
    llm_server.add(Reply.json({"verdict": "age_restricted", "description": "A duel ends in a bloody wound."}))
    async with running_bot(tmp_path / "data", monkeypatch, **with_vision(llm_server)) as (bot, fake):
        fake.slash("config", {"policy": "spoiler"}, subcommand="output", permissions=MANAGE)
        await fake.wait_for("POST", "/webhooks/", lambda c: "Clips for adults: posted as a spoiler ✎" in c.content)
        video(fake, "a sword duel")
        await wait_until(lambda: len(fake.clips()) == 1)
        record = await only_record(bot)
        clip = fake.clips()[0]
        assert list(clip.files) == [f"SPOILER_hanul-{record.id}.mp4"]
        assert clip.json["attachments"][0]["description"] == "A duel ends in a bloody wound."
        assert (record.status, record.verdict) == (POSTED, "age_restricted")


async def test_a_withheld_clip_is_not_posted_and_the_member_is_told(tmp_path, monkeypatch, llm_server):
    llm_server.add(Reply.json({"verdict": "withhold", "description": "Something that must not be shown."}))
    async with running_bot(tmp_path / "data", monkeypatch, **with_vision(llm_server)) as (bot, fake):
        video(fake, "a harmless looking request")
        thread_id = await thread_of(fake, "a harmless looking request")
        notice = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "not posted" in c.content)
        record = await only_record(bot)
        assert notice.content.startswith("🚫 <@1001>, your clip **a harmless looking request** was not posted")
        assert "must not be shown" not in notice.content  # what it saw is not repeated where everyone reads
        assert notice.files == {} and fake.clips() == []
        assert notice.custom_ids == [f"hanul:delete:{record.id}"]  # the member may drop it
        await fake.wait_for("PATCH", f"/messages/{thread_id}", lambda c: "not posted here" in c.content)
        assert (record.status, record.verdict) == (POSTED, "withhold")  # dealt with: never posted again
        fake.slash("history")
        await fake.wait_for("POST", "/webhooks/", lambda c: f"#{record.id}" in c.content and "🚫" in c.content)


async def test_by_default_a_clip_for_adults_goes_only_to_age_restricted_channels(tmp_path, monkeypatch, llm_server):
    bloody = Reply.json({"verdict": "age_restricted", "description": "A duel ends in a bloody wound."})
    llm_server.add(bloody, bloody)
    async with running_bot(tmp_path / "data", monkeypatch, **with_vision(llm_server)) as (bot, fake):
        adults = text_channel_payload(ADULTS_CHANNEL, name="after-dark") | {"nsfw": True}
        fake.feed("GUILD_CREATE", guild_payload(GUILD_ID, channels=[text_channel_payload(), adults]))
        video(fake, "a sword duel")
        thread_id = await thread_of(fake, "a sword duel")
        notice = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "age-restricted" in c.content)
        assert f"only be posted in an age-restricted channel: <#{ADULTS_CHANNEL}>" in notice.content
        assert fake.clips() == []
        await bot.deliveries.wait_idle()

        video(fake, "a second duel", channel_id=ADULTS_CHANNEL)
        adults_thread = await thread_of(fake, "a second duel")
        await wait_until(lambda: len(fake.clips()) == 1)
        clip = fake.clips()[0]
        assert clip.path == f"/channels/{adults_thread}/messages"  # the thread of the age-restricted channel
        assert not next(iter(clip.files)).startswith("SPOILER_")
        await bot.deliveries.wait_idle()


async def test_a_text_only_llm_is_noted_once_and_clips_post_under_the_prompt_checks(
    tmp_path, monkeypatch, llm_server, caplog
):
    llm_server.vision = False
    caplog.set_level(logging.WARNING)
    settings = with_vision(llm_server) | {"HANUL_BLOCKED_WORDS": "gore"}
    async with running_bot(tmp_path / "data", monkeypatch, **settings) as (bot, fake):
        video(fake, "a gore fountain")  # the prompt checks still refuse what they always refused
        await fake.wait_for("POST", "/webhooks/", lambda c: "does not allow" in c.content)
        for number, prompt in enumerate(("a red kite", "a blue kite"), start=1):
            video(fake, prompt)
            await wait_until(lambda n=number: len(fake.clips()) == n)
            await bot.deliveries.wait_idle()
        assert all("description" not in c.json["attachments"][0] for c in fake.clips())  # posted, no alt text
        # The first clip was shown (with and without structured output), refused both times; never again after.
        assert len(llm_server.chat_requests) == 2 and all(r.images for r in llm_server.chat_requests)
        assert llm_server.unscripted == 0
        said = [r for r in caplog.records if "does not accept images" in r.getMessage()]
        assert len(said) == 1 and said[0].levelno == logging.WARNING
        assert bot.studio.director.vision == "text_only"

        fake.slash("config", subcommand="show", permissions=MANAGE)
        await fake.wait_for("POST", "/webhooks/", lambda c: "⚠️ The LLM does not accept images" in c.content)
        records = await bot.studio.store.history(1001)
        assert [(r.status, r.verdict) for r in records if r.video_id] == [(POSTED, None), (POSTED, None)]
