"""Text helpers the director needs without an LLM: language by script, caps, token estimates, cleaning."""

from __future__ import annotations

import re
import unicodedata

# Scripts that name a language on their own (Han alone is read as Chinese: Japanese text carries kana).
_SCRIPT_LANGUAGES = (
    ("HANGUL", "ko"),
    ("HIRAGANA", "ja"),
    ("KATAKANA", "ja"),
    ("CJK", "zh"),
    ("CYRILLIC", "ru"),
    ("ARABIC", "ar"),
    ("HEBREW", "he"),
    ("THAI", "th"),
    ("DEVANAGARI", "hi"),
    ("GREEK", "el"),
)

# A handful of very common words, enough to tell the big Latin-script languages apart in a short request.
_LATIN_MARKERS = {
    "es": {"el", "la", "los", "las", "una", "con", "por", "que", "en", "del", "y", "calle", "noche"},
    "fr": {"le", "la", "les", "une", "des", "avec", "dans", "sur", "et", "du", "est", "nuit", "rue"},
    "de": {"der", "die", "das", "ein", "eine", "mit", "und", "im", "auf", "bei", "nacht", "straße"},
    "pt": {"o", "os", "uma", "com", "em", "na", "no", "do", "da", "e", "rua", "noite"},
    "it": {"il", "lo", "gli", "una", "con", "nel", "nella", "di", "e", "che", "notte", "strada"},
    "en": {"the", "a", "an", "with", "in", "on", "of", "and", "at", "is", "night", "street", "make", "it"},
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_BCP47 = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")


def _script(char: str) -> str:
    try:
        return unicodedata.name(char).split(" ", 1)[0]
    except ValueError:
        return ""


def detect_language(text: str) -> str:
    """A best guess at the language of `text` from its script (and, for Latin script, common words)."""
    counts: dict[str, int] = {}
    for char in text:
        if char.isalpha():
            script = _script(char)
            counts[script] = counts.get(script, 0) + 1
    for script, language in _SCRIPT_LANGUAGES:
        # Hangul or kana anywhere wins over Han: Korean and Japanese text mix in Chinese characters.
        if counts.get(script, 0) and (script != "CJK" or counts[script] * 2 >= sum(counts.values())):
            return language
    words = [w.casefold() for w in _WORD.findall(text)]
    scores = {lang: sum(w in markers for w in words) for lang, markers in _LATIN_MARKERS.items()}
    best = max(scores, key=lambda lang: (scores[lang], lang == "en"))
    return best if scores[best] else "en"


def normalize_language(code: str | None, text: str) -> str:
    """The LLM's language code when it is well formed and agrees with the script; otherwise our own guess."""
    guess = detect_language(text)
    code = (code or "").strip().replace("_", "-").lower()
    if not _BCP47.match(code):
        return guess
    # Script is reliable where it is not Latin: trust it over a model that answered "en" for Korean.
    if guess not in _LATIN_MARKERS and code.split("-")[0] != guess:
        return guess
    return code


def latin_share(text: str) -> float:
    """The share of letters in `text` that are Latin script (1.0 for text without letters)."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 1.0
    return sum(_script(c) == "LATIN" for c in letters) / len(letters)


def estimate_tokens(text: str) -> int:
    """Roughly how many tokens `text` costs: ~4 characters each, but about one per CJK/Hangul character."""
    wide = sum(1 for c in text if ord(c) >= 0x2E80)
    return wide + (len(text) - wide + 3) // 4


def clean(text: str) -> str:
    """Member text with control and invisible format characters removed and whitespace collapsed."""
    kept = "".join(c if unicodedata.category(c)[0] != "C" or c in "\n\t" else " " for c in text)
    return re.sub(r"\s+", " ", kept).strip()


def one_line(text: str, max_chars: int) -> str:
    """`text` on one line, cut at a word boundary to at most `max_chars` characters (with an ellipsis)."""
    text = clean(text)
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    if " " in cut[max_chars // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.") + "…"


def cap_words(text: str, max_words: int, max_chars: int) -> str:
    """`text` shortened to whole sentences within both limits; a single overlong sentence is cut at a word."""
    text = clean(text)
    if len(text.split()) <= max_words and len(text) <= max_chars:
        return text
    kept: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        candidate = " ".join([*kept, sentence])
        if len(candidate.split()) > max_words or len(candidate) > max_chars:
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept)
    words = " ".join(text.split()[:max_words])
    return one_line(words, max_chars)


def as_sentence(text: str) -> str:
    """`text` with a capital first letter and closing punctuation, so appended sentences read as such."""
    text = clean(text)
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?。！？…" else text + "."
