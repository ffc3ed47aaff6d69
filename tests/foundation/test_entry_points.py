import logging
import subprocess
import sys
from pathlib import Path

import pytest

from generator.media import writing
from generator.media.parts import PartedMp4Writer
from generator.media.reading import decode_video
from generator.oneshot import generate_to_file
from generator.settings import GeneratorSettings
from hanul_core.logs import SecretScrubber, configure_logging


def run_module(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "GENERATOR_", "LLM_", "HANUL_"))}
    # Tests run in their own folder: without this, `-m` imports whichever copy of the code is installed.
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize("module", ["bot", "generator"])
def test_help_prints_usage(module):
    result = run_module(module, "--help")
    assert result.returncode == 0
    assert f"usage: python -m {module}" in result.stdout


def test_bot_without_token_explains_what_is_missing():
    result = run_module("bot")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "DISCORD_TOKEN is not set" in result.stderr
    assert "--console" in result.stderr


def test_bad_setting_is_a_message_not_a_traceback():
    result = run_module("generator", "migrate", env_extra={"GENERATOR_PORT": "eighty"})
    assert result.returncode == 2
    assert "GENERATOR_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_command_creates_the_database(tmp_path):
    result = run_module("generator", "migrate", env_extra={"HANUL_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "hanul.db").stat().st_size > 0


def test_generator_migrate_creates_only_its_tables_and_needs_no_bot_code(tmp_path):
    """A generator-only host: `python -m generator migrate` with the bot package missing makes the generator's
    tables and its version table, nothing of the bot's."""
    import os
    import sqlite3

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "GENERATOR_", "LLM_", "HANUL_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["HANUL_DATA_DIR"] = str(tmp_path / "data")
    without_the_bot = (
        "import sys; sys.modules['bot'] = None\n"  # any `import bot...` now raises ImportError
        "from generator.__main__ import main\n"
        "sys.exit(main(['migrate']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", without_the_bot], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "data" / "hanul.db") as database:
        tables = {name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"video_jobs", "video_artifacts", "files", "characters", "alembic_version_generator"}


def test_scrubber_hides_known_secrets_and_token_shapes():
    scrubber = SecretScrubber(["my-generator-key"])
    assert "my-generator-key" not in scrubber.scrub("calling with key my-generator-key")
    assert "sk-abcdefghijklmnopqrstu" not in scrubber.scrub("api_key=sk-abcdefghijklmnopqrstu")
    assert "abcdefghijklmnop" not in scrubber.scrub("Authorization: Bearer abcdefghijklmnop")
    token = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789"
    assert token not in scrubber.scrub(f"login with {token}")


@pytest.fixture
def restored_root_logger():
    """configure_logging changes the process-wide root logger: put it back, or its handler (bound to this test's
    captured stderr, closed afterwards) and its DEBUG level outlive the test and every later record (aiosqlite's
    worker threads log at DEBUG) ends in "--- Logging error ---: I/O operation on closed file"."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = ("httpx", "httpx2", "httpcore", "aiohttp.access", "discord.gateway", "alembic.runtime.migration")
    noisy = {name: logging.getLogger(name).level for name in names}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name, old in noisy.items():
        logging.getLogger(name).setLevel(old)


def test_configured_logging_never_writes_a_secret(capsys, restored_root_logger):
    configure_logging("DEBUG", ["hunter2-secret"])
    logging.getLogger("hanul.test").warning("token is %s", "hunter2-secret")
    try:
        raise RuntimeError("failed with hunter2-secret")
    except RuntimeError:
        logging.getLogger("hanul.test").exception("boom")
    err = capsys.readouterr().err
    assert "hunter2-secret" not in err
    assert "token is ***" in err


def test_generate_command_writes_the_clip(tmp_path):
    output = tmp_path / "clips" / "kite.mp4"
    result = run_module(
        "generator",
        *("generate", "a red kite over a beach", "--model", "tiny", "--seconds", "2", "--seed", "3", "--steps", "2"),
        *("-o", str(output)),
        env_extra={"GENERATOR_DEVICE": "cpu", "GENERATOR_DTYPE": "float32", "HANUL_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.returncode == 0, result.stderr
    frames, fps = decode_video(output)
    assert fps == 8 and len(frames) == 16
    assert f"{output}: 96x64, 16 frames at 8 fps" in result.stdout
    assert "seed 3" in result.stdout


def tiny_settings(tmp_path, **values) -> GeneratorSettings:
    return GeneratorSettings(
        _env_file=None,
        GENERATOR_MODEL="tiny",
        GENERATOR_DEVICE="cpu",
        GENERATOR_DTYPE="float32",
        HANUL_DATA_DIR=str(tmp_path / "data"),
        **values,
    )


@pytest.mark.parametrize("mp4_parts", [1, 3])
def test_generate_encodes_a_long_clip_along_its_render_and_under_the_cap(tmp_path, monkeypatch, capsys, mp4_parts):
    """A clip of several segments: each segment is handed to the MP4 encoder as it is rendered (one encoder, or with
    GENERATOR_MP4_PARTS the earlier segments to one and the last in parts); over the byte cap the clip is encoded
    again smaller."""
    parts = []
    add = writing.EncodeAlong.add
    monkeypatch.setattr(writing.EncodeAlong, "add", lambda self, frames: (parts.append(len(frames)), add(self, frames)))
    parted = []
    finish = PartedMp4Writer.finish
    monkeypatch.setattr(PartedMp4Writer, "finish", lambda self, cap: parted.append(self.parts) or finish(self, cap))
    smaller = []
    encode_mp4 = writing.encode_mp4
    monkeypatch.setattr(writing, "encode_mp4", lambda *a, **k: smaller.append(k) or encode_mp4(*a, **k))
    output = tmp_path / "long.mp4"
    settings = tiny_settings(tmp_path, GENERATOR_MAX_BYTES=64 * 1024, GENERATOR_MP4_PARTS=mp4_parts)
    code = generate_to_file(
        settings, prompt="a red kite", output=output, seconds=10, size=None, seed=3, steps=2, negative_prompt=None
    )
    assert code == 0
    frames, _ = decode_video(output)
    assert len(parts) > 1 and sum(parts) == len(frames) == 80
    assert output.stat().st_size <= 64 * 1024
    assert len(smaller) == 1 and smaller[0]["crf_size"] > 64 * 1024  # the first attempt was not made again
    assert [path.name for path in tmp_path.iterdir()] == ["long.mp4"]  # no working file left
    assert "80 frames at 8 fps" in capsys.readouterr().out
    assert parted == ([mp4_parts] if mp4_parts > 1 else [])  # the setting reached the one-shot command's writer


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"seconds": 0}, "Invalid 'seconds'"),
        ({"seconds": 61}, "seconds"),
        ({"size": "banana"}, "size"),
        ({"steps": -1}, "num_inference_steps"),
    ],
)
def test_generate_refuses_bad_input_with_a_message_and_writes_nothing(tmp_path, capsys, values, message):
    request = {"seconds": 2, "size": None, "seed": None, "steps": 2, **values}
    output = tmp_path / "never.mp4"
    code = generate_to_file(
        tiny_settings(tmp_path), prompt="a red kite", output=output, negative_prompt=None, **request
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_generate_explains_a_clip_that_cannot_fit_the_cap(tmp_path, capsys):
    output = tmp_path / "long.mp4"
    settings = tiny_settings(tmp_path, GENERATOR_MAX_BYTES=64 * 1024)
    code = generate_to_file(
        settings, prompt="a red kite", output=output, seconds=45, size=None, seed=3, steps=1, negative_prompt=None
    )
    assert code == 1
    error = capsys.readouterr().err
    assert "cannot fit 360 frames of 96x64" in error and "GENERATOR_MAX_BYTES is 65536" in error
    assert "Traceback" not in error
    assert list(tmp_path.iterdir()) == []  # neither the clip nor a working file


def unwritable_places(tmp_path):
    """Folders no one can write: one under a plain file (everywhere), and sysfs (read-only even to root)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    places = [blocker / "data"]
    try:
        (Path("/sys") / "hanul-write-check").mkdir()
    except OSError:
        places.append(Path("/sys/hanul-data"))
    return places


@pytest.mark.parametrize("variable", ["HANUL_DATA_DIR", "DATABASE_URL"])
def test_an_unwritable_data_folder_or_database_is_a_short_message_naming_it(tmp_path, variable):
    for place in unwritable_places(tmp_path):
        value = str(place) if variable == "HANUL_DATA_DIR" else f"sqlite+aiosqlite:///{place}/hanul.db"
        env = {variable: value, "GENERATOR_PORT": "0", "GENERATOR_WORKERS": "0", "GENERATOR_MODEL": "tiny"}
        if variable == "DATABASE_URL":
            env["HANUL_DATA_DIR"] = str(tmp_path / "data")
        for command in (["serve"], ["migrate"]):
            result = run_module("generator", *command, env_extra=env)
            assert result.returncode == 1, result.stderr
            assert "Traceback" not in result.stderr
            assert str(place) in result.stderr and variable in result.stderr
            assert len(result.stderr.strip().splitlines()) <= 4, result.stderr


def test_a_database_url_error_says_what_it_got_once_and_hides_the_password():
    result = run_module("generator", "migrate", env_extra={"DATABASE_URL": "mysql://hanul:s3cret@db/hanul"})
    assert result.returncode == 2
    assert result.stderr.count("got") == 1, result.stderr
    assert "s3cret" not in result.stderr
    result = run_module("generator", "migrate", env_extra={"GENERATOR_PORT": "x://hanul:s3cret@db"})
    assert "got" in result.stderr and "s3cret" not in result.stderr


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine whose torch sees no GPU")
def test_a_gpu_that_torch_does_not_see_stops_serve_at_start_with_why(tmp_path):
    env = {"GENERATOR_DEVICE": "cuda", "GENERATOR_PORT": "0", "GENERATOR_MODEL": "tiny"}
    result = run_module("generator", "serve", env_extra=env | {"HANUL_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "GENERATOR_DEVICE=cuda:" in result.stderr and "GENERATOR_DEVICE=cpu" in result.stderr
