"""Refusing what a server does not want rendered: its block list, and the OpenAI moderation endpoint."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence

import openai

from bot.director.results import Refused
from bot.director.text import detect_language
from bot.director.wording import phrase

log = logging.getLogger(__name__)


def _fold(text: str) -> str:
    """Compatibility-fold, case-fold and drop invisible format characters, so "B\u200bAD" matches "bad"."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


class BlockList:
    """Words or phrases (any language) a server refuses; Latin-script entries match whole words only."""

    def __init__(self, words: Iterable[str]) -> None:
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for word in words:
            folded = _fold(word).strip()
            if not folded:
                continue
            # Whole words for ASCII entries ("ass" must not block "class"); substrings for scripts without spaces.
            body = re.escape(folded)
            pattern = rf"(?<!\w){body}(?!\w)" if folded.isascii() else body
            self._patterns.append((word.strip(), re.compile(pattern)))

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def find(self, *texts: str | None) -> list[str]:
        """The blocked entries that occur in any of `texts`."""
        haystack = "\n".join(_fold(t) for t in texts if t)
        return [word for word, pattern in self._patterns if pattern.search(haystack)]

    def check(self, *texts: str | None) -> None:
        """Raise `Refused` when any of `texts` contains a blocked entry."""
        found = self.find(*texts)
        if found:
            language = detect_language(" ".join(t for t in texts if t))
            words = ", ".join(f"“{w}”" for w in found)
            raise Refused(phrase("blocked", language, words=words), source="blocklist", categories=found)


class Moderator:
    """Asks the server's `/moderations` endpoint about member text.

    Fails open: a server without the endpoint (Ollama, llama.cpp) or a failing call is logged and the text
    passes, because the admin's block list still applies and a broken filter should not stop every request.
    """

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self._client = client

    async def check(self, texts: Sequence[str]) -> None:
        """Raise `Refused` when the endpoint flags any of `texts`."""
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            return
        try:
            response = await self._client.moderations.create(input=texts)
        except openai.OpenAIError as error:
            log.warning("Moderation failed, letting the request through: %s", _describe(error))
            return
        categories = sorted({name for result in response.results if result.flagged for name in _flagged(result)})
        if any(result.flagged for result in response.results):
            language = detect_language(" ".join(texts))
            shown = ", ".join(categories) or "unspecified"
            raise Refused(phrase("moderated", language, categories=shown), source="moderation", categories=categories)


def _flagged(result: object) -> list[str]:
    categories = getattr(result, "categories", None)
    if categories is None:
        return []
    values = categories.model_dump(by_alias=True) if hasattr(categories, "model_dump") else dict(categories)
    return [name for name, flagged in values.items() if flagged]


def _describe(error: openai.OpenAIError) -> str:
    status = getattr(error, "status_code", None)
    return f"{type(error).__name__} (HTTP {status})" if status else type(error).__name__
