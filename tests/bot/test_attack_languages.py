"""Languages and the console under attack: what a member in another language, or at an odd terminal, would meet."""

from __future__ import annotations

import ast
import dataclasses
import io
import re
import shutil
import string
from pathlib import Path

import discord
import pytest

from bot import i18n
from bot.cogs._translate import CatalogTranslator, keyed
from bot.cogs.config import describe as describe_server
from bot.cogs.member import describe as describe_member
from bot.cogs.member import help_text
from bot.console import Console, run_console
from bot.guild_config import defaults
from bot.i18n import CATALOGS, LOCALE_DIR, Catalogs, language_of, text
from bot.limits import Refusal
from bot.store import MemberSettings
from bot.studio.drafts import MAX_IMAGE_BYTES
from tests.support.hanul import bot_settings, tiny_generator_settings

BOT = Path(__file__).resolve().parents[2] / "bot"


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# --- every sentence the code names is in the catalogs, with the values it needs -------------------------------

SAYING = {"text", "discord_text", "english", "keyed"}  # f(key, locale, **values)


def _sentences_named_in_code() -> list[tuple[str, str, set[str] | None]]:
    """(where, key, the values given; None when they are not all written out) for each literal key in bot/."""
    found = []
    for path in sorted(BOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            where = f"{path.relative_to(BOT.parent)}:{node.lineno}"
            if name in SAYING and "." in first.value:
                given = {k.arg for k in node.keywords}
                found.append((where, first.value, None if None in given else given))
            elif name == "template" and "." in first.value:  # filled in later (`fit`): the key must exist
                found.append((where, first.value, None))
            elif name == "Refusal":
                values = node.args[1] if len(node.args) > 1 else ast.Dict(keys=[], values=[])
                keys = getattr(values, "keys", None)
                given = None
                if keys is not None and all(isinstance(k, ast.Constant) for k in keys):
                    given = {k.value for k in keys} | {"detail", "id"}  # `Refusal.said` fills these two in
                found.append((where, f"refusal.{first.value}", given))
    return found


def test_every_key_the_code_names_is_in_every_catalog_with_the_values_its_sentence_needs():
    named = _sentences_named_in_code()
    assert len(named) > 150  # the scan sees the code
    problems = []
    for where, key, given in named:
        for language in CATALOGS.languages:
            sentence = CATALOGS.translation(key, language)
            if sentence is None:
                problems.append(f"{where}: {key} is not in the {language} catalog")
            elif given is not None and _placeholders(sentence) - given:
                problems.append(f"{where}: {key} ({language}) needs {sorted(_placeholders(sentence) - given)}")
    assert not problems, "\n".join(problems)


# --- Korean particles: never guessed -----------------------------------------------------------------------------

PARTICLE = "을를이가은는과와"
GUESSED = re.compile(rf"[{PARTICLE}]\([{PARTICLE}]\)|\((으)\)로")  # 을(를), 은(는), (으)로: a machine's hedge
GLUED = re.compile(rf"\}}[*`]*(?:[{PARTICLE}]|으로|로)(?![가-힣])")  # {title}을: right for only half the titles


@pytest.mark.parametrize("key", sorted(CATALOGS.messages["ko"]))
def test_korean_sentences_do_not_hang_a_particle_on_a_value(key):
    """A title or a name ends in a vowel or a consonant: "영상 **{title}**은(는)" reads as a form. The noun after the
    value (**{title}** 영상은) takes the particle instead."""
    sentence = CATALOGS.translation(key, "ko")
    assert not GUESSED.search(sentence), (key, sentence)
    assert not GLUED.search(sentence), (key, sentence)


def _server(**changes: object):
    return dataclasses.replace(defaults(bot_settings(Path("unused"))), **changes)


def test_an_unlimited_daily_quota_reads_as_korean():
    """/help and /config said "하루 무제한개" (unlimited pieces) for a server with no daily quota."""
    unlimited, ten = _server(daily_quota=0), _server(daily_quota=10)
    assert help_text(unlimited, "ko").endswith("하루 무제한.")
    assert help_text(ten, "ko").endswith("하루 10개.")
    assert help_text(ten, "en").endswith("10 a day.")
    assert "하루 무제한 ·" in describe_server(unlimited, "unknown", "ko")
    assert "하루 10개 ·" in describe_server(ten, "unknown", "ko")
    assert "· 10 a day ·" in describe_server(ten, "unknown", "en")


def test_settings_name_the_chosen_language_not_its_code():
    """/settings showed "언어: ko"; /config "Language: ko"."""
    member = MemberSettings(user_id=1, language="ko")
    assert "언어: 한국어" in describe_member(member, _server(), "ko")
    assert "Language: 한국어" in describe_member(member, _server(), "en")  # each language under its own name
    assert "Language: English" in describe_server(_server(language="en"), "unknown", "en")


# --- Discord locales -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", [locale.value for locale in discord.Locale] + ["xx-YY", "", "KO", "ko_KR"])
def test_every_discord_locale_gets_a_language(locale):
    expected = "ko" if locale.lower().startswith("ko") else "en"
    assert language_of(locale) == expected
    assert text("refusal.cooldown", locale, seconds=3) == text("refusal.cooldown", expected, seconds=3)


@pytest.fixture
def overlong_korean(tmp_path, monkeypatch) -> Catalogs:
    """The bot's catalogs with a Korean description, choice and menu too long for Discord."""
    locales = tmp_path / "locales"
    shutil.copytree(LOCALE_DIR, locales)
    po = locales / "ko" / "LC_MESSAGES" / "hanul.po"
    long = "아주 " * 60
    source = po.read_text(encoding="utf-8")
    for key in ("command.video.description", "command.video.prompt.description", "choice.language.auto"):
        source = re.sub(rf'(msgid "{re.escape(key)}"\nmsgstr ")[^"]*"', rf'\g<1>{long}"', source)
    menu = "이 영상을 이어서 조금 더 길게 만들어 주는 메뉴 (서른두 자가 넘는 이름)"
    source = re.sub(r'(msgid "menu.extend"\nmsgstr ")[^"]*"', rf'\g<1>{menu}"', source)
    po.write_text(source, encoding="utf-8")
    catalogs = Catalogs.load(locales)
    monkeypatch.setattr(i18n, "CATALOGS", catalogs)
    return catalogs


async def test_a_translation_too_long_for_discord_stays_english_rather_than_fail_the_sync(overlong_korean):
    """Discord refuses every command of a sync when one description or choice is over 100 characters (a context
    menu's name over 32): such a translation is left out, as a bad name is."""
    tree = discord.app_commands.CommandTree(discord.Client(intents=discord.Intents.none()))
    auto = discord.app_commands.Choice(name=keyed("choice.language.auto"), value="auto")

    @tree.command(name="video", description=text("command.video.description", "en"))
    @discord.app_commands.choices(prompt=[auto])
    async def video(interaction: discord.Interaction, prompt: str) -> None: ...

    @tree.context_menu(name=discord.app_commands.locale_str("Extend this video", key="menu.extend"))
    async def extend(interaction: discord.Interaction, message: discord.Message) -> None: ...

    translator = CatalogTranslator()
    payloads = {c.name: await c.get_translated_payload(tree, translator) for c in tree.get_commands(type=None)}
    video_payload = payloads["video"]
    assert video_payload["name_localizations"] == {"ko": "영상"}  # what fits is still translated
    assert not video_payload.get("description_localizations")
    (option,) = video_payload["options"]
    assert option["name_localizations"] == {"ko": "프롬프트"} and not option.get("description_localizations")
    assert not option["choices"][0].get("name_localizations")
    assert not payloads["Extend this video"].get("name_localizations")


# --- the console ----------------------------------------------------------------------------------------------


class Studio:
    """Records what the console asks the studio for, then refuses it (nothing is rendered)."""

    def __init__(self) -> None:
        self.asked: list[tuple] = []

    async def new_video(self, requester, request, options, destination):
        self.asked.append(("new", request, options))
        raise Refusal("empty")

    async def create_character(self, requester, name, origin, description=None):
        self.asked.append(("create", name, origin, description))
        raise Refusal("empty")

    async def change_settings(self, requester, **changes):
        self.asked.append(("settings", changes))


def _console(tmp_path: Path, locale: str | None = None) -> tuple[Console, Studio, io.StringIO]:
    studio, out = Studio(), io.StringIO()
    console = Console(studio, out, tmp_path)  # type: ignore[arg-type]
    console.locale = locale
    return console, studio, out


async def test_a_request_with_an_apostrophe_is_a_request_not_a_usage_error(tmp_path):
    """shlex read "a cat's kite" as an unclosed quote: /image and /character answered with their usage line."""
    picture = tmp_path / "kite.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n")
    console, studio, out = _console(tmp_path)
    await console.handle(f"/image {picture} a cat's kite")
    await console.handle("/character use 'Big Mochi' it's raining")
    await console.handle("/character create Mochi #12 a cat's red scarf")
    assert "Start from a picture" not in out.getvalue() and "Characters:" not in out.getvalue()
    (_, request, options), (_, used_request, used), (_, name, origin, description) = studio.asked
    assert request == "a cat's kite" and options.image.data == picture.read_bytes()
    assert used_request == "it's raining" and used.characters == ("Big Mochi",)
    assert (name, origin.clip_id, description) == ("Mochi", 12, "a cat's red scarf")
    await console.handle("/image 'unclosed a cat")  # still a usage line, not a traceback
    assert "Start from a picture" in out.getvalue()


async def test_a_huge_file_named_as_a_picture_is_not_read_whole(tmp_path):
    """/image read the whole file into memory before its size was checked (a film, /dev/zero)."""
    huge = tmp_path / "holiday.png"
    with huge.open("wb") as file:
        file.truncate(256 * 1024 * 1024)  # sparse: costs no disk
    console, studio, _ = _console(tmp_path)
    await console.handle(f"/image {huge} a kite")
    (_, _, options), *_ = studio.asked
    assert len(options.image.data) == MAX_IMAGE_BYTES + 1  # enough for the studio to refuse it by its size


async def test_lang_takes_the_language_however_it_is_written(tmp_path):
    console, studio, out = _console(tmp_path)
    await console.handle("/lang KO")
    assert console.locale == "ko" and studio.asked == [("settings", {"language": "ko"})]
    assert out.getvalue() == text("settings.saved", "ko") + "\n"
    await console.handle("/lang")
    assert "/lang ." not in out.getvalue()


async def test_a_line_without_words_keeps_the_conversations_language(tmp_path):
    """A Korean conversation switched to English on "/extend 🌊🌊" or "/extend 3": no letters, no language."""
    console, _, out = _console(tmp_path, locale="ko")
    await console.handle("/extend 🌊🌊")
    await console.handle("/extend 3")
    assert out.getvalue() == 2 * (text("console.need_clip", "ko") + "\n")


def test_a_terminal_that_is_not_utf8_neither_crashes_nor_ends_the_input(tmp_path):
    """An ASCII or Latin-1 terminal (LANG=en_US.ISO-8859-1, PYTHONIOENCODING=ascii) crashed on the welcome's dash;
    a CP949 line piped into a UTF-8 console ended the input there, silently."""
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="ascii", write_through=True)
    piped = b"/extend " + "파도".encode("cp949") + b"\n/extend more\n/lang ko\n/quit\n"
    stdin = io.TextIOWrapper(io.BytesIO(piped), encoding="utf-8")
    data = tmp_path / "data"
    code = run_console(bot_settings(data), stdin=stdin, stdout=stdout, generator_settings=tiny_generator_settings(data))
    shown = raw.getvalue().decode("ascii")
    assert code == 0
    assert shown.startswith("Hanul console ? describe a video")  # "—" shown as "?"
    assert shown.count("There is no clip to extend yet") == 2  # both lines were read
    assert shown.rstrip().endswith("> ??? ???.")  # 안녕히 가세요. after /lang ko


def test_a_closed_stdin_is_the_end_of_the_input(tmp_path, monkeypatch):
    """`python -m bot --console <&-`: sys.stdin is None, and the console died on `None.isatty()`."""
    monkeypatch.setattr("sys.stdin", None)
    out = io.StringIO()
    data = tmp_path / "data"
    assert run_console(bot_settings(data), stdout=out, generator_settings=tiny_generator_settings(data)) == 0
    assert out.getvalue().startswith("Hanul console")
