"""The deterministic writer used when no LLM answers: it keeps the member's words and their meaning.

It cannot translate, so a request in another language goes to the video model as written; English text gets
at most one generic sentence about camera and light, never new subjects or actions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.director.results import LOCAL, SUBJECT, Change, Turn
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
    change: Change = SUBJECT


# Words that change only the look of a clip (English and Korean), and words that change what it shows or does. A
# refinement with a look word and no subject word is local: an edit keeping the clip's motion; anything else
# (or nothing recognised) is rendered anew, as before edits existed.
_LOOK_WORDS = (
    r"light(?:s|ing|er)?|bright(?:er)?|dark(?:er)?|dim(?:mer)?|glow(?:ing)?|shadows?|sunny|cloudy|overcast|"
    r"night(?:time)?|day(?:time|light)?|morning|evening|dusk|dawn|sunset|sunrise|noon|midnight|golden hour|"
    r"rain(?:y|ing)?|snow(?:y|ing)?|fog(?:gy)?|mist(?:y)?|storm(?:y)?|winter|autumn|fall|spring|summer|weather|"
    r"colou?rs?|colou?rful|red|orange|yellow|green|blue|purple|pink|black|white|grey|gray|gold(?:en)?|silver|"
    r"warm(?:er)?|cool(?:er)?|cold(?:er)?|saturat\w*|pastel|neon|sepia|monochrome|vintage|retro|"
    r"style|anime|cartoon|watercolou?r|painting|painted|oil|sketch|pixel(?: art)?|claymation|noir|"
    r"cinematic|film|35mm|vhs|realistic|photorealistic|3d|ghibli|comic|detail(?:s|ed)?|hat|glasses|scarf"
)
_SUBJECT_WORDS = (
    r"instead|replace[sd]?|swap|"
    r"runs?|running|jumps?|jumping|walks?|walking|flies|flying|fly|dances?|dancing|falls? over|knocks?|"
    r"fights?|eats?|eating|drives?|driving|swims?|swimming|sits?|stands?|turns? around|"
    r"camera|zoom|pan|orbit|close-?up|wide shot|angle|add (?:a|an|two|three|another)|remove|without|"
    r"dog|cat|man|woman|child|person|people|robot|bird|horse|car"
)
_LOOK_KO = (
    "밤",
    "낮",
    "아침",
    "저녁",
    "노을",
    "새벽",
    "비 ",
    "비가",
    "눈이",
    "눈 ",
    "안개",
    "폭풍",
    "날씨",
    "색",
    "빨간",
    "파란",
    "노란",
    "초록",
    "보라",
    "분홍",
    "검은",
    "하얀",
    "밝게",
    "어둡게",
    "따뜻",
    "차갑",
    "조명",
    "빛",
    "스타일",
    "애니",
    "수채화",
    "흑백",
    "만화",
    "그림",
    "필름",
    "겨울",
    "가을",
    "봄",
    "여름",
)
_SUBJECT_KO = (
    "대신",
    "뛰",
    "달리",
    "날아",
    "점프",
    "춤",
    "걷",
    "넘어",
    "싸우",
    "먹",
    "카메라",
    "줌",
    "클로즈업",
    "강아지",
    "개",
    "고양이",
    "사람",
    "남자",
    "여자",
    "아이",
    "로봇",
    "새가",
    "말이",
    "자동차",
)
_LOOK = re.compile(rf"\b(?:{_LOOK_WORDS})\b", re.IGNORECASE)
_SUBJECT = re.compile(rf"\b(?:{_SUBJECT_WORDS})\b", re.IGNORECASE)


def judge_change(message: str) -> Change:
    """Whether a refinement only changes the clip's look (local: edit it, keeping its motion) or what it shows or
    does (subject: render anew), by the words it uses; unsure is `subject`, the render that always works."""
    text = f" {message.casefold()} "
    subject = bool(_SUBJECT.search(text)) or any(word in text for word in _SUBJECT_KO)
    look = bool(_LOOK.search(text)) or any(word in text for word in _LOOK_KO)
    return LOCAL if look and not subject else SUBJECT


def with_characters(prompt: str, descriptions: Sequence[str], style: ModelStyle) -> str:
    """`prompt` with each character's description in it, word for word: appended where missing (the prompt is
    trimmed to make room, never the descriptions)."""
    missing = [as_sentence(d) for d in descriptions if d.strip() and clean(d).casefold() not in prompt.casefold()]
    if not missing:
        return prompt
    tail = " ".join(missing)
    return f"{_fit(prompt, tail, style)} {tail}".strip()


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
    characters: Sequence[str] = (),
) -> Draft:
    """The request as a prompt: English lightly enriched, any other language as written; the characters'
    descriptions (`characters`) follow the request."""
    language = detect_language(request)
    parts = [as_sentence(request), *(as_sentence(d) for d in characters)]
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
    title = one_line(first_request, TITLE_CHARS)
    return Draft(prompt, style.negative_prompt, title, language, summary, judge_change(message))


def extend(style: ModelStyle, parent_prompt: str, what_next: str) -> Draft:
    """What happens next, then the parent's prompt as context so subjects and setting carry over."""
    language = detect_language(what_next)
    change = as_sentence(what_next)
    prompt = f"{change} {_fit(f'Continuing the previous shot: {clean(parent_prompt)}', change, style)}".strip()
    title = one_line(phrase("continued", language, text=clean(what_next)), TITLE_CHARS)
    return Draft(prompt, style.negative_prompt, title, language)
