"""Every sentence Hanul says to a member, read from its message catalogs: one gettext file per language,
`bot/locales/<language>/LC_MESSAGES/hanul.po`, read with Babel when this module is imported.

A message id is a stable key (`refusal.cooldown`); its text, in that language, has `{placeholders}` that
`text(key, locale, **values)` fills in. The language is picked from a Discord locale (`ko`, `en-US`, `pt-BR`: the
whole locale first, then its base language) and falls back to English for a language, a key or an entry with no
translation yet; a third language is one more `.po` file (README, "Adding a language"). Slash commands take their
names and descriptions from the same catalogs (`command.<name>.…` keys, see `bot.cogs._translate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).with_name("locales")
DOMAIN = "hanul"
DEFAULT_LANGUAGE = "en"
STATUS_WORD = "status_word."  # the key prefix of a generation status as a member reads it


class Quoted(str):
    """A value Hanul did not write (a member's words, an LLM's, a generator's error): said as it is in the console;
    on Discord its Markdown is escaped and it is what gets shortened to fit (`bot.cogs._common.discord_text`)."""


def read_catalog(path: Path) -> dict[str, str]:
    """A `.po` file's translated entries (key → text); untranslated and fuzzy entries are left out."""
    with path.open("rb") as file:
        catalog = read_po(file, domain=DOMAIN)
    return {
        message.id: message.string
        for message in catalog
        if isinstance(message.id, str) and message.id and isinstance(message.string, str) and message.string
        if not message.fuzzy
    }


def _normalised(locale: str) -> str:
    return str(locale).replace("-", "_").lower()


@dataclass(frozen=True)
class Catalogs:
    """The sentences of every language found in one locale folder."""

    messages: Mapping[str, Mapping[str, str]]  # language (the folder's name) → key → text

    @classmethod
    def load(cls, directory: Path = LOCALE_DIR) -> Catalogs:
        """Every `<language>/LC_MESSAGES/hanul.po` under `directory`; English must be there."""
        messages = {
            path.parents[1].name: read_catalog(path) for path in sorted(directory.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
        }
        if DEFAULT_LANGUAGE not in messages:
            raise FileNotFoundError(f"no {DEFAULT_LANGUAGE} catalog ({DOMAIN}.po) under {directory}")
        return cls(messages)

    @property
    def languages(self) -> tuple[str, ...]:
        """English first, then the others by name."""
        return (DEFAULT_LANGUAGE, *sorted(language for language in self.messages if language != DEFAULT_LANGUAGE))

    def catalog_language(self, locale: str | None) -> str | None:
        """The catalog for a Discord locale (`pt-BR`: `pt_BR`, else `pt`), or None when there is none."""
        if not locale:
            return None
        by_name = {_normalised(language): language for language in self.messages}
        wanted = _normalised(locale)
        return by_name.get(wanted) or by_name.get(wanted.split("_")[0])

    def translation(self, key: str, language: str) -> str | None:
        """The key's text in exactly this language, or None (no fallback)."""
        return self.messages.get(language, {}).get(key)

    def template(self, key: str, locale: str | None) -> str:
        """The key's text in the locale's language, else English (KeyError: English does not have it either)."""
        language = self.catalog_language(locale)
        found = self.translation(key, language) if language else None
        return found if found is not None else self.messages[DEFAULT_LANGUAGE][key]

    def text(self, key: str, locale: str | None = None, **values: object) -> str:
        return self.template(key, locale).format(**values)

    def status_word(self, status: str, locale: str | None = None) -> str:
        try:
            return self.template(STATUS_WORD + status, locale)
        except KeyError:
            return status


CATALOGS = Catalogs.load()
LANGUAGES = CATALOGS.languages


def language_of(locale: str | None) -> str:
    """The language Hanul answers in for a Discord locale (`ko` → ko, `en-US` → en, unknown → en)."""
    return CATALOGS.catalog_language(locale) or DEFAULT_LANGUAGE


def text(key: str, locale: str | None = None, **values: object) -> str:
    """The sentence `key` in the member's language, with `values` filled in."""
    return CATALOGS.text(key, locale, **values)


def template(key: str, locale: str | None = None) -> str:
    """The sentence `key` in the member's language, its `{placeholders}` not filled in."""
    return CATALOGS.template(key, locale)


def status_word(status: str, locale: str | None = None) -> str:
    """A generation status as a member reads it."""
    return CATALOGS.status_word(status, locale)
