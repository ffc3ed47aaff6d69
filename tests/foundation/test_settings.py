from pathlib import Path

import pytest

from bot.settings import BotSettings
from generator.settings import GeneratorSettings
from hanul_core.settings import SettingsError, load_settings


def test_defaults_put_everything_in_the_data_folder():
    settings = load_settings(GeneratorSettings)
    assert settings.host == "127.0.0.1"
    assert settings.data_dir == Path("data")
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{Path('data/hanul.db').resolve()}"
    assert settings.videos_dir == Path("data/videos")
    assert settings.api_key is None


def test_environment_overrides_defaults(monkeypatch):
    monkeypatch.setenv("HANUL_DATA_DIR", "/srv/hanul")
    monkeypatch.setenv("GENERATOR_PORT", "9000")
    monkeypatch.setenv("GENERATOR_API_KEY", "secret-key")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = load_settings(GeneratorSettings)
    assert settings.port == 9000
    assert settings.api_key.get_secret_value() == "secret-key"
    assert settings.log_level == "DEBUG"
    assert settings.videos_dir == Path("/srv/hanul/videos")


def test_dotenv_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("DISCORD_TOKEN=abc.def.ghi\nDISCORD_GUILD_IDS=1, 2 3\nLLM_MODEL=llama3\n")
    settings = load_settings(BotSettings)
    assert settings.discord_token.get_secret_value() == "abc.def.ghi"
    assert settings.discord_guild_ids == [1, 2, 3]
    assert settings.llm_model == "llama3"


def test_secrets_are_hidden_in_repr(monkeypatch):
    monkeypatch.setenv("DISCORD_TOKEN", "very-secret-token")
    settings = load_settings(BotSettings)
    assert "very-secret-token" not in repr(settings)
    assert settings.secrets() == ["very-secret-token"]


def test_empty_values_mean_unset(monkeypatch):
    monkeypatch.setenv("GENERATOR_URL", "")
    monkeypatch.setenv("LLM_API_KEY", "")
    monkeypatch.setenv("DISCORD_GUILD_IDS", "")
    settings = load_settings(BotSettings)
    assert settings.generator_url == ""
    assert settings.llm_api_key is None
    assert settings.discord_guild_ids == []


@pytest.mark.parametrize(
    ("variable", "value", "cls"),
    [
        ("GENERATOR_PORT", "eighty", GeneratorSettings),
        ("GENERATOR_PORT", "70000", GeneratorSettings),
        ("GENERATOR_PORT", "-1", GeneratorSettings),
        ("LOG_LEVEL", "chatty", GeneratorSettings),
        ("DATABASE_URL", "mysql://localhost/hanul", GeneratorSettings),
        ("DISCORD_GUILD_IDS", "12,abc", BotSettings),
        ("GENERATOR_URL", "localhost:8189", BotSettings),
        ("HANUL_DAILY_QUOTA", "-1", BotSettings),
        ("HANUL_RETRY_MINUTES", "0", BotSettings),
        ("GENERATOR_DEVICE", "tpu", GeneratorSettings),
        ("GENERATOR_DEVICE", "cuda:x", GeneratorSettings),
    ],
)
def test_bad_value_names_the_variable(monkeypatch, variable, value, cls):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings(cls)
    assert variable in str(raised.value) and "Value error" not in str(raised.value)


@pytest.mark.parametrize(
    ("value", "read"), [("auto", "auto"), ("CPU", "cpu"), ("cuda", "cuda"), (" cuda:1 ", "cuda:1")]
)
def test_the_devices_hanul_knows(monkeypatch, value, read):
    monkeypatch.setenv("GENERATOR_DEVICE", value)
    assert load_settings(GeneratorSettings).device == read


def test_urls_lose_trailing_slash(monkeypatch):
    monkeypatch.setenv("GENERATOR_URL", "http://gpu-box:8189/v1/")
    assert load_settings(BotSettings).generator_url == "http://gpu-box:8189/v1"
