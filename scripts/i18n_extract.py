"""Turn Python dicts of member-facing sentences into entries of Hanul's message catalogs (bot/locales/).

Hanul's sentences used to live in bot/i18n.py as `STRINGS = {key: {language: text}}` and
`STATUS_WORDS = {status: {language: text}}`. Branches written before the move add entries there; this script
carries them into the catalogs, one `.po` file per language:

    git show OTHER-BRANCH:bot/i18n.py > /tmp/their_i18n.py
    git show "$(git merge-base main OTHER-BRANCH)":bot/i18n.py > /tmp/base_i18n.py
    python scripts/i18n_extract.py /tmp/their_i18n.py --base /tmp/base_i18n.py

With `--base`, only what the branch added or changed since that file is carried over, so sentences changed in the
catalogs since then are not put back to the branch's older copy; without it, every entry of the file is written
(new keys added, changed ones updated).

It reads the dict literals without running the file (`ast.literal_eval`), so any file that assigns `STRINGS` or
`STATUS_WORDS` (or the names given with `--dict`) will do. A status word `queued` becomes the key
`status_word.queued`. Existing entries keep their place; new ones are appended in the dict's order. Running it
twice changes nothing the second time.

    python scripts/i18n_extract.py --init fr                   # start a French catalog: every key, empty

A new catalog lists each key with its English text as a comment and an empty translation (untranslated keys fall
back to English at run time); fill in `msgstr` and the language is live after a restart.

Needs only Babel (a dependency of Hanul).
"""

from __future__ import annotations

import argparse
import ast
import sys
from datetime import UTC, datetime
from pathlib import Path

from babel.core import UnknownLocaleError
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
LOCALE_DIR = ROOT / "bot" / "locales"
DOMAIN = "hanul"
SOURCE_LANGUAGE = "en"
DICTS = {"STRINGS": "", "STATUS_WORDS": "status_word."}  # dict name → key prefix


def catalog_path(locale_dir: Path, language: str) -> Path:
    return locale_dir / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_dicts(source: Path, names: dict[str, str]) -> dict[str, dict[str, str]]:
    """`key → {language: text}` from the top-level dict literals `names` in a Python file, keys prefixed."""
    tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
    entries: dict[str, dict[str, str]] = {}
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name) or target.id not in names:
            continue
        found.add(target.id)
        table = ast.literal_eval(value)
        for key, variants in table.items():
            entries[names[target.id] + key] = {str(language): str(text) for language, text in variants.items()}
    if not found:
        raise SystemExit(f"{source}: none of {', '.join(names)} is assigned a dict literal at the top level")
    return entries


def changed_since(base: dict[str, dict[str, str]], entries: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The entries, and within them the languages, that differ from `base`."""
    changed = {}
    for key, variants in entries.items():
        before = base.get(key, {})
        languages = {language: text for language, text in variants.items() if before.get(language) != text}
        if languages:
            changed[key] = languages
    return changed


def load_catalog(locale_dir: Path, language: str) -> Catalog:
    """The language's catalog, or a new empty one."""
    path = catalog_path(locale_dir, language)
    if path.exists():
        with path.open("rb") as file:
            return read_po(file, domain=DOMAIN)
    try:
        catalog = Catalog(locale=language, domain=DOMAIN, project="Hanul", fuzzy=False)
    except (UnknownLocaleError, ValueError):
        catalog = Catalog(domain=DOMAIN, project="Hanul", fuzzy=False)
        catalog.locale = None
    catalog.version = ""
    catalog.msgid_bugs_address = ""
    catalog.copyright_holder = "the Hanul authors"
    catalog.revision_date = datetime.now(UTC)
    catalog.language_team = f"{language} <LL@li.org>"
    catalog.header_comment = f"# Hanul's member-facing sentences: {language}.\n# See README.md, 'Adding a language'."
    return catalog


def save_catalog(locale_dir: Path, language: str, catalog: Catalog) -> Path:
    path = catalog_path(locale_dir, language)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        write_po(file, catalog, width=116, no_location=True, ignore_obsolete=True)
    return path


def english_note(english: str | None) -> list[str]:
    """The English text as a comment for translators (one line per line)."""
    return [f"English: {line}" for line in english.split("\n")] if english else []


def _english_first(language: str) -> tuple[bool, str]:
    return (language != SOURCE_LANGUAGE, language)


def english_of(locale_dir: Path, key: str, variants: dict[str, str]) -> str | None:
    """The English text of a key: the entry's own, else the English catalog's."""
    if SOURCE_LANGUAGE in variants:
        return variants[SOURCE_LANGUAGE]
    message = load_catalog(locale_dir, SOURCE_LANGUAGE).get(key)
    return message.string if message is not None else None


def merge(locale_dir: Path, entries: dict[str, dict[str, str]]) -> dict[str, tuple[int, int]]:
    """Add or update `entries` in every language they name; returns {language: (added, changed)}."""
    languages = sorted({language for variants in entries.values() for language in variants}, key=_english_first)
    report: dict[str, tuple[int, int]] = {}
    for language in languages:
        catalog = load_catalog(locale_dir, language)
        added = changed = 0
        for key, variants in entries.items():
            if language not in variants:
                continue
            text = variants[language]
            notes = [] if language == SOURCE_LANGUAGE else english_note(english_of(locale_dir, key, variants))
            existing = catalog.get(key)
            if existing is None:
                catalog.add(key, text, auto_comments=notes)
                added += 1
            elif existing.string != text or existing.fuzzy:
                existing.string = text
                existing.flags.discard("fuzzy")
                existing.auto_comments = notes or existing.auto_comments
                changed += 1
        if added or changed:
            save_catalog(locale_dir, language, catalog)
        report[language] = (added, changed)
    return report


def init_language(locale_dir: Path, language: str) -> tuple[Path, int]:
    """A catalog for `language` holding every English key, untranslated (missing keys added to an existing one)."""
    english = load_catalog(locale_dir, SOURCE_LANGUAGE)
    catalog = load_catalog(locale_dir, language)
    added = 0
    for message in english:
        if message.id and catalog.get(message.id) is None:
            catalog.add(message.id, "", auto_comments=english_note(message.string))
            added += 1
    return save_catalog(locale_dir, language, catalog), added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, help="a Python file assigning STRINGS / STATUS_WORDS dicts")
    parser.add_argument("--locales", type=Path, default=LOCALE_DIR, help=f"catalog folder (default: {LOCALE_DIR})")
    parser.add_argument(
        "--dict",
        action="append",
        metavar="NAME[=PREFIX]",
        help="dict names to read, each with its key prefix (default: STRINGS and STATUS_WORDS=status_word.)",
    )
    parser.add_argument(
        "--base", type=Path, help="the same file as it was where the branch started: only its changes are carried"
    )
    parser.add_argument("--init", metavar="LANGUAGE", help="start (or complete) LANGUAGE's catalog from English")
    args = parser.parse_args(argv)
    if args.init:
        path, added = init_language(args.locales, args.init)
        print(f"{path}: {added} keys to translate")
        return 0
    if args.source is None:
        parser.error("give a SOURCE file, or --init LANGUAGE")
    names = DICTS if not args.dict else {name: prefix for name, _, prefix in (s.partition("=") for s in args.dict)}
    entries = read_dicts(args.source, names)
    if args.base is not None:
        entries = changed_since(read_dicts(args.base, names), entries)
    for language, (added, changed) in merge(args.locales, entries).items():
        print(f"{catalog_path(args.locales, language)}: {added} added, {changed} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
