"""Edits and characters on Discord (issue 18), through real discord.py (tests/support/discord_fake.py), the real
in-process generator (tiny model) and the director (offline, or the local LLM server): what the member sees, and
what the generator was asked to do (its job rows)."""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import RENDER, VIDEO_EDIT
from generator.models import VideoJob
from tests.bot.test_discord import is_ephemeral_followup, make_clip, message_id_of
from tests.support.discord_fake import APP_ID, GUILD_ID
from tests.support.hanul_bot import running_bot, wait_until
from tests.support.llm_server import Reply

MOCHI = "a small white cat with a red knitted scarf and one black ear"


def png(colour: tuple[int, int, int] = (240, 240, 240)) -> bytes:
    picture = Image.new("RGB", (96, 64), colour)
    for x in range(36, 60):  # a subject in the middle, so the picture is not blank
        for y in range(20, 44):
            picture.putpixel((x, y), (200, 30, 30))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


async def job(bot, video_id: str) -> VideoJob:
    """The generator's job row for a video: what it was asked to make."""
    async with AsyncSession(bot.runtime.engine) as session:
        found = await session.get(VideoJob, video_id)
        assert found is not None
        return found


async def generations(bot, user_id: int = 1001):
    return sorted(await bot.studio.store.history(user_id, limit=50), key=lambda r: r.id)


def button(call, action: str) -> str:
    return next(cid for cid in call.custom_ids if cid.startswith(f"hanul:{action}:"))


# --- edits: a change of look keeps the motion ---------------------------------------------------------------------


async def test_a_change_of_look_in_the_thread_edits_the_clip_keeping_its_motion(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        thread_id, _ = await make_clip(fake)
        fake.say(thread_id, "make it night time")
        said = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "Changed:" in c.content)
        assert "keeping its motion" in said.content and "Start over" in said.content
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        first, second = await generations(bot)
        assert (second.kind, second.mode, second.parent_id) == ("refine", VIDEO_EDIT, first.id)
        edit = await job(bot, second.video_id)
        assert edit.kind == "edit" and edit.parent_id == first.video_id  # the generator edited the first clip
        assert "night time" in edit.prompt.lower()
        clip = fake.clips()[-1]
        assert "edited, motion kept" in clip.content
        assert f"hanul:restart:{second.id}" in clip.custom_ids and not any(":keep:" in c for c in clip.custom_ids)


async def test_a_new_subject_renders_anew_and_the_buttons_switch_between_edit_and_render(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        thread_id, _ = await make_clip(fake)
        fake.say(thread_id, "now a dog runs along the beach")
        said = await fake.wait_for("POST", f"/channels/{thread_id}/messages", lambda c: "Changed:" in c.content)
        assert "rendering the clip anew" in said.content
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        first, rendered = await generations(bot)
        assert rendered.mode == RENDER and (await job(bot, rendered.video_id)).kind == "generate"
        clip = fake.clips()[-1]
        assert "rendered anew" in clip.content
        keep = button(clip, "keep")
        assert keep == f"hanul:keep:{rendered.id}"

        fake.click(message_id_of(fake, clip), keep, user_id=2002)  # not theirs
        refusal = await fake.wait_for("POST", "/webhooks/", lambda c: "Only the member" in c.content)
        assert is_ephemeral_followup(refusal)

        fake.click(message_id_of(fake, clip), keep)
        await wait_until(lambda: len(fake.clips()) == 3)
        await bot.deliveries.wait_idle()
        kept = (await generations(bot))[-1]
        assert (kept.mode, kept.parent_id, kept.seed) == (VIDEO_EDIT, first.id, rendered.seed)
        assert kept.expanded_prompt == rendered.expanded_prompt and kept.params["switched_from"] == rendered.id
        edit = await job(bot, kept.video_id)
        assert edit.kind == "edit" and edit.parent_id == first.video_id
        kept_clip = fake.clips()[-1]
        assert f"hanul:restart:{kept.id}" in kept_clip.custom_ids

        fake.click(message_id_of(fake, kept_clip), f"hanul:restart:{kept.id}")
        await wait_until(lambda: len(fake.clips()) == 4)
        await bot.deliveries.wait_idle()
        again = (await generations(bot))[-1]
        assert again.mode == RENDER and (await job(bot, again.video_id)).kind == "generate"


async def test_the_switch_buttons_work_after_a_restart(tmp_path, monkeypatch):
    data = tmp_path / "data"
    async with running_bot(data, monkeypatch) as (bot, fake):
        thread_id, _ = await make_clip(fake)
        fake.say(thread_id, "make it night time")
        await wait_until(lambda: len(fake.clips()) == 2)
        await bot.deliveries.wait_idle()
        edited = (await generations(bot))[-1]
        message = fake.clip_messages()[-1]
        thread = fake.threads[thread_id]
    async with running_bot(data, monkeypatch) as (bot, fake):
        # The same thread and message, as Discord still shows them, clicked on a freshly started bot.
        fake.threads[thread_id] = thread
        fake.feed("THREAD_CREATE", thread)
        fake.messages[int(message["id"])] = message
        fake.click(int(message["id"]), f"hanul:restart:{edited.id}")
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()
        again = (await generations(bot))[-1]
        assert (again.mode, again.params["switched_from"]) == (RENDER, edited.id)


async def test_the_llm_judges_the_change(tmp_path, monkeypatch, llm_server):
    from tests.bot.test_discord_llm import NIGHT_PROMPT, SURF_PROMPT, expansion, with_llm

    llm_server.add(
        Reply.json(expansion()),
        # "make it night time" looks local, but this LLM calls it a new subject: its judgement decides.
        Reply.json(expansion(NIGHT_PROMPT, summary="Night now, and a new scene.", change="subject")),
        Reply.json(expansion(SURF_PROMPT, summary="Warmer colours.", change="local")),
    )
    async with running_bot(tmp_path / "data", monkeypatch, **with_llm(llm_server)) as (bot, fake):
        thread_id, _ = await make_clip(fake, "Sunset surfing cat")  # the thread takes the LLM's title
        fake.say(thread_id, "make it night time")
        await wait_until(lambda: len(fake.clips()) == 2)
        fake.say(thread_id, "use warmer colours")
        await wait_until(lambda: len(fake.clips()) == 3)
        await bot.deliveries.wait_idle()
        _, night, warmer = await generations(bot)
        assert (night.mode, warmer.mode) == (RENDER, VIDEO_EDIT)
        assert warmer.parent_id == night.id  # the newest finished clip is the one edited
        assert (await job(bot, warmer.video_id)).parent_id == night.video_id
        assert llm_server.unscripted == 0


# --- characters -----------------------------------------------------------------------------------------------------


async def create_character(fake, name: str, *, user_id: int = 1001, **options) -> str:
    """`/character create`; returns what the bot answered."""
    sent = fake.slash("character create", {"name": name, **options}, user_id=user_id)
    answered = await fake.wait_for("POST", f"/webhooks/{APP_ID}/{sent['token']}")
    return answered.content


async def test_a_character_made_from_an_image_is_rendered_with_its_reference(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        picture = fake.upload("mochi.png", png(), "image/png")
        said = await create_character(fake, "Mochi", image=picture, description=MOCHI)
        assert "**Mochi** is ready" in said and MOCHI in said and "your words" in said
        (mochi,) = await bot.studio.store.usable_characters(1001, GUILD_ID)
        made = await bot.studio.videos.get_character(mochi.generator_id)  # the generator keeps it
        assert made.name == "Mochi"

        typed = fake.autocomplete("video", {"prompt": "Mochi surfing", "character": "mo"}, "character")
        assert await fake.choices(typed) == [{"name": "Mochi", "value": str(mochi.id)}]
        fake.slash("video", {"prompt": "Mochi surfing at sunset", "character": str(mochi.id)})
        await wait_until(lambda: len(fake.clips()) == 1)
        await bot.deliveries.wait_idle()
        (record,) = await generations(bot)
        assert MOCHI in record.expanded_prompt.lower()  # the director kept the description
        rendered = await job(bot, record.video_id)
        assert mochi.generator_id in rendered.params["characters"]  # the generator rendered with its frames


async def test_autocomplete_offers_own_and_this_servers_shared_characters_only(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (_, fake):
        await create_character(fake, "Mochi", image=fake.upload("a.png", png(), "image/png"), description=MOCHI)
        shared = fake.upload("b.png", png((20, 20, 200)), "image/png")
        await create_character(fake, "Bolt", user_id=2002, image=shared, description="a blue robot dog", share=True)
        private = fake.upload("c.png", png((20, 200, 20)), "image/png")
        await create_character(fake, "Secret", user_id=2002, image=private, description="a green parrot")

        names = [c["name"] for c in await fake.choices(fake.autocomplete("video", {"character": ""}, "character"))]
        assert names == ["Mochi", "Bolt"]  # their own first; not another member's private one
        elsewhere = fake.autocomplete("video", {"character": ""}, "character", guild_id=GUILD_ID + 1)
        assert [c["name"] for c in await fake.choices(elsewhere)] == ["Mochi"]  # shared in the other server only
        own = fake.autocomplete("character delete", {"character": ""}, "character")
        assert [c["name"] for c in await fake.choices(own)] == ["Mochi"]  # delete offers their own only

        fake.slash("character list")
        listed = await fake.wait_for("POST", "/webhooks/", lambda c: "Characters you can use here" in c.content)
        assert "Mochi" in listed.content and "Bolt" in listed.content and "Secret" not in listed.content


async def test_delete_refuses_others_characters(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        picture = fake.upload("b.png", png(), "image/png")
        await create_character(fake, "Bolt", image=picture, description="a blue robot dog", share=True)
        (bolt,) = await bot.studio.store.usable_characters(1001, GUILD_ID)
        fake.slash("character delete", {"character": str(bolt.id)}, user_id=2002)
        refused = await fake.wait_for("POST", "/webhooks/", lambda c: "Only the member who made" in c.content)
        assert is_ephemeral_followup(refused)
        assert await bot.studio.store.character(bolt.id) is not None

        fake.slash("character delete", {"character": "Bolt"})
        await fake.wait_for("POST", "/webhooks/", lambda c: "**Bolt** deleted" in c.content)
        assert await bot.studio.store.character(bolt.id) is None
        assert await bot.studio.videos.list_characters("discord:1001") == []  # gone on the generator too


async def test_a_character_from_one_of_the_members_clips(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (bot, fake):
        await make_clip(fake, "a red kite over the sea")
        await bot.deliveries.wait_idle()
        (clip,) = await generations(bot)
        offered = await fake.choices(
            fake.autocomplete("character create", {"name": "Kite", "from_clip": ""}, "from_clip")
        )
        assert offered == [{"name": f"#{clip.id} {clip.display_title}", "value": str(clip.id)}]
        others = fake.autocomplete("character create", {"name": "Kite", "from_clip": ""}, "from_clip", user_id=2002)
        assert await fake.choices(others) == []  # nobody else's clips

        said = await create_character(fake, "Kite", from_clip=str(clip.id), description="a red diamond kite")
        assert "**Kite** is ready" in said
        (kite,) = await bot.studio.store.usable_characters(1001, GUILD_ID)
        assert kite.source == "clip"
        refused = await create_character(fake, "Stolen", user_id=2002, from_clip=str(clip.id), description="a kite")
        assert "isn't one of your finished clips" in refused


async def test_a_director_that_sees_describes_the_character(tmp_path, monkeypatch, llm_server):
    from tests.bot.test_discord_llm import with_llm

    llm_server.add(Reply.json({"description": MOCHI}))
    async with running_bot(tmp_path / "data", monkeypatch, **with_llm(llm_server)) as (bot, fake):
        said = await create_character(fake, "Mochi", image=fake.upload("m.png", png(), "image/png"))
        assert "written by the director from the picture" in said and MOCHI in said
        (asked,) = llm_server.chat_requests
        assert asked.image_urls()[0].startswith("data:image/png;base64,")

    llm_server.vision = False  # a model that cannot see, and no words from the member: they are asked for some
    async with running_bot(tmp_path / "data2", monkeypatch, **with_llm(llm_server)) as (bot, fake):
        said = await create_character(fake, "Mochi", image=fake.upload("m.png", png(), "image/png"))
        assert "describe your character in a few words" in said
        assert await bot.studio.store.usable_characters(1001, GUILD_ID) == []
