"""Issue #8, the bot's half: when the LLM, the generator or Discord misbehaves, or the bot is killed, the member
is told, nothing is lost, and every clip is posted exactly once."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import pytest

from bot.models import FAILED, OPEN_STATUSES, POSTED
from tests.support.discord_fake import disconnected, rate_limited, server_error
from tests.support.generator_service import SlowBackend, running_generator, sdk_client, tiny_backend
from tests.support.hanul_bot import running_bot, wait_until
from tests.support.llm_server import Reply

WAITING = "can't reach the video generator"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def start_video(fake, prompt: str, **who) -> int:
    """/video, then the id of the thread made from its status message."""
    fake.slash("video", {"prompt": prompt}, **who)
    thread = await fake.wait_for("POST", "/threads", lambda c: prompt[:20] in c.json["name"])
    return int(thread.path.split("/")[4])


def status_edits(fake, status_id: int) -> list[str]:
    return [c.content for c in fake.find("PATCH", f"/messages/{status_id}")]


def last_status(fake, status_id: int) -> str:
    """The status message's latest text, or "" before its first edit."""
    edits = status_edits(fake, status_id)
    return edits[-1] if edits else ""


# --- the LLM ---------------------------------------------------------------------------------------------------


async def test_a_garbled_slow_or_missing_llm_gives_a_fallback_prompt_and_the_member_is_told(
    tmp_path, monkeypatch, llm_server, caplog
):
    llm_server.add(
        Reply.text("Sure! A cat, surfing."),  # not JSON …
        Reply.text("I said: a cat, surfing."),  # … nor after the one repair
        Reply.json({"prompt": "too late"}, delay=5),  # slower than LLM_TIMEOUT
    )
    llm = {"LLM_BASE_URL": llm_server.base_url, "LLM_TIMEOUT": 0.5, "LLM_MAX_RETRIES": 0}
    async with running_bot(tmp_path / "data", monkeypatch, **llm) as (bot, fake):
        cases = [
            ("a red kite over the sea", "gave an unusable answer"),
            ("a blue kite over the hills", "took too long to answer"),
            ("a green kite in the rain", "could not be reached"),
        ]
        for number, (prompt, notice) in enumerate(cases, start=1):
            if number == 3:
                await llm_server.close()  # the LLM server goes away
            thread_id = await start_video(fake, prompt)
            shown = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "Prompt" in c.content)
            assert "(offline expander)" in shown.content and prompt in shown.content.lower()
            assert f"ℹ️ The prompt-writing AI {notice}, so your words were used as written." in shown.content
            await wait_until(lambda n=number: len(fake.clips()) == n)
        await bot.deliveries.wait_idle()
        records = await bot.studio.store.history(1001)
        assert [(r.status, r.llm_written) for r in records] == [(POSTED, False)] * 3  # nothing lost
    assert len(llm_server.chat_requests) == 3 and llm_server.unscripted == 0
    assert errors_logged(caplog) == []


# --- the generator ---------------------------------------------------------------------------------------------


async def test_an_unreachable_generator_keeps_the_request_and_posts_once_when_it_comes_back(tmp_path, monkeypatch):
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}/v1"
    async with running_bot(tmp_path / "data", monkeypatch, GENERATOR_URL=url) as (bot, fake):
        thread_id = await start_video(fake, "a lighthouse in a storm")
        told = await fake.wait_for("PATCH", f"/messages/{thread_id}", lambda c: WAITING in c.content)
        assert "Your request is saved" in told.content and any(i.startswith("hanul:cancel:") for i in told.custom_ids)
        await asyncio.sleep(1.0)  # several retries, with backoff
        (record,) = await bot.studio.store.history(1001)
        assert record.status in OPEN_STATUSES and record.video_id is None and record.error is None
        assert len(status_edits(fake, thread_id)) == 1  # told once, not on every retry

        async with running_generator(tmp_path / "generator", GENERATOR_PORT=port) as generator:
            await wait_until(lambda: len(fake.clips()) == 1)
            await bot.deliveries.wait_idle()
            async with sdk_client(generator) as sdk:
                jobs = (await sdk.videos.list()).data
        assert len(jobs) == 1  # retried submissions never queued a second job
        (record,) = await bot.studio.store.history(1001)
        assert record.status == POSTED and record.video_id == jobs[0].id
        assert "done" in status_edits(fake, thread_id)[-1]
        assert len(fake.clip_messages()) == 1


async def test_how_long_a_request_waits_for_an_unreachable_generator_is_a_setting(tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens, and nothing will
    async with running_bot(
        tmp_path / "data", monkeypatch, backoff=None, GENERATOR_URL=url, HANUL_RETRY_MINUTES=0.02
    ) as (bot, fake):
        assert bot.studio.backoff.give_up_after == pytest.approx(1.2)
        thread_id = await start_video(fake, "a lighthouse in a storm")
        for _ in range(150):  # the backoff's first delays are 1–2 s
            (record,) = await bot.studio.store.history(1001)
            if record.status == FAILED:
                break
            await asyncio.sleep(0.1)
        assert record.status == FAILED and "could not be reached for 1.2 s" in record.error, record
        await bot.deliveries.wait_idle()
        assert WAITING not in status_edits(fake, thread_id)[-1]  # the member is told it failed, not to wait


async def test_a_generator_stopped_mid_job_is_waited_for_and_the_clip_posted_once(tmp_path, monkeypatch):
    port = free_port()
    slow = SlowBackend(tiny_backend(), step_delay=0.3)
    generator = tmp_path / "generator"
    async with (
        running_generator(generator, slow, GENERATOR_PORT=port) as first,
        running_bot(tmp_path / "data", monkeypatch, GENERATOR_URL=first.base_url) as (bot, fake),
    ):
        thread_id = await start_video(fake, "a paper boat on a river")
        await fake.wait_for("PATCH", f"/messages/{thread_id}", lambda c: "rendering" in c.content)
        await first.stop()  # mid-render: the job goes back to the generator's queue
        await fake.wait_for("PATCH", f"/messages/{thread_id}", lambda c: WAITING in c.content)
        (record,) = await bot.studio.store.history(1001)
        assert record.status in OPEN_STATUSES and record.error is None

        # After the restart the render waits until the bot has shown the job in progress again: however the bot's
        # retries and the render's speed fall on a busy machine, progress comes back before the end.
        gate = threading.Event()
        restarted = SlowBackend(tiny_backend(), step_delay=0.1, gate=gate)
        async with running_generator(generator, restarted, GENERATOR_PORT=port):
            try:
                await wait_until(lambda: WAITING not in status_edits(fake, thread_id)[-1])
            finally:
                gate.set()
            await wait_until(lambda: len(fake.clips()) == 1)
            await bot.deliveries.wait_idle()
        (record,) = await bot.studio.store.history(1001)
        assert record.status == POSTED
        edits = status_edits(fake, thread_id)
        after = edits[next(i for i, e in enumerate(edits) if WAITING in e) + 1 :]
        assert "done" in after[-1]
        assert after[0].startswith(("⏳", "🎬"))  # back to progress as soon as the generator answers
        assert len(fake.clip_messages()) == 1


# --- Discord ---------------------------------------------------------------------------------------------------


async def test_rate_limits_server_errors_and_dropped_connections_on_the_upload_still_post_the_clip_once(
    tmp_path, monkeypatch, caplog
):
    def is_upload(call) -> bool:
        return bool(call.files)

    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.fail(
            "POST",
            "/messages",
            server_error(500),  # discord.py retries 500/502/504 itself (after 1 s) …
            server_error(503),  # … but not 503: the bot's own retry takes over
            server_error(502),
            disconnected(),
            rate_limited(0.05),  # discord.py waits retry_after and tries again
            rate_limited(0.05, is_global=True),
            server_error(503, after=True),  # Discord made the message, the answer was lost: the nonce saves us
            predicate=is_upload,
        )
        thread_id = await start_video(fake, "a kite festival")
        fake.fail(
            "PATCH",
            f"/messages/{thread_id}",
            server_error(503),
            disconnected(),
            predicate=lambda c: "done" in c.content,
        )
        await wait_until(lambda: fake.faults_left == 0 and "done" in last_status(fake, thread_id))
        await bot.deliveries.wait_idle()

        uploads = fake.find("POST", "/messages", is_upload)
        attempts = [c for c in fake.attempts if c.method == "POST" and c.files]
        assert [c.status for c in attempts] == [500, 503, 502, 0, 429, 429, 503, 200]
        assert len({c.json["nonce"] for c in attempts}) == 1  # one nonce across every retry
        assert len(fake.clip_messages()) == 1 and len(fake.clips()) == 1
        (record,) = await bot.studio.store.history(1001)
        assert record.status == POSTED and record.result_message_id == int(fake.clip_messages()[0]["id"])
        assert uploads[-1].created is False  # the last try got back the message the lost answer had made
    assert errors_logged(caplog) == []


async def test_a_forbidden_upload_is_not_retried_and_the_member_is_told(tmp_path, monkeypatch):
    from tests.support.discord_fake import Fault

    forbidden = Fault(403, '{"message": "Missing Permissions", "code": 50013}', {"Content-Type": "application/json"})
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        fake.fail("POST", "/messages", forbidden, predicate=lambda c: bool(c.files))
        thread_id = await start_video(fake, "a quiet forest")
        failed = await fake.wait_for("PATCH", f"/messages/{thread_id}", lambda c: "failed" in c.content)
        assert "Missing Permissions" in failed.content
        await bot.deliveries.wait_idle()
        (record,) = await bot.studio.store.history(1001)
        assert record.status == "failed" and fake.clip_messages() == []
        assert len([c for c in fake.attempts if c.files]) == 1


# --- the bot itself --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("restart", ["within Discord's nonce window", "after it"])
async def test_a_bot_killed_between_the_upload_and_its_record_posts_the_clip_once_after_restart(
    tmp_path, monkeypatch, restart
):
    data = tmp_path / "data"
    async with running_bot(data, monkeypatch) as (bot, fake):
        crashed = asyncio.Event()

        async def crash_before_recording(generation_id: int, message_id: int | None) -> bool:
            crashed.set()
            await asyncio.Event().wait()  # the process dies here
            return False

        bot.studio.store.mark_posted = crash_before_recording  # this bot's store only
        thread_id = await start_video(fake, "a snowy mountain pass")
        await asyncio.wait_for(crashed.wait(), 30)
        (posted,) = fake.clip_messages()
    if restart == "after it":
        fake.forget_nonces()

    async with running_bot(data, monkeypatch, fake=fake) as (bot, fake):
        await wait_until(lambda: "done" in last_status(fake, thread_id))
        await bot.deliveries.wait_idle()
        (record,) = await bot.studio.store.history(1001)
        assert record.status == POSTED and record.result_message_id == int(posted["id"])
        assert fake.clip_messages() == [posted]  # still one clip in the thread


# --- a generator that cannot start or cannot render (issue #17) ---------------------------------------------------


async def test_a_generator_whose_model_failed_to_load_is_said_and_the_request_kept(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "no-such-model"  # a pipeline folder passes the start's check; it names no parts: loading fails
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "LTXConditionPipeline", "_diffusers_version": "0.32.0"}')
    broken = {"GENERATOR_MODEL": str(folder)}
    async with running_bot(tmp_path / "data", monkeypatch, generator=broken) as (bot, fake):
        thread_id = await start_video(fake, "a lighthouse in a storm")
        told = await fake.wait_for(
            "PATCH", f"/messages/{thread_id}", lambda c: "isn't working right now" in c.content, within=60
        )
        assert "Your request is saved" in told.content and any(i.startswith("hanul:cancel:") for i in told.custom_ids)
        await bot.deliveries.wait_idle()  # it stops waiting: nothing can be made until the model is fixed
        (record,) = await bot.studio.store.history(1001)
        assert record.status in OPEN_STATUSES and record.error is None  # made after the restart that follows
        assert not [t for t in status_edits(fake, thread_id) if WAITING in t]  # it answers: not "can't reach"
    assert any("model failed to load: Pipeline" in m and "expected" in m for m in errors_logged(caplog))


def test_the_bot_on_a_busy_port_says_so_before_connecting_to_discord(tmp_path, monkeypatch, capsys):
    from bot.app import run_bot
    from tests.support.hanul import bot_settings

    async def no_discord(*args: object, **kwargs: object) -> None:
        pytest.fail("connected to Discord")

    monkeypatch.setattr("discord.Client.login", no_discord)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for name, value in {"GENERATOR_PORT": port, "GENERATOR_MODEL": "tiny", "GENERATOR_DEVICE": "cpu"}.items():
            monkeypatch.setenv(name, str(value))
        assert run_bot(bot_settings(tmp_path / "data", DISCORD_TOKEN="not-a-real-token")) == 2
    err = capsys.readouterr().err
    assert err == (
        f"hanul: the video generator cannot listen on 127.0.0.1:{port} (the port is already in use). "
        "Set GENERATOR_PORT to a free port (0 picks one), or stop the program using it.\n"
    )
