"""Hanul's sentences come from its gettext catalogs (bot/locales/), one file per language."""

import shutil
import string
import subprocess
import sys
from pathlib import Path

import discord
import pytest
from babel.messages.pofile import read_po

from bot import i18n
from bot.cogs._translate import CatalogTranslator
from bot.i18n import CATALOGS, LANGUAGES, LOCALE_DIR, Catalogs, language_of, status_word, text

ROOT = Path(__file__).resolve().parents[2]
EXTRACT = ROOT / "scripts" / "i18n_extract.py"


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_english_and_korean_catalogs_are_found():
    assert LANGUAGES == ("en", "ko")
    assert (LOCALE_DIR / "ko" / "LC_MESSAGES" / "hanul.po").is_file()


@pytest.mark.parametrize("key", sorted(CATALOGS.messages["en"]))
def test_every_key_exists_in_every_language_with_the_same_placeholders(key):
    english = CATALOGS.translation(key, "en")
    for language in LANGUAGES:
        translated = CATALOGS.translation(key, language)
        assert translated, f"{key} has no {language} text"
        assert _placeholders(translated) == _placeholders(english), (key, language)


def test_no_language_has_a_key_english_lacks():
    for language in LANGUAGES:
        assert set(CATALOGS.messages[language]) <= set(CATALOGS.messages["en"]), language


def test_discord_locales_map_to_languages():
    assert language_of("ko") == "ko"
    assert language_of("en-US") == "en"
    assert language_of("pt-BR") == "en"  # no Portuguese yet: English
    assert language_of(None) == "en"


def test_text_fills_values_in_the_members_language():
    assert text("refusal.cooldown", "ko", seconds=12) == "조금만 천천히요: 12초 후에 다시 요청할 수 있습니다."
    assert "12s" in text("refusal.cooldown", "en-GB", seconds=12)
    with pytest.raises(KeyError):
        text("no.such.key", "ko")


def test_status_words_cover_every_status():
    from bot import models

    for status in (models.PENDING, models.QUEUED, models.RENDERING, models.COMPLETED, models.POSTED):
        assert CATALOGS.translation(i18n.STATUS_WORD + status, "en"), status
    assert status_word("queued", "ko") == "대기 중"
    assert status_word("something-new", "ko") == "something-new"


def test_multiline_sentences_survive_the_catalog():
    assert text("help.text", "ko", queued=2, cooldown="", quota=10).count("\n") == 8
    assert text("status.eta", "en", seconds=3) == " · about 3s left"  # the leading space is part of it


# --- a third language is one file ----------------------------------------------------------------------------

FRENCH = """\
msgid ""
msgstr ""
"Language: fr\\n"
"Content-Type: text/plain; charset=utf-8\\n"

msgid "refusal.cooldown"
msgstr "Doucement : vous pourrez redemander dans {seconds} s."

msgid "command.video.name"
msgstr "vidéo"

msgid "command.video.description"
msgstr "Faire une courte vidéo à partir d'une description"

msgid "command.video.prompt.name"
msgstr "Invite Texte"

msgid "menu.extend"
msgstr "Prolonger cette vidéo"

#, fuzzy
msgid "refusal.empty"
msgstr "pas encore relu"
"""


@pytest.fixture
def with_french(tmp_path, monkeypatch) -> Catalogs:
    """The bot's locale folder plus a small French catalog, used by `bot.i18n` as if it shipped with it."""
    locales = tmp_path / "locales"
    shutil.copytree(LOCALE_DIR, locales)
    (locales / "fr" / "LC_MESSAGES").mkdir(parents=True)
    (locales / "fr" / "LC_MESSAGES" / "hanul.po").write_text(FRENCH, encoding="utf-8")
    catalogs = Catalogs.load(locales)
    monkeypatch.setattr(i18n, "CATALOGS", catalogs)
    return catalogs


def test_a_third_language_is_one_catalog_file(with_french):
    assert with_french.languages == ("en", "fr", "ko")
    assert language_of("fr") == "fr"
    assert text("refusal.cooldown", "fr", seconds=5) == "Doucement : vous pourrez redemander dans 5 s."
    # What it does not translate yet (or marks fuzzy) is said in English.
    assert text("refusal.empty", "fr") == text("refusal.empty", "en")
    assert text("settings.saved", "fr") == "Saved."


async def test_a_third_language_names_the_commands_too(with_french):
    tree = discord.app_commands.CommandTree(discord.Client(intents=discord.Intents.none()))

    @tree.command(name="video", description=text("command.video.description", "en"))
    async def video(interaction: discord.Interaction, prompt: str) -> None: ...

    translator = CatalogTranslator()
    (payload,) = [await command.get_translated_payload(tree, translator) for command in tree.get_commands()]
    assert payload["name_localizations"] == {"fr": "vidéo", "ko": "영상"}
    assert payload["description_localizations"]["fr"] == "Faire une courte vidéo à partir d'une description"
    # "Invite Texte" breaks Discord's rule for names (uppercase, a space): it stays English rather than fail the sync.
    assert payload["options"][0]["name_localizations"] == {"ko": "프롬프트"}


# --- converting dict entries (branches written before the catalogs) ------------------------------------------

OLD_STYLE = """
STRINGS: dict[str, dict[str, str]] = {
    "refusal.cooldown": {"en": "Slow down: {seconds}s.", "ko": "천천히요: {seconds}초."},
    "example.saved": {
        "en": "Saved for this server: "
        "{what}.",
        "ko": "이 서버에 저장했습니다: {what}.",
    },
}
STATUS_WORDS = {"paused": {"en": "paused", "ko": "일시 중지됨"}}
"""


def test_the_extract_script_turns_dict_entries_into_catalog_entries(tmp_path):
    locales = tmp_path / "locales"
    shutil.copytree(LOCALE_DIR, locales)
    source = tmp_path / "their_i18n.py"
    source.write_text(OLD_STYLE, encoding="utf-8")
    run = [sys.executable, str(EXTRACT), str(source), "--locales", str(locales)]
    first = subprocess.run(run, capture_output=True, text=True, check=True)
    assert "ko/LC_MESSAGES/hanul.po: 2 added, 1 changed" in first.stdout
    catalogs = Catalogs.load(locales)
    assert catalogs.text("example.saved", "en", what="limits") == "Saved for this server: limits."
    assert catalogs.text("example.saved", "ko", what="제한") == "이 서버에 저장했습니다: 제한."
    assert catalogs.status_word("paused", "ko") == "일시 중지됨"
    assert catalogs.text("refusal.cooldown", "en", seconds=3) == "Slow down: 3s."
    assert catalogs.text("status.done", "ko", title="t", link="l") == text("status.done", "ko", title="t", link="l")
    with (locales / "ko" / "LC_MESSAGES" / "hanul.po").open("rb") as file:
        saved = read_po(file).get("example.saved")
    assert saved.auto_comments == ["English: Saved for this server: {what}."]  # for the translator
    before = {path: path.read_bytes() for path in locales.rglob("*.po")}
    again = subprocess.run(run, capture_output=True, text=True, check=True)
    assert "0 added, 0 changed" in again.stdout
    assert {path: path.read_bytes() for path in locales.rglob("*.po")} == before


def test_the_extract_script_starts_a_new_language_from_english(tmp_path):
    locales = tmp_path / "locales"
    shutil.copytree(LOCALE_DIR, locales)
    subprocess.run([sys.executable, str(EXTRACT), "--init", "fr", "--locales", str(locales)], check=True)
    with (locales / "fr" / "LC_MESSAGES" / "hanul.po").open("rb") as file:
        french = read_po(file)
    assert {m.id for m in french if m.id} == set(CATALOGS.messages["en"])
    catalogs = Catalogs.load(locales)
    assert "fr" in catalogs.languages
    assert text("refusal.empty", "en") == catalogs.text("refusal.empty", "fr")  # untranslated: English


def test_the_catalogs_ship_in_the_package():
    """The bot reads the .po files at run time, so an installed package needs them as package data."""
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bot"]
    shipped = {path for pattern in patterns for path in (ROOT / "bot").glob(pattern)}
    assert set(LOCALE_DIR.rglob("*.po")) <= shipped


def test_with_a_base_only_the_branchs_own_changes_are_carried(tmp_path):
    """A branch's copy of the old dict also holds sentences changed in the catalogs since it started: those stay."""
    locales = tmp_path / "locales"
    shutil.copytree(LOCALE_DIR, locales)
    base = tmp_path / "base_i18n.py"
    base.write_text(
        'STRINGS = {"status.done": {"en": "Done (old wording): {link}", "ko": "완성: {link} ({title})"},'
        ' "refusal.empty": {"en": "Say something.", "ko": "말해 주세요."}}',
        encoding="utf-8",
    )
    theirs = tmp_path / "their_i18n.py"
    theirs.write_text(
        'STRINGS = {"status.done": {"en": "Done (old wording): {link}", "ko": "완성: {link} ({title})"},'
        ' "refusal.empty": {"en": "Say something.", "ko": "무엇이든 말해 주세요."},'
        ' "sound.on": {"en": "Sound on.", "ko": "소리 켜짐."}}',
        encoding="utf-8",
    )
    run = [sys.executable, str(EXTRACT), str(theirs), "--base", str(base), "--locales", str(locales)]
    subprocess.run(run, capture_output=True, text=True, check=True)
    catalogs = Catalogs.load(locales)
    assert catalogs.text("sound.on", "ko") == "소리 켜짐."  # added by the branch
    assert catalogs.text("refusal.empty", "ko") == "무엇이든 말해 주세요."  # changed by the branch
    assert catalogs.text("refusal.empty", "en") == text("refusal.empty", "en")  # English untouched by it
    assert catalogs.text("status.done", "en", title="t", link="l") == text("status.done", "en", title="t", link="l")
