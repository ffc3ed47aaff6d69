"""Refusing what a server does not want rendered: its block list, and the OpenAI moderation endpoint."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence

import openai
from openai.types import ModerationCreateResponse

from bot.director.results import Refused
from bot.director.text import detect_language
from bot.director.wording import phrase

log = logging.getLogger(__name__)


def _fold(text: str) -> str:
    """Compatibility-fold, case-fold, drop invisible format characters and make any run of spaces or line breaks one
    space, so "B\u200bAD" matches "bad" and "blood\nbath" matches "blood bath"."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", "".join(c for c in text if unicodedata.category(c) != "Cf"))


_SPACES = re.compile(r"\s+")
# Between the letters of a word spelt out to dodge the list: "g o r e", "g.o.r.e", "g-o-r-e".
_SPELT_GAP = r"[\W_]{1,3}"


def _pattern(folded: str) -> str:
    """Whole words for ASCII entries ("ass" must not block "class"), also spelt out letter by letter; substrings for
    scripts without spaces."""
    if not folded.isascii():
        return re.escape(folded)
    whole = rf"(?<!\w){re.escape(folded)}(?!\w)"
    if len(folded) < 3 or not folded.isalnum():
        return whole
    spelt = _SPELT_GAP.join(re.escape(c) for c in folded)
    return rf"{whole}|(?<!\w){spelt}(?!\w)"


class BlockList:
    """Words or phrases (any language) a server refuses; Latin-script entries match whole words only."""

    def __init__(self, words: Iterable[str]) -> None:
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for word in words:
            folded = _fold(word).strip()
            if not folded:
                continue
            self._patterns.append((word.strip(), re.compile(_pattern(folded))))

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def find(self, *texts: str | None) -> list[str]:
        """The blocked entries that occur in any of `texts`."""
        folded = [_fold(t) for t in texts if t]
        return [word for word, pattern in self._patterns if any(pattern.search(text) for text in folded)]

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
        except (openai.OpenAIError, ValueError, RecursionError) as error:  # ValueError: a body that is not JSON
            log.warning("Moderation failed, letting the request through: %s", _describe(error))
            return
        if not isinstance(response, ModerationCreateResponse) or not isinstance(response.results, list):
            # The SDK hands back the text of a 200 that is not JSON: a web page where the endpoint should be.
            log.warning("Moderation answered with no verdicts, letting the request through")
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


def _describe(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    return f"{type(error).__name__} (HTTP {status})" if status else type(error).__name__
