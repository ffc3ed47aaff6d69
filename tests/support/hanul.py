"""Settings for bot tests that run the real generator in-process with the tiny model on the CPU."""

from __future__ import annotations

from pathlib import Path

from bot.settings import BotSettings
from generator.settings import GeneratorSettings


def bot_settings(data_dir: Path, **overrides: object) -> BotSettings:
    """Bot settings for a test: its own data folder, no cooldown unless asked, fast progress reports, and no look
    at finished clips unless asked (LLM_VISION: a test's scripted LLM answers only what the test is about)."""
    values: dict[str, object] = {
        "HANUL_DATA_DIR": str(data_dir),
        "LLM_VISION": "off",
        "HANUL_COOLDOWN_SECONDS": 0,
        "HANUL_PROGRESS_INTERVAL": 1,
        "HANUL_DEFAULT_SECONDS": 1,
    }
    values.update(overrides)
    return BotSettings(**values)


def tiny_generator_settings(data_dir: Path, **overrides: object) -> GeneratorSettings:
    """The in-process generator with the tiny random-weight model: a clip renders in about a second."""
    values: dict[str, object] = {
        "HANUL_DATA_DIR": str(data_dir),
        "GENERATOR_MODEL": "tiny",
        "GENERATOR_PORT": 0,
        "GENERATOR_DEVICE": "cpu",
        "GENERATOR_POLL_INTERVAL": 0.05,
    }
    values.update(overrides)
    return GeneratorSettings(**values)
