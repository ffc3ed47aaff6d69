import asyncio
from datetime import UTC, datetime, timedelta

from bot.models import COMPLETED, FAILED, OPEN_STATUSES, PENDING, POSTED
from bot.store import GenerationRecord, NewGeneration, Store
from tests.support.sqlite_writer import sqlite_with_outside_writer


async def test_member_settings_are_created_on_first_sight_and_updated(engine):
    store = Store(engine)
    member = await store.ensure_member(42, "mina", "ko")
    assert (member.name, member.locale, member.enhance, member.seconds) == ("mina", "ko", True, None)
    member = await store.update_member(42, seconds=8.0, aspect="9:16", enhance=False, language="en")
    assert (member.seconds, member.aspect, member.enhance, member.reply_locale) == (8.0, "9:16", False, "en")
    member = await store.update_member(42, aspect=None)  # None clears, the rest stays
    assert (member.seconds, member.aspect) == (8.0, None)
    assert (await store.member(7)).user_id == 7  # never seen: defaults


async def test_a_generation_keeps_everything_about_the_request(engine):
    store = Store(engine)
    await store.ensure_member(1, "a")
    conversation = await store.create_conversation(1, guild_id=5, channel_id=6, prompt="p")
    record = await store.create_generation(
        NewGeneration(
            user_id=1,
            kind="generate",
            request_text="a cat",
            conversation_id=conversation.id,
            params={"seconds": 4.0, "aspect": "16:9"},
            seed=123,
            guild_id=5,
            channel_id=6,
        )
    )
    assert record.status == PENDING and record.is_open
    record = await store.update_generation(
        record.id, expanded_prompt="A cat, cinematic", video_id="video_1", thread_id=99, status_message_id=100
    )
    await store.mark_completed(record.id, completed_at=datetime.now(UTC))
    assert (await store.generation(record.id)).status == COMPLETED
    assert await store.mark_posted(record.id, 555) is True
    assert await store.mark_posted(record.id, 556) is False  # exactly once
    posted = await store.generation_by_message(555)
    assert (posted.id, posted.status, posted.result_message_id, posted.seed) == (record.id, POSTED, 555, 123)
    assert posted.params == {"seconds": 4.0, "aspect": "16:9"}
    assert (await store.generation_by_message(100)).id == record.id  # the status message finds it too
    assert await store.open_generations() == []


async def test_open_generations_history_and_counts(engine):
    store = Store(engine)
    await store.ensure_member(1)
    ids = []
    for n in range(5):
        record = await store.create_generation(NewGeneration(user_id=1, kind="generate", request_text=f"r{n}"))
        ids.append(record.id)
    await store.mark_failed(ids[0], "refused: no")
    await store.update_generation(ids[1], video_id="v1")
    await store.mark_failed(ids[1], "generator failed")
    await store.mark_posted(ids[2], 1)
    assert [g.id for g in await store.open_generations(1)] == ids[3:]
    assert all(g.status in OPEN_STATUSES for g in await store.open_generations())
    assert await store.count_open(1) == 2
    # Charged: reached the generator (ids[1]), posted (ids[2]) or still open; the refused one is free.
    yesterday = datetime.now(UTC) - timedelta(days=1)
    assert await store.count_charged_since(1, yesterday) == 4
    page = await store.history(1, limit=2, offset=1)
    assert [g.id for g in page] == [ids[3], ids[2]]
    assert await store.count_history(1) == 5
    assert (await store.generation(ids[0])).status == FAILED


async def test_conversation_turns_and_thread_lookup(engine):
    store = Store(engine)
    await store.ensure_member(3)
    conversation = await store.create_conversation(3, guild_id=1, channel_id=2, prompt="first")
    await store.update_conversation(conversation.id, thread_id=77, prompt="second")
    for n in range(4):
        await store.add_turn(conversation.id, "user" if n % 2 == 0 else "assistant", f"t{n}")
    found = await store.conversation_by_thread(77)
    assert (found.id, found.current_prompt) == (conversation.id, "second")
    assert [t.content for t in await store.turns(conversation.id, limit=3)] == ["t1", "t2", "t3"]


async def test_on_sqlite_the_bots_reads_answer_while_the_generator_holds_the_write_lock(tmp_path):
    """One box, one SQLite file: the in-process generator claims jobs and renews leases in write transactions.
    The bot's reads (limits on every request, history, button lookups) must not queue behind them for the lock."""
    async with sqlite_with_outside_writer(tmp_path) as (engine, writer):
        store = Store(engine)
        await store.ensure_member(1, "a")
        conversation = await store.create_conversation(1, guild_id=5, channel_id=6, prompt="p", thread_id=77)
        record = await store.create_generation(
            NewGeneration(user_id=1, kind="generate", request_text="a cat", conversation_id=conversation.id, seed=1)
        )
        writer.execute("BEGIN IMMEDIATE")  # the generator, mid-transaction
        writer.execute("UPDATE users SET name = 'b'")  # not committed: readers must not see it
        reads = asyncio.gather(
            store.member(1),
            store.generation(record.id),
            store.open_generations(1),
            store.count_open(1),
            store.count_charged_since(1, datetime.now(UTC) - timedelta(days=1)),
            store.history(1),
            store.count_history(1),
            store.conversation(conversation.id),
            store.conversation_by_thread(77),
            store.history_of_conversation(conversation.id),
            store.turns(conversation.id),
        )
        member, generation, open_ones, open_count, *_ = await asyncio.wait_for(reads, 5)  # not the 30 s busy wait
        assert member.name == "a" and generation.id == record.id
        assert [g.id for g in open_ones] == [record.id] and open_count == 1


def test_a_clips_display_title_is_one_short_line():
    def record(title: str | None, request: str) -> GenerationRecord:
        return GenerationRecord(id=7, user_id=1, kind="video", request_text=request, status=PENDING, title=title)

    assert record(None, "a cat\non a boat\n\n  at night ").display_title == "a cat on a boat at night"
    assert record("  Night\tsail ", "x").display_title == "Night sail"
    assert record(None, " \n ").display_title == "#7"
    long = record(None, "word " * 40).display_title
    assert len(long) == 80 and long.endswith("…")
