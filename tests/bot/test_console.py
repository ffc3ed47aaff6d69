"""The terminal front end, driven through its input and output streams with the real generator (tiny model)."""

import asyncio
import io
import logging
import socket
import time
from pathlib import Path

import pytest

from bot.console import console_main, run_console
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


# --- issue #17: a new user's paths print what to do, never a traceback -------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_the_console_on_a_busy_port_says_so_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = io.StringIO()
        data = tmp_path / "data"
        settings = tiny_generator_settings(data, GENERATOR_PORT=port, GENERATOR_HOST="127.0.0.1")
        code = await console_main(bot_settings(data), io.StringIO("a cat\n"), out, settings)
    assert code == 2
    assert out.getvalue() == (
        f"hanul: the video generator cannot listen on 127.0.0.1:{port} (the port is already in use). "
        "Set GENERATOR_PORT to a free port (0 picks one), or stop the program using it.\n"
    )


def test_bad_generator_settings_are_said_before_anything_starts(tmp_path, monkeypatch, capsys):
    import bot.app
    from bot.__main__ import main

    monkeypatch.setenv("HANUL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENERATOR_PORT", "abc")
    monkeypatch.setenv("DISCORD_TOKEN", "a-token")
    monkeypatch.setattr(bot.app, "run_bot", lambda settings: pytest.fail("connected to Discord"))
    for argv in (["--console"], []):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "hanul: invalid configuration:" in err and "GENERATOR_PORT" in err and "'abc'" in err
        assert "Traceback" not in err


def test_the_console_keeps_log_warnings_out_of_the_conversation(tmp_path, monkeypatch, capsys):
    from bot.__main__ import main

    data = tmp_path / "data"
    monkeypatch.setenv("HANUL_DATA_DIR", str(data))
    monkeypatch.setenv("GENERATOR_URL", f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    monkeypatch.setenv("HANUL_RETRY_MINUTES", "0.02")
    monkeypatch.setattr("sys.stdin", io.StringIO("a cat surfing at sunset\n/quit\n"))
    try:
        assert main(["--console"]) == 0
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_hanul", False)]:
            root.removeHandler(handler)
            handler.close()
    captured = capsys.readouterr()
    assert "could not be reached" in captured.out and captured.out.rstrip().endswith("Bye.")
    assert captured.err == ""  # the retries were logged to the file, not the terminal
    assert "retrying in" in (data / "hanul-console.log").read_text()


async def test_a_model_that_failed_to_load_is_said_and_the_request_kept(tmp_path):
    out = io.StringIO()
    data = tmp_path / "data"
    broken = tmp_path / "broken-model"  # a pipeline folder that passes the start's check but names no components
    broken.mkdir()
    (broken / "model_index.json").write_text('{"_class_name": "LTXConditionPipeline", "_diffusers_version": "0.32.0"}')
    generator = tiny_generator_settings(data, GENERATOR_MODEL=str(broken))
    lines = io.StringIO("a cat surfing at sunset\nmake it night time\n")
    code = await console_main(bot_settings(data), lines, out, generator, interrupt=False)
    output = out.getvalue()
    assert code == 1 and "Traceback" not in output and "can't reach" not in output
    assert "The video generator can't make videos: model failed to load:" in output
    assert "Your request is saved" in output and str(data / "hanul-console.log") in output
    assert "make it night time" not in output  # the session ended there
    await assert_pending(data, 1)


async def test_a_model_that_is_not_here_stops_the_console_with_the_download_command(tmp_path, hub_cache):
    out = io.StringIO()
    data = tmp_path / "data"
    generator = tiny_generator_settings(data, GENERATOR_MODEL="wan2.1-1.3b")
    code = await console_main(bot_settings(data), io.StringIO("a cat\n"), out, generator, interrupt=False)
    output = out.getvalue()
    assert code == 2 and "Traceback" not in output
    assert "python -m generator download wan2.1-1.3b" in output


async def assert_pending(data, count: int) -> None:
    from bot.models import PENDING
    from bot.store import Store
    from hanul_core.db import create_engine

    engine = create_engine(bot_settings(data).resolved_database_url)
    try:
        records = await Store(engine).open_generations(0)
    finally:
        await engine.dispose()
    assert [r.status for r in records] == [PENDING] * count


class Typing(io.StringIO):
    """A member typing: each line after a pause (read on the console's input thread)."""

    def __init__(self, lines: list[str], pause: float) -> None:
        super().__init__()
        self.lines, self.pause = list(lines), pause

    def readline(self, *args: object) -> str:
        if not self.lines:
            return ""
        line = self.lines.pop(0)
        if line.startswith("/"):
            time.sleep(self.pause)
        return line


async def test_quit_while_waiting_leaves_at_once_and_the_request_is_made_at_the_next_start(tmp_path):
    data = tmp_path / "data"
    away = bot_settings(data, GENERATOR_URL=f"http://127.0.0.1:{free_port()}/v1")  # nothing listens there
    out = io.StringIO()
    started = time.monotonic()
    typed = Typing(["a cat surfing at sunset\n", "/quit\n"], pause=1.5)  # /quit while it waits
    code = await console_main(away, typed, out, interrupt=True)
    assert code == 0 and time.monotonic() - started < 10
    assert "can't reach the video generator" in out.getvalue()
    assert out.getvalue().rstrip().endswith("it will be finished the next time you start the console.")
    await assert_pending(data, 1)

    out = io.StringIO()
    code = await console_main(bot_settings(data), io.StringIO(""), out, tiny_generator_settings(data))
    assert code == 0
    assert "↻ Finishing **a cat surfing at sunset**" in out.getvalue().replace("**A cat", "**a cat")
    (saved,) = [line.split(": ", 1)[1] for line in out.getvalue().splitlines() if "Saved: " in line]
    assert (await asyncio.to_thread(Path(saved).read_bytes))[4:8] == b"ftyp"


def test_console_characters_are_made_from_an_image_used_in_a_prompt_listed_and_deleted(tmp_path):
    from tests.bot.test_discord_edits_and_characters import MOCHI, png

    picture = tmp_path / "mochi.png"
    picture.write_bytes(png())
    output = converse(
        tmp_path,
        [
            f"/character create Mochi {picture} {MOCHI}",
            "/character use Mochi surfing at sunset",
            "make it night time",
            "/character list",
            "/character delete Mochi",
            "/character list",
            "/character use Mochi again",
        ],
    )
    assert "**Mochi** is ready" in output and "/character use Mochi …" in output
    assert MOCHI in output.split("/character use", 1)[1].casefold()  # the written prompt shows the description
    assert "editing the clip, keeping its motion" in output  # a change of look in the console is an edit too
    assert len([line for line in output.splitlines() if "Saved: " in line]) == 2
    assert "Character **Mochi** deleted" in output and "No characters yet" in output
    assert "I don't know a character called **Mochi**" in output


def test_console_starts_a_video_from_a_picture_on_disk(tmp_path):
    from PIL import Image

    picture = tmp_path / "my kite.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(picture)
    output = converse(
        tmp_path,
        [
            "/image",
            f"/image {tmp_path / 'missing.png'} a kite",
            f"/image '{picture}' a red kite over the sea",
        ],
    )
    assert "Start from a picture: /image <picture path> <request…>" in output
    assert f"I can't read the file {tmp_path / 'missing.png'}." in output
    assert len([line for line in output.splitlines() if "Saved: " in line]) == 1
    # The picture reached the generator as the clip's first frame (its normalised copy in the job's folder).
    (reference,) = (tmp_path / "data").rglob("reference.png")
    red, green, blue = Image.open(reference).convert("RGB").resize((1, 1)).getpixel((0, 0))
    assert red > 150 and green < 90 and blue < 90
