"""Slash commands in the member's language: what the bot registers with Discord carries each catalog's names and
descriptions (`name_localizations`, `description_localizations`), and every name obeys Discord's rule."""

from __future__ import annotations

import pytest

from bot.cogs._translate import valid_name
from bot.i18n import CATALOGS, LANGUAGES
from tests.support.hanul_bot import running_bot

regex = pytest.importorskip("regex")  # Discord's rule uses Unicode properties that `re` lacks
DISCORD_NAME = regex.compile(r"^[-_\p{L}\p{N}\p{sc=Deva}\p{sc=Thai}]{1,32}$")


def by_name(commands: list[dict]) -> dict[str, dict]:
    return {command["name"]: command for command in commands}


async def test_the_registered_commands_carry_korean_names_and_descriptions(tmp_path, monkeypatch):
    async with running_bot(tmp_path / "data", monkeypatch) as (_, fake):
        (sync,) = fake.find("PUT", "/commands")
        commands = by_name(sync.json)

    video = commands["video"]
    assert video["description"] == "Make a short video from a description"
    assert video["name_localizations"] == {"ko": "영상"}  # English is the default, not repeated
    assert video["description_localizations"] == {"ko": "설명으로 짧은 영상 만들기"}
    options = by_name(video["options"])
    assert options["prompt"]["name_localizations"] == {"ko": "프롬프트"}
    assert options["prompt"]["description_localizations"] == {"ko": "영상에서 일어날 일 (어떤 언어로든)"}
    assert options["seconds"]["name_localizations"] == {"ko": "길이"}
    assert [c["name"] for c in options["aspect"]["choices"]] == ["16:9", "9:16", "1:1"]  # ratios need no words

    assert {name: c["name_localizations"].get("ko") for name, c in commands.items()} == {
        "video": "영상",
        "history": "기록",
        "queue": "대기열",
        "cancel": "취소",
        "settings": "설정",
        "help": "도움말",
        "config": "서버설정",
        "character": "캐릭터",
        "Extend this video": "이 영상 이어 만들기",  # the message command (context menu)
    }
    language = by_name(commands["settings"]["options"])["language"]
    assert language["name_localizations"] == {"ko": "언어"}
    auto, *languages = language["choices"]
    assert auto["value"] == "auto" and auto["name_localizations"] == {"ko": "자동 (Discord 언어)"}
    assert [(c["name"], c["value"]) for c in languages] == [("English", "en"), ("한국어", "ko")]

    # Every slash command and option has a Korean name and description, each a valid Discord name.
    for command in (c for c in commands.values() if c.get("type", 1) == 1):
        for part in [command, *command["options"]]:
            assert set(part["name_localizations"]) == {"ko"}, part["name"]
            assert set(part["description_localizations"]) == {"ko"}, part["name"]
            assert DISCORD_NAME.match(part["name_localizations"]["ko"]), part["name_localizations"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalog_command_name_is_a_valid_discord_name(language):
    names = {
        key: name
        for key, name in CATALOGS.messages[language].items()
        if key.startswith("command.") and key.endswith(".name")
    }
    assert names
    for key, name in names.items():
        assert DISCORD_NAME.match(name) and name == name.lower(), (key, name)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("영상", True),
        ("video", True),
        ("vidéo", True),
        ("वीडियो", True),  # Devanagari, with its vowel signs (marks, not letters)
        ("วิดีโอ", True),  # Thai, with its marks
        ("Video", False),  # uppercase
        ("make video", False),  # a space
        ("a" * 33, False),
        ("", False),
        ("clip!", False),
    ],
)
def test_the_translator_checks_names_as_discord_does(name, valid):
    assert valid_name(name) is valid
    assert bool(DISCORD_NAME.match(name) and name == name.lower()) is valid
