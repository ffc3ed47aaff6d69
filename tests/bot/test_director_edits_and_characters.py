"""The director's part in edits and characters (issue 18), against the local OpenAI-compatible server: it judges
whether a refinement only changes the clip's look (an edit keeping its motion) or its subject (a new render), with
an offline rule when no LLM answers; it describes a character from a reference frame when its model sees images,
else takes the member's words; and it keeps a character's description, word for word, in the prompts it writes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable

import pytest

from bot.director import LOCAL, SUBJECT, CharacterNote, Director
from bot.director.offline import judge_change
from bot.settings import BotSettings
from tests.support.llm_server import LLMServer, Reply

CAT_PROMPT = (
    "An orange tabby cat balances on a yellow surfboard, riding a gentle turquoise wave at sunset. Golden light "
    "glints on the spray; the camera follows from the side at water level, slow motion, cinematic."
)
NIGHT_PROMPT = CAT_PROMPT.replace("at sunset", "under a full moon at night").replace("Golden", "Silver")
MOCHI = "a small white cat with a red knitted scarf and one black ear"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def revision(prompt: str = NIGHT_PROMPT, **extra: str) -> dict[str, str]:
    return {"prompt": prompt, "negative_prompt": "blurry", "title": "Night surf", "language": "en", **extra}


@pytest.fixture
async def make_director(llm_server: LLMServer) -> AsyncIterator[Callable[..., Director]]:
    made: list[Director] = []

    def make(*, llm: bool = True) -> Director:
        values: dict[str, object] = {"LLM_MODEL": "test-model"}
        if llm:
            values |= {"LLM_BASE_URL": llm_server.base_url, "LLM_TIMEOUT": 0.5, "LLM_MAX_RETRIES": 0}
        director = Director(BotSettings(**values))
        made.append(director)
        return director

    yield make
    for director in made:
        await director.close()


# -- the judgement of a refinement --------------------------------------------------------------------------------


async def test_the_llm_judges_a_change_of_light_local_and_is_asked_with_a_closed_choice(llm_server, make_director):
    llm_server.add(Reply.json(revision(summary="Made it night.", change="local")))
    result = await make_director().refine(CAT_PROMPT, [], "make it night time")
    assert (result.change, result.prompt, result.llm_written) == (LOCAL, NIGHT_PROMPT, True)
    schema = llm_server.chat_requests[0].response_format["json_schema"]["schema"]
    assert schema["properties"]["change"]["enum"] == ["local", "subject"] and "change" in schema["required"]


async def test_the_llm_can_call_a_change_of_words_that_look_local_a_new_subject(llm_server, make_director):
    # "red" is a colour, but the member asks for another animal: the LLM's judgement stands over the rule's.
    llm_server.add(Reply.json(revision(summary="A red fox now.", change="subject")))
    assert judge_change("make it a red fox") == LOCAL  # the offline rule alone would edit
    result = await make_director().refine(CAT_PROMPT, [], "make it a red fox")
    assert result.change == SUBJECT


async def test_a_judgement_outside_the_choice_is_repaired_once(llm_server, make_director):
    llm_server.add(Reply.json(revision(change="a bit of both")), Reply.json(revision(change="local")))
    result = await make_director().refine(CAT_PROMPT, [], "warmer colours")
    assert result.change == LOCAL and result.llm_written
    repair = llm_server.chat_requests[1].messages[-1]["content"]
    assert "change" in repair and "could not be used" in repair


async def test_a_reply_without_a_judgement_gets_the_offline_rule(llm_server, make_director):
    llm_server.add(Reply.json(revision(summary="Night.")), Reply.json(revision(summary="A dog.")))
    director = make_director()
    assert (await director.refine(CAT_PROMPT, [], "make it night time")).change == LOCAL
    assert (await director.refine(CAT_PROMPT, [], "now a dog jumps on the board")).change == SUBJECT


async def test_without_an_llm_the_offline_rule_judges(llm_server, make_director):
    director = make_director(llm=False)
    night = await director.refine(CAT_PROMPT, [], "make it night time")
    assert (night.change, night.llm_written) == (LOCAL, False) and "night time" in night.prompt
    assert (await director.refine(CAT_PROMPT, [], "the cat jumps off and swims")).change == SUBJECT
    failing = make_director()
    llm_server.add(Reply.error(500))  # an LLM that fails falls back the same way
    assert (await failing.refine(CAT_PROMPT, [], "in watercolour style")).change == LOCAL


@pytest.mark.parametrize(
    ("message", "change"),
    [
        ("make it night time", LOCAL),
        ("a bit brighter, golden hour", LOCAL),
        ("make it snow", LOCAL),
        ("in anime style", LOCAL),
        ("밤으로 바꿔줘", LOCAL),
        ("비 오는 날로", LOCAL),
        ("now a dog runs in", SUBJECT),
        ("make the camera zoom in", SUBJECT),
        ("고양이 대신 강아지", SUBJECT),
        ("make it longer", SUBJECT),  # nothing recognised: a new render, as before edits existed
    ],
)
def test_the_offline_rule_edits_only_changes_of_look(message, change):
    assert judge_change(message) == change


# -- a character's description ------------------------------------------------------------------------------------


async def test_a_model_that_sees_describes_the_character_from_its_frame(llm_server, make_director):
    llm_server.add(Reply.json({"description": "A small white cat with a red knitted scarf and one black ear."}))
    described = await make_director().describe("Mochi", PNG, "image/png", "my cat")
    assert described is not None and described.by_director
    assert described.text == "A small white cat with a red knitted scarf and one black ear."
    (asked,) = llm_server.chat_requests
    assert asked.image_urls() == ["data:image/png;base64," + base64.b64encode(PNG).decode()]
    assert "<name>\nMochi\n</name>" in asked.text() and "<character>\nmy cat\n</character>" in asked.text()


async def test_a_model_that_cannot_see_leaves_the_members_words(make_director, llm_server):
    llm_server.vision = False
    director = make_director()
    described = await director.describe("Mochi", PNG, "image/png", MOCHI)
    assert described is not None and (described.text, described.by_director) == (MOCHI, False)
    assert await director.describe("Mochi", PNG, "image/png", None) is None  # nothing to go on: ask the member
    assert llm_server.pending == 0 and llm_server.unscripted == 0


async def test_without_an_llm_the_description_is_the_members_words(make_director):
    director = make_director(llm=False)
    assert (await director.describe("Mochi", PNG, "image/png", MOCHI)).text == MOCHI
    assert await director.describe("Mochi", PNG, "image/png", "") is None


# -- characters in prompts -----------------------------------------------------------------------------------------


async def test_the_characters_description_is_kept_word_for_word(llm_server, make_director):
    paraphrased = (
        "A little white kitten wearing a scarf surfs a turquoise wave at sunset, golden light on the spray, the "
        "camera following from the side at water level."
    )
    llm_server.add(Reply.json(revision(paraphrased)))
    result = await make_director().expand("Mochi surfing at sunset", characters=[CharacterNote("Mochi", MOCHI)])
    assert MOCHI in result.prompt.casefold() and result.prompt.startswith("A little white kitten")
    asked = llm_server.chat_requests[0].messages[-1]["content"]
    assert f"<character>\n{MOCHI}\n</character>" in asked and "word for word" in asked


async def test_offline_prompts_carry_the_description_too(make_director):
    result = await make_director(llm=False).expand("Mochi surfing", characters=[CharacterNote("Mochi", MOCHI)])
    assert MOCHI in result.prompt.casefold()
