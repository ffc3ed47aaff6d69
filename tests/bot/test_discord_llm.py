"""The Discord bot with its director talking to a real (local, scripted) OpenAI-compatible LLM server: what the
member sees in the thread is what the LLM wrote, in the member's language, and refinement goes through it."""

from __future__ import annotations

import json

from bot.models import POSTED
from tests.support.discord_fake import CHANNEL_ID
from tests.support.hanul_bot import running_bot, wait_until
from tests.support.llm_server import LLMServer, Reply

SURF_PROMPT = (
    "An orange tabby cat balances on a bright yellow surfboard, riding a gentle turquoise wave at sunset. "
    "Golden light glints on the spray; the camera follows from the side at water level, slow motion, cinematic."
)
NIGHT_PROMPT = (
    "An orange tabby cat balances on a bright yellow surfboard, riding a gentle wave under a full moon at night. "
    "Silver moonlight glints on the spray; the camera follows from the side at water level, slow motion, cinematic."
)
KO_REQUEST = "노을 속에서 서핑하는 고양이"
KO_TITLE = "노을 속 서핑 고양이"


def expansion(prompt: str = SURF_PROMPT, title: str = "Sunset surf cat", language: str = "en", **extra: str) -> dict:
    return {"prompt": prompt, "negative_prompt": "blurry, text", "title": title, "language": language, **extra}


def with_llm(server: LLMServer) -> dict[str, object]:
    return {"LLM_BASE_URL": server.base_url, "LLM_MODEL": "test-model", "LLM_TIMEOUT": 2, "LLM_MAX_RETRIES": 0}


async def wait_for_clips(fake, count: int) -> None:
    await wait_until(lambda: len(fake.clips()) >= count)


async def test_the_prompt_shown_in_the_thread_and_rendered_is_the_llms(tmp_path, monkeypatch, llm_server):
    llm_server.add(Reply.json(expansion()))
    async with running_bot(tmp_path / "data", monkeypatch, **with_llm(llm_server)) as (bot, fake):
        fake.slash("video", {"prompt": "a cat surfing at sunset"})
        thread = await fake.wait_for("POST", "/threads")
        assert thread.json["name"] == "🎬 Sunset surf cat"  # the LLM's title names the thread
        thread_id = int(thread.path.split("/")[4])
        shown = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "Prompt" in c.content)
        assert "written by the director" in shown.content and SURF_PROMPT in shown.content
        assert "ℹ️" not in shown.content  # no fallback notice: the LLM answered
        await wait_for_clips(fake, 1)
        await bot.deliveries.wait_idle()

        record = (await bot.studio.store.history(1001))[0]
        assert (record.status, record.expanded_prompt, record.llm_written) == (POSTED, SURF_PROMPT, True)
        assert record.negative_prompt == "blurry, text"
        (asked,) = llm_server.chat_requests
        assert "<request>\na cat surfing at sunset\n</request>" in asked.messages[-1]["content"]
        assert llm_server.unscripted == 0


async def test_a_korean_request_gets_a_korean_title_and_korean_replies(tmp_path, monkeypatch, llm_server):
    llm_server.add(Reply.json(expansion(title=KO_TITLE, language="ko")))
    async with running_bot(tmp_path / "data", monkeypatch, **with_llm(llm_server)) as (bot, fake):
        fake.slash("video", {"prompt": KO_REQUEST}, locale="ko")
        status = await fake.wait_for("POST", f"/channels/{CHANNEL_ID}/messages")
        assert KO_TITLE in status.content and "시작하는 중" in status.content
        thread = await fake.wait_for("POST", "/threads")
        assert thread.json["name"] == f"🎬 {KO_TITLE}"
        thread_id = int(thread.path.split("/")[4])
        shown = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "프롬프트" in c.content)
        assert "디렉터가 작성" in shown.content and SURF_PROMPT in shown.content  # the model still gets English
        await wait_for_clips(fake, 1)
        clip = fake.clips()[0]
        assert KO_TITLE in clip.content and "요청: <@1001>" in clip.content
        await fake.wait_for("PATCH", f"/messages/{thread_id}", lambda c: f"**{KO_TITLE}** — 완성" in c.content)
        started = await fake.wait_for("POST", "/webhooks/", lambda c: "discord.com/channels" in c.content)
        assert started.json["flags"] & 64
        await bot.deliveries.wait_idle()
        record = (await bot.studio.store.history(1001))[0]
        assert (record.title, record.language, record.request_text) == (KO_TITLE, "ko", KO_REQUEST)


async def test_refining_in_the_thread_renders_the_llms_revision_and_says_what_changed(
    tmp_path, monkeypatch, llm_server
):
    llm_server.add(
        Reply.json(expansion()),
        Reply.json(expansion(NIGHT_PROMPT, summary="Sunset became a moonlit night.")),
    )
    async with running_bot(tmp_path / "data", monkeypatch, **with_llm(llm_server)) as (bot, fake):
        fake.slash("video", {"prompt": "a cat surfing at sunset"})
        thread = await fake.wait_for("POST", "/threads")
        thread_id = int(thread.path.split("/")[4])
        await wait_for_clips(fake, 1)
        await bot.deliveries.wait_idle()

        fake.say(thread_id, "make it night time")
        changed = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "Changed:" in c.content)
        assert "✏️ Changed: Sunset became a moonlit night." in changed.content
        assert NIGHT_PROMPT in changed.content and "written by the director" in changed.content
        await wait_for_clips(fake, 2)
        await bot.deliveries.wait_idle()

        first, second = sorted(await bot.studio.store.history(1001), key=lambda r: r.id)
        assert (second.kind, second.expanded_prompt, second.llm_written) == ("refine", NIGHT_PROMPT, True)
        assert second.seed == first.seed and second.status == POSTED
        # The LLM saw the current prompt, the dialogue so far and the new message.
        revise = llm_server.chat_requests[1]
        assert f"<current_prompt>\n{SURF_PROMPT}\n</current_prompt>" in revise.messages[-1]["content"]
        assert "<message>\nmake it night time\n</message>" in revise.messages[-1]["content"]
        assert any("a cat surfing at sunset" in m["content"] for m in revise.messages[1:-1])
        conversation = await bot.studio.store.conversation_by_thread(thread_id)
        assert conversation.current_prompt == NIGHT_PROMPT
        turns = await bot.studio.store.turns(conversation.id)
        assert turns[-1].content == "Sunset became a moonlit night."


async def test_a_blocked_word_in_the_llms_title_or_summary_is_never_posted(tmp_path, monkeypatch, llm_server):
    gory_title = expansion(title="Gore surf cat")
    gory_summary = expansion(NIGHT_PROMPT, summary="Sunset became a night of gore.")
    # Each reply is sent back once for repair; the repair repeats the word, so the offline writer takes over.
    llm_server.add(Reply.json(gory_title), Reply.json(gory_title), Reply.json(gory_summary), Reply.json(gory_summary))
    settings = with_llm(llm_server) | {"HANUL_BLOCKED_WORDS": "gore"}
    async with running_bot(tmp_path / "data", monkeypatch, **settings) as (bot, fake):
        fake.slash("video", {"prompt": "a cat surfing at sunset"})
        thread = await fake.wait_for("POST", "/threads")
        thread_id = int(thread.path.split("/")[4])
        await wait_for_clips(fake, 1)
        await bot.deliveries.wait_idle()
        fake.say(thread_id, "make it night time")
        await wait_for_clips(fake, 2)
        await bot.deliveries.wait_idle()

        assert "not allowed: gore" in llm_server.chat_requests[1].messages[-1]["content"]
        posted = [json.dumps(c.json, ensure_ascii=False).lower() for c in fake.calls if c.method in ("POST", "PATCH")]
        assert posted and not [p for p in posted if "gore" in p]
        assert all(not r.llm_written for r in await bot.studio.store.history(1001))


async def test_a_prompt_used_as_typed_or_edited_by_hand_passes_the_block_list(tmp_path, monkeypatch):
    from tests.bot.test_discord import make_clip

    async with running_bot(tmp_path / "data", monkeypatch, HANUL_BLOCKED_WORDS="gore") as (bot, fake):
        fake.slash("video", {"prompt": "a gore scene", "enhance": False})
        await fake.wait_for("POST", "/webhooks/", lambda c: "does not allow: “gore”" in c.content)
        thread_id, _ = await make_clip(fake, "a cat surfing at sunset")
        await bot.deliveries.wait_idle()
        (record,) = [r for r in await bot.studio.store.history(1001) if r.status == POSTED]
        fake.submit_modal(f"hanul:edit-modal:{record.id}", {"prompt": "a cat covered in gore"}, channel_id=thread_id)
        await wait_until(lambda: len(fake.find("POST", "/webhooks/", lambda c: "does not allow" in c.content)) == 2)
        posted = [json.dumps(c.json, ensure_ascii=False).lower() for c in fake.calls if "/channels/" in c.path]
        assert not [p for p in posted if "gore" in p]
        assert [r.kind for r in await bot.studio.store.history(1001) if r.status == POSTED] == ["generate"]
