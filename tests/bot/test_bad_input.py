"""Issue #8, the bot's half: whatever members type or click — too long, empty, control characters, mentions,
values out of range, ids that do not exist, other members' buttons, many requests at once — they get a clear
ephemeral answer, nothing pings anyone it should not, nothing is lost and no error is logged; and no secret
reaches the log."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from bot.models import CANCELLED, POSTED
from tests.support.discord_fake import CHANNEL_ID, EPHEMERAL, Call
from tests.support.generator_service import SlowBackend, running_generator, tiny_backend
from tests.support.hanul_bot import running_bot, wait_until
from tests.support.llm_server import Reply

ADMIN = 1 << 3  # Discord's Administrator permission


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def answers_to(fake, payload: dict) -> list[Call]:
    """Everything sent back through one interaction's token: its callback and its follow-ups."""
    token = payload["token"]
    return [c for c in fake.calls if token in c.path]


def ephemeral_text(fake, payload: dict) -> str:
    """The one ephemeral answer an interaction got (after a deferral, or at once)."""
    answers = answers_to(fake, payload)
    texts = [
        c.content
        for c in answers
        if ((c.json or {}).get("flags") or (c.json or {}).get("data", {}).get("flags") or 0) & EPHEMERAL and c.content
    ]
    assert len(texts) == 1, [c.content for c in answers]
    return texts[0]


async def answered(fake, payload: dict) -> str:
    await wait_until(lambda: any(c.content for c in answers_to(fake, payload)))
    return ephemeral_text(fake, payload)


async def make_clip(fake, prompt: str, **who) -> tuple[int, int]:
    """/video and wait for its clip: (thread id, clip message id)."""
    before = len(fake.clip_messages())
    fake.slash("video", {"prompt": prompt}, **who)
    await wait_until(lambda: len(fake.clip_messages()) > before)
    clip = fake.clip_messages()[-1]
    return int(clip["channel_id"]), int(clip["id"])


BAD_VIDEO_OPTIONS = [
    ({"prompt": "x" * 5000}, "too long (5000 characters; the limit is 1500)"),
    ({"prompt": ""}, "Tell me what to film"),
    ({"prompt": " \n\t "}, "Tell me what to film"),
    ({"prompt": "\x00\x07\x1b\x7f"}, "Tell me what to film"),
    ({"prompt": "a cat", "seconds": 0.0}, "1 to 20 seconds"),
    ({"prompt": "a cat", "seconds": -3.0}, "1 to 20 seconds"),
    ({"prompt": "a cat", "seconds": 1e9}, "1 to 20 seconds"),
    ({"prompt": "a cat", "seed": -1}, "seed must be a whole number from 0 to 2147483646"),
    ({"prompt": "a cat", "seed": 2**63}, "seed must be a whole number"),
    ({"prompt": "a cat", "aspect": "4:3"}, "Unknown aspect ratio '4:3'"),
    ({"prompt": "a cat", "aspect": "'; DROP TABLE generations; --"}, "Unknown aspect ratio"),
    ({"prompt": "a cat", "negative": "n" * 600}, "too long (600 characters; the limit is 500)"),
    ({"prompt": "a cat", "style": "s" * 300}, "too long (300 characters; the limit is 200)"),
]


async def test_bad_video_options_get_clear_ephemeral_refusals_and_record_nothing(tmp_path, monkeypatch, caplog):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        for options, reason in BAD_VIDEO_OPTIONS:
            sent = fake.slash("video", options)
            assert reason in await answered(fake, sent), options
        not_a_number = fake.slash("video", {"prompt": "a cat", "seed": "banana"}, types={"seed": 4})
        assert "you gave banana" in await answered(fake, not_a_number)  # Discord's client would never send it
        assert await bot.studio.store.history(1001) == []  # nothing half-made
        assert not fake.find("POST", f"/channels/{CHANNEL_ID}/messages")  # no status message, no thread
    assert errors_logged(caplog) == []


async def test_member_text_never_pings_anyone_and_control_characters_are_dropped(tmp_path, monkeypatch, caplog):
    sneaky = "@everyone @here <@&555> <@2002> a cat\x00 surfing\x1b[31m at sunset"
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        thread_id, _ = await make_clip(fake, sneaky)
        fake.say(thread_id, "@everyone make it night <@&555>")
        await wait_until(lambda: len(fake.clip_messages()) == 2)
        await bot.deliveries.wait_idle()
        spoken = [c for c in fake.calls if c.content and c.method in ("POST", "PATCH")]
        assert any("@everyone" in c.content for c in spoken)  # the text is shown …
        for call in spoken:  # … but Discord is told to ping nobody, except the requester in a clip caption
            allowed = (call.json or {}).get("allowed_mentions") or (call.json or {}).get("data", {}).get(
                "allowed_mentions"
            )
            assert allowed is not None, call
            assert allowed.get("parse") == [], call
            assert allowed.get("roles", []) == [] and set(allowed.get("users", [])) <= {1001}, call
        first = min(await bot.studio.store.history(1001), key=lambda r: r.id)
        assert "\x00" not in first.request_text and "\x1b" not in first.request_text
        assert "a cat" in first.request_text and first.status == POSTED
    assert errors_logged(caplog) == []


async def test_unknown_ids_other_members_buttons_and_bad_modals_are_refused(tmp_path, monkeypatch, caplog):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        thread_id, clip_id = await make_clip(fake, "a red fox in the snow")
        (record,) = await bot.studio.store.history(1001)
        clicks = [
            ("hanul:reroll:999999", 1001, "can't find that video"),
            ("hanul:cancel:999999", 1001, "can't find that video"),
            ("hanul:delete:99999999999999999999999999", 1001, "can't find that video"),
            ("hanul:edit:424242", 1001, "can't find that video"),
            ("hanul:extend:31337", 1001, "can't find that video"),
            (f"hanul:edit:{record.id}", 2002, "Only the member who asked"),
            (f"hanul:delete:{record.id}", 2002, "Only the member who asked"),
            (f"hanul:cancel:{record.id}", 2002, "Only the member who asked"),
        ]
        for custom_id, user_id, reason in clicks:
            # Buttons on a message the bot posted earlier: ids from another database, or another member's clip.
            sent = fake.click(fake.old_bot_message(thread_id, [custom_id]), custom_id, user_id=user_id)
            assert reason in await answered(fake, sent), custom_id
        modals = [
            (f"hanul:extend-modal:{record.id}", {"what_next": " \x00 "}, 1001, "Tell me what to film"),
            (f"hanul:extend-modal:{record.id}", {"what_next": "y" * 5000}, 1001, "too long"),
            ("hanul:extend-modal:987654321", {"what_next": "it flies"}, 1001, "can't find that video"),
            (f"hanul:edit-modal:{record.id}", {"prompt": "a blue fox"}, 2002, "Only the member who asked"),
        ]
        for custom_id, values, user_id, reason in modals:
            sent = fake.submit_modal(custom_id, values, channel_id=thread_id, user_id=user_id)
            assert reason in await answered(fake, sent), (custom_id, values)
        await bot.deliveries.wait_idle()
        assert await bot.studio.store.history(2002) == []
        (still,) = await bot.studio.store.history(1001)
        assert still.status == POSTED and clip_id in fake.messages  # nothing lost
    assert errors_logged(caplog) == []


async def test_only_owners_and_admins_cancel_and_delete(tmp_path, monkeypatch, caplog):
    slow = SlowBackend(tiny_backend(), step_delay=1.0)  # still rendering when the cancels come
    async with (
        running_generator(tmp_path / "generator", slow) as generator,
        running_bot(tmp_path / "data", monkeypatch, GENERATOR_URL=generator.base_url) as (bot, fake),
    ):
        fake.slash("video", {"prompt": "a slow sunrise"})
        thread = await fake.wait_for("POST", "/threads")
        status_id = int(thread.path.split("/")[4])
        (record,) = await bot.studio.store.history(1001)
        cancel = f"hanul:cancel:{record.id}"
        assert "Only the member who asked" in await answered(fake, fake.click(status_id, cancel, user_id=2002))
        other = fake.slash("cancel", {"video": record.id}, user_id=2002)
        assert "Only the member who asked" in await answered(fake, other)
        assert (await bot.studio.store.generation(record.id)).is_open
        admin = fake.click(status_id, cancel, user_id=3003, permissions=ADMIN)
        assert f"Cancelled #{record.id}" in await answered(fake, admin)
        await fake.wait_for("PATCH", f"/messages/{status_id}", lambda c: "cancelled" in c.content)
        await bot.deliveries.wait_idle()
        assert (await bot.studio.store.generation(record.id)).status == CANCELLED and fake.clip_messages() == []

        slow.step_delay = 0
        _, clip_id = await make_clip(fake, "a quick sunset")
        await bot.deliveries.wait_idle()  # the upload is recorded as posted just after Discord accepts it
        (clip,) = [r for r in await bot.studio.store.history(1001) if r.status == POSTED]
        delete = f"hanul:delete:{clip.id}"
        assert "Only the member who asked" in await answered(fake, fake.click(clip_id, delete, user_id=2002))
        assert clip_id in fake.messages
        assert "deleted" in await answered(fake, fake.click(clip_id, delete, user_id=3003, permissions=ADMIN))
        assert clip_id not in fake.messages
    assert errors_logged(caplog) == []


@pytest.mark.parametrize(
    ("limits", "admitted"),
    [({"HANUL_MAX_QUEUED_PER_USER": 2}, 2), ({"HANUL_MAX_QUEUED_PER_USER": 10, "HANUL_DAILY_QUOTA": 3}, 3)],
    ids=["queue cap", "daily quota"],
)
async def test_many_simultaneous_requests_from_one_new_member_respect_the_limits(
    tmp_path, monkeypatch, caplog, limits, admitted
):
    renders_may_start = threading.Event()  # the admitted ones stay open until every request has been answered
    held = SlowBackend(tiny_backend(), gate=renders_may_start)
    async with (
        running_generator(tmp_path / "generator", held) as generator,
        running_bot(tmp_path / "data", monkeypatch, GENERATOR_URL=generator.base_url, **limits) as (bot, fake),
    ):
        sent = [fake.slash("video", {"prompt": f"kite number {n}"}, user_id=5005) for n in range(10)]  # same instant
        try:
            replies = await asyncio.gather(*(answered(fake, payload) for payload in sent))
        finally:
            renders_may_start.set()
        started = [r for r in replies if r.startswith("🎬 https://discord.com/channels/")]
        refused = [r for r in replies if r.startswith("⚠️")]
        assert (len(started), len(refused)) == (admitted, 10 - admitted), replies
        reason = "already have 2 videos in progress" if admitted == 2 else "used all 3 videos for today"
        assert all(reason in r for r in refused)
        await wait_until(lambda: len(fake.clip_messages()) == admitted)
        await bot.deliveries.wait_idle()
        records = await bot.studio.store.history(5005, limit=50)
        assert [r.status for r in records] == [POSTED] * admitted  # refused requests left no rows
        assert len(fake.clip_messages()) == admitted
    assert errors_logged(caplog) == []


async def test_no_secret_reaches_the_log_in_a_full_run(tmp_path, monkeypatch, caplog, llm_server):
    token = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.discord-token-abcdefghijklmnop"
    secrets = {
        "DISCORD_TOKEN": token,
        "LLM_API_KEY": "sk-llm-key-0123456789abcdef",
        "GENERATOR_API_KEY": "gen-key-42xyz",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)  # read by the bot's and the in-process generator's settings alike
    caplog.set_level(logging.DEBUG)
    llm_server.add(Reply.text("not json"), Reply.error(500), Reply.error(401, "Incorrect API key provided"))
    async with running_bot(
        tmp_path / "data", monkeypatch, token=token, LLM_BASE_URL=llm_server.base_url, LLM_MAX_RETRIES=0
    ) as (bot, fake):
        thread_id, clip_id = await make_clip(fake, "a cat surfing at sunset")
        fake.say(thread_id, "make it night time")
        await wait_until(lambda: len(fake.clip_messages()) == 2)
        fake.click(clip_id, f"hanul:delete:{(await bot.studio.store.history(1001))[-1].id}")
        await bot.deliveries.wait_idle()
        assert bot.studio.videos._client.api_key == secrets["GENERATOR_API_KEY"]
    # Every secret was in use …
    assert token in fake.tokens
    assert {r.headers.get("Authorization") for r in llm_server.chat_requests} == {f"Bearer {secrets['LLM_API_KEY']}"}
    # … and none was written down, in any message or traceback, at any level.
    logged = "\n".join(
        r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "") for r in caplog.records
    )
    assert len(caplog.records) > 100
    for name, value in secrets.items():
        assert value not in logged, name
