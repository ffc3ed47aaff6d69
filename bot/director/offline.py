"""The deterministic writer used when no LLM answers: it keeps the member's words and their meaning.

It cannot translate, so a request in another language goes to the video model as written; English text gets
at most one generic sentence about camera and light, never new subjects or actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.director.results import Turn
from bot.director.styles import ModelStyle
from bot.director.text import as_sentence, cap_words, clean, detect_language, one_line
from bot.director.wording import phrase

TITLE_CHARS = 60


@dataclass(frozen=True)
class Draft:
    """An offline prompt and the pieces the director's result needs besides it."""

    prompt: str
    negative_prompt: str
    title: str
    language: str
    summary: str = ""


def _fit(text: str, beside: str, style: ModelStyle) -> str:
    """`text` shortened to the room the caps leave next to `beside` (the member's newest words, never cut)."""
    words_left = style.max_words - len(beside.split())
    chars_left = style.max_chars - len(beside) - 1
    return cap_words(text, words_left, chars_left) if words_left > 0 and chars_left > 0 else ""


def expand(
    style: ModelStyle,
    request: str,
    *,
    video_style: str | None = None,
    image_description: str | None = None,
) -> Draft:
    """The request as a prompt: English lightly enriched, any other language as written."""
    language = detect_language(request)
    parts = [as_sentence(request)]
    if video_style:
        parts.append(as_sentence(f"{clean(video_style)} style"))
    if image_description:
        parts.append(as_sentence(f"Starting from the reference image: {clean(image_description)}"))
    if language == "en":
        parts.append(style.enrichment)
    prompt = cap_words(" ".join(p for p in parts if p), style.max_words, style.max_chars)
    return Draft(prompt, style.negative_prompt, one_line(request, TITLE_CHARS), language)


def refine(style: ModelStyle, current_prompt: str, history: Sequence[Turn], message: str) -> Draft:
    """The current prompt with the member's new words appended as written; the prompt is trimmed, not them."""
    language = detect_language(message)
    change = as_sentence(message)
    prompt = f"{_fit(current_prompt, change, style)} {change}".strip()
    first_request = next((t.content for t in history if t.role == "user" and t.content.strip()), message)
    summary = one_line(phrase("added", language, text=clean(message)), 200)
    return Draft(prompt, style.negative_prompt, one_line(first_request, TITLE_CHARS), language, summary)


def extend(style: ModelStyle, parent_prompt: str, what_next: str) -> Draft:
    """What happens next, then the parent's prompt as context so subjects and setting carry over."""
    language = detect_language(what_next)
    change = as_sentence(what_next)
    prompt = f"{change} {_fit(f'Continuing the previous shot: {clean(parent_prompt)}', change, style)}".strip()
    title = one_line(phrase("continued", language, text=clean(what_next)), TITLE_CHARS)
    return Draft(prompt, style.negative_prompt, title, language)
