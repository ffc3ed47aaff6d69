"""Slash commands in the member's language: names, descriptions, options, choices and context menus, translated
from the message catalogs (`bot.i18n`) when the commands are synced.

Each piece of a command has a catalog key derived from where it sits: `command.<command>.name`,
`command.<command>.description`, `command.<command>.<option>.name` and `….description` (the option's Python
name); a choice or a context menu names its key itself (`locale_str(…, key="menu.extend")`). The English catalog is
what Discord shows by default (`english`); every other catalog becomes that language's localisations."""

from __future__ import annotations

import logging
import unicodedata

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot import i18n
from bot.i18n import DEFAULT_LANGUAGE, Catalogs

log = logging.getLogger(__name__)

MAX_NAME = 32
MAX_TEXT = 100  # a description or a choice's name
_NAMED = (Where.command_name, Where.group_name, Where.parameter_name)


def english(key: str) -> str:
    """The English text of a catalog key: what a command declares as its default name or description."""
    return i18n.text(key, DEFAULT_LANGUAGE)


def described(command: str, *options: str) -> dict[str, str]:
    """The English descriptions of a command's options, for `app_commands.describe(**…)`."""
    return {option: english(f"command.{command}.{option}.description") for option in options}


def keyed(key: str) -> app_commands.locale_str:
    """A string translated by its own key (choices, context menus), English by default."""
    return app_commands.locale_str(english(key), key=key)


def catalog_key(string: app_commands.locale_str, context: app_commands.TranslationContextTypes) -> str | None:
    """The catalog key of one piece of a command, or None for a piece that is not translated."""
    if "key" in string.extras:
        return str(string.extras["key"])
    data = context.data
    if context.location is Where.command_name and isinstance(data, app_commands.Command):
        return f"command.{data.qualified_name}.name"
    if context.location is Where.command_description:
        return f"command.{data.qualified_name}.description"
    if context.location in (Where.group_name, Where.group_description):
        return f"command.{data.qualified_name}.{'name' if context.location is Where.group_name else 'description'}"
    if context.location is Where.parameter_name:
        return f"command.{data.command.qualified_name}.{data.name}.name"
    if context.location is Where.parameter_description:
        return f"command.{data.command.qualified_name}.{data.name}.description"
    return None


def valid_name(name: str) -> bool:
    """Discord's rule for slash command and option names: 1–32 characters, lowercase, each a letter, a number,
    `-` or `_` (`^[-_\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$`; marks count in Devanagari and Thai)."""
    if not 1 <= len(name) <= MAX_NAME or name != name.lower():
        return False
    for character in name:
        category = unicodedata.category(character)
        devanagari_or_thai = "\u0900" <= character <= "\u097f" or "\u0e00" <= character <= "\u0e7f"
        if not (character in "-_" or category[0] in "LN" or devanagari_or_thai):
            return False
    return True


class CatalogTranslator(app_commands.Translator):
    """`app_commands.Translator` over Hanul's catalogs: each Discord locale gets its catalog's text, when there is
    a catalog for it and the key is translated there; English is the default itself and is not repeated."""

    def __init__(self, catalogs: Catalogs | None = None) -> None:
        self._catalogs = catalogs

    @property
    def catalogs(self) -> Catalogs:
        return self._catalogs or i18n.CATALOGS  # by default the bot's, read at each sync

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        key = catalog_key(string, context)
        language = self.catalogs.catalog_language(locale.value)
        if key is None or language is None or language == DEFAULT_LANGUAGE:
            return None
        translated = self.catalogs.translation(key, language)
        if translated is None:
            return None
        is_slash_name = context.location in _NAMED and not isinstance(context.data, app_commands.ContextMenu)
        if is_slash_name and not valid_name(translated):
            # Discord refuses the whole sync for one bad name: leave this one in English and say which.
            log.warning("catalog %s: %r is not a valid command name for %s; using English", language, translated, key)
            return None
        longest = MAX_NAME if context.location is Where.command_name else MAX_TEXT  # a context menu's name: 32
        if not translated.strip() or len(translated) > longest:
            # A description, a choice or a menu too long (or blank) fails the whole sync just the same.
            log.warning(
                "catalog %s: %s is blank or longer than Discord's %d characters; using English", language, key, longest
            )
            return None
        return translated
