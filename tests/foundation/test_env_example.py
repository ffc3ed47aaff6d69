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


def _as_written(value: object) -> str:
    """A setting's default as .env.example writes it."""
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def test_defaults_agree_in_the_code_env_example_and_readme():
    env = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    readme = dict(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \| `([^`]*)`", (ROOT / "README.md").read_text(), re.M))
    for cls in (BotSettings, GeneratorSettings):
        for field in cls.model_fields.values():
            name, written = field.validation_alias, env.get(field.validation_alias, "")
            if not written or field.is_required():
                continue  # examples and settings with no default say so in words
            default = field.get_default(call_default_factory=True)
            if isinstance(default, Path):
                assert default == Path(written), name
            else:
                assert _as_written(default) == written, name
            if name in readme:
                assert readme[name] == written, name
