"""What Hanul says on Discord under attack: text it did not write (a generator's error, a member's title, the LLM's
words) never pushes a message past Discord's limits nor brings its own Markdown into the bot's messages; a
deleted status message is not edited again and again; another member's extension in the owner's thread does not
become what the owner's refinements build on."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot.limits import Requester
from bot.models import FAILED, POSTED
from bot.studio import Destination, VideoOptions
from tests.support.discord_fake import CHANNEL_ID, CONTENT_LIMIT, GUILD_ID
from tests.support.hanul_bot import running_bot, wait_until

MASKED = "[free nitro](https://evil.example)"
UNESCAPED = re.compile(r"(?<!\\)\[free nitro\]\(")  # a masked link Discord would draw as the bot's own


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def edits_of(fake, message_id: int) -> list:
    """Every edit of one message the bot tried, refused ones included."""
    return [c for c in fake.attempts if c.method == "PATCH" and c.path.endswith(f"/messages/{message_id}")]


async def answer_to(fake, payload: dict) -> str:
    """The one answer an interaction got."""
    await wait_until(lambda: any(payload["token"] in c.path and c.content for c in fake.calls))
    (said,) = [c.content for c in fake.calls if payload["token"] in c.path and c.content]
    return said


async def status_of(fake, prompt: str) -> int:
    """The id of the status message of a /video (its thread has the same id)."""
    thread = await fake.wait_for("POST", "/threads", lambda c: prompt[:10] in c.json["name"])
    return int(thread.path.split("/")[4])


@contextlib.asynccontextmanager
async def generator_failing_with(message: str) -> AsyncIterator[str]:
    """A generator at GENERATOR_URL that queues a job, then refuses to say more about it with `message` (a 400 in
    OpenAI's error shape); yields its base URL."""

    async def create(request: web.Request) -> web.Response:
        await request.read()
        video = {"id": "video_long1", "object": "video", "status": "queued", "progress": 0, "created_at": 1}
        return web.json_response(video | {"model": "m", "seconds": "1", "size": "1280x720", "prompt": ""})

    async def retrieve(request: web.Request) -> web.Response:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        return web.json_response({"error": error}, status=400)

    app = web.Application()
    app.router.add_post("/v1/videos", create)
    app.router.add_get("/v1/videos/{id}", retrieve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def test_a_generator_error_longer_than_a_message_still_ends_the_status(tmp_path, monkeypatch, caplog):
    error = "the model said: " + "**nope** `x` " * 300  # 3916 characters, Markdown included
    async with (
        generator_failing_with(error) as url,
        running_bot(tmp_path / "data", monkeypatch, GENERATOR_URL=url) as (bot, fake),
    ):
        fake.slash("video", {"prompt": "a cat on a boat"})
        status_id = await status_of(fake, "a cat on a boat")
        await wait_until(lambda: any("failed" in c.content for c in edits_of(fake, status_id)))
        await bot.deliveries.wait_idle()
        (failed,) = [c for c in edits_of(fake, status_id) if "failed" in c.content]
        assert failed.status == 200 and len(failed.content) <= CONTENT_LIMIT
        assert failed.content.startswith("❌ **a cat on a boat** — failed: the model said: \\*\\*nope\\*\\* \\`x\\`")
        assert failed.content.endswith("…") and failed.custom_ids == []  # the progress bar and its button are gone
        (record,) = await bot.studio.store.history(1001)
        assert record.status == FAILED
    assert errors_logged(caplog) == []


async def test_history_of_long_titles_links_and_descriptions_fits_in_one_message(tmp_path, monkeypatch, caplog):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        member = Requester(user_id=1001, name="mina", guild_id=GUILD_ID, channel_id=CHANNEL_ID)
        place = Destination(guild_id=GUILD_ID, channel_id=CHANNEL_ID, max_bytes=10 * 1024 * 1024)
        for n in range(5):
            request = f"{MASKED} {n} a very long winded request about a cat who sails the world in a small boat"
            draft = await bot.studio.new_video(member, request, VideoOptions(), place)
            await bot.studio.store.update_generation(
                draft.generation.id,
                status=POSTED,
                thread_id=fake.snowflake(),
                result_message_id=fake.snowflake(),
                description="A grey cat in a yellow raincoat steers a small boat through high waves at dusk, " * 3,
            )
        for locale in ("en-US", "ko"):
            said = await answer_to(fake, fake.slash("history", user_id=1001, locale=locale))
            assert len(said) <= CONTENT_LIMIT
            assert said.count("https://discord.com/channels/") == 5  # every clip's link, whole
            assert said.count("\\[free nitro](https://evil.example) ") == 5  # every title, escaped
            assert not UNESCAPED.search(said)
            looks = [line for line in said.splitlines() if "↳ A grey cat in a yellow raincoat" in line]
            assert len(looks) == 5 and all(line.endswith("…") for line in looks)  # the LLM's words cut, not dropped
            assert said.endswith(("Page 1 of 1", "1쪽 중 1쪽"))
    assert errors_logged(caplog) == []


async def test_a_members_markdown_is_shown_as_typed_not_as_the_bots_own(tmp_path, monkeypatch, caplog):
    prompt = f"{MASKED} ||a cat|| ```on a boat"
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.slash("video", {"prompt": prompt})
        status_id = await status_of(fake, prompt)
        await wait_until(lambda: len(fake.clip_messages()) == 1)
        await bot.deliveries.wait_idle()
        (thread,) = fake.find("POST", "/threads")
        assert MASKED in thread.json["name"]  # no Markdown in a thread's name: shown as it is
        said = [c for c in fake.calls if c.content and c.method in ("POST", "PATCH") and "/threads" not in c.path]
        for call in said:
            assert not UNESCAPED.search(call.content), call.content
            assert "||a cat||" not in call.content and "```" not in call.content, call.content
        mine = [c.content for c in said if f"/channels/{CHANNEL_ID}/messages" in c.path or str(status_id) in c.path]
        assert any(c.startswith("✅ **\\[free nitro](https://evil.example) \\|\\|a cat\\|\\|") for c in mine), mine
        (prompt_shown,) = [c.content for c in said if "**Prompt**" in c.content]
        assert "\\[free nitro](https://evil.example)" in prompt_shown
        (caption,) = [c.content for c in fake.clips()]
        assert caption.startswith("🎞️ **\\[free nitro](https://evil.example) \\|\\|a cat\\|\\| \\`\\`\\`on a boat")
    assert errors_logged(caplog) == []


async def test_a_deleted_status_message_is_not_edited_again(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.slash("video", {"prompt": "a cat on a boat"})
        status_id = await status_of(fake, "a cat on a boat")
        fake.delete_message(status_id, CHANNEL_ID)  # a moderator tidies the channel; the thread stays
        await wait_until(lambda: len(fake.clip_messages()) == 1)
        await bot.deliveries.wait_idle()
        (gone,) = edits_of(fake, status_id)  # one edit learns it is gone (404, Unknown Message); no more are tried
        assert gone.status == 404
        (record,) = await bot.studio.store.history(1001)
        assert record.status == POSTED  # the clip is posted all the same
    assert not [r for r in caplog.records if "could not edit the status message" in r.getMessage()]
    assert errors_logged(caplog) == []


async def test_another_members_extension_in_the_owners_thread_is_not_what_the_owners_refinement_builds_on(
    tmp_path, monkeypatch, caplog
):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.slash("video", {"prompt": "a cat on a boat"})
        await wait_until(lambda: len(fake.clip_messages()) == 1)
        await bot.deliveries.wait_idle()
        clip = fake.clip_messages()[0]
        thread_id = int(clip["channel_id"])
        fake.say(thread_id, "a huge wave knocks it over", reply_to=int(clip["id"]), user_id=2002)
        await wait_until(lambda: len(fake.clip_messages()) == 2)
        await bot.deliveries.wait_idle()
        fake.say(thread_id, "make it night time")  # the owner refines their clip
        await wait_until(lambda: len(fake.clip_messages()) == 3)
        await bot.deliveries.wait_idle()
        (extension,) = await bot.studio.store.history(2002)
        cat, night = sorted(await bot.studio.store.history(1001), key=lambda r: r.id)
        assert night.kind == "refine" and night.parent_id == cat.id and night.conversation_id == cat.conversation_id
        assert "wave" not in night.expanded_prompt.lower()
        (shown,) = [c.content for c in fake.find("POST", f"/channels/{thread_id}/messages") if "night" in c.content]
        assert "wave" not in shown.lower()  # the prompt the owner is shown is theirs
        # The extension is its maker's own clip: theirs to extend or re-roll, outside the owner's conversation.
        assert extension.kind == "extend" and extension.parent_id == cat.id and extension.conversation_id is None
    assert errors_logged(caplog) == []


def test_a_members_words_in_a_code_span_are_shown_as_typed():
    from bot.cogs._common import fit
    from bot.i18n import Quoted

    name = Quoted("my_cat*`x")
    said = fit("**{name}** is ready. Use it with `/video character:{name}`. {count:>3} {{kept}}", name=name, count=5)
    # Bold renders Markdown: escaped. A code span renders none: as typed, its backtick shown as a look-alike.
    assert said == "**my\\_cat\\*\\`x** is ready. Use it with `/video character:my_cat*ˋx`.   5 {kept}"
