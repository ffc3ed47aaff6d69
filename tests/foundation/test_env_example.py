import re
from pathlib import Path

from bot.settings import BotSettings
from generator.settings import GeneratorSettings

ROOT = Path(__file__).resolve().parents[2]


def settings_variables() -> set[str]:
    names = set()
    for cls in (BotSettings, GeneratorSettings):
        names |= {field.validation_alias for field in cls.model_fields.values()}
    return names


def test_env_example_lists_every_variable_the_code_reads():
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    assert settings_variables() == listed


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in settings_variables() if f"`{name}`" not in readme]
    assert not missing, f"README lacks: {missing}"
