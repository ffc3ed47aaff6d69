import logging
import subprocess
import sys

import pytest

from generator.logs import SecretScrubber, configure_logging


def run_module(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "GENERATOR_", "LLM_", "HANUL_"))}
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
