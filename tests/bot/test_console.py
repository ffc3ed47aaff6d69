"""The terminal front end, driven through its input and output streams with the real generator (tiny model)."""

import io

from bot.console import run_console
from tests.support.hanul import bot_settings, tiny_generator_settings


def converse(tmp_path, lines: list[str]) -> str:
    out = io.StringIO()
    data = tmp_path / "data"
    code = run_console(
        bot_settings(data),
        stdin=io.StringIO("".join(line + "\n" for line in lines)),
        stdout=out,
        generator_settings=tiny_generator_settings(data),
    )
    assert code == 0
    return out.getvalue()


def test_console_renders_refines_and_extends(tmp_path):
    output = converse(tmp_path, ["a cat surfing at sunset", "make it night time", "/extend a wave knocks it over"])
    assert "A cat surfing at sunset" in output  # the expanded prompt is shown
    saved = [line.split(": ", 1)[1] for line in output.splitlines() if "Saved: " in line]
    assert len(saved) == 3
    for path in saved:
        with open(path, "rb") as clip:
            assert clip.read(12)[4:8] == b"ftyp"  # an MP4
    assert "Changed:" in output and "night time" in output.lower()
    assert "Extending" in output


def test_console_explains_mistakes_and_keeps_going(tmp_path):
    output = converse(tmp_path, ["/extend too early", "/dance", "/lang ko", "/extend 아직", "/quit"])
    assert "There is no clip to extend yet" in output
    assert "Unknown command /dance" in output
    assert "아직 이어 만들 영상이 없습니다" in output  # answers in Korean after /lang ko
    assert output.rstrip().endswith("안녕히 가세요.")


def test_console_answers_in_the_language_the_member_writes_until_one_is_chosen(tmp_path):
    output = converse(tmp_path, ["바닷가에서 서핑하는 고양이", "밤으로 바꿔줘", "/lang en", "/extend 파도가 덮친다"])
    korean, english = output.split("Saved.", 1)  # settings.saved in English after /lang en
    assert "🎞️ 저장됨: " in korean and "✏️ 바뀐 점: " in korean
    assert "Saved: " not in korean and "Changed: " not in korean
    assert "➕ Extending" in english and "🎞️ Saved: " in english  # the chosen language, whatever is written
