"""What the director says to members, in their language (English and Korean; English otherwise)."""

from __future__ import annotations

from enum import Enum


class Fallback(Enum):
    """Why a prompt was written offline instead of by the LLM."""

    NOT_CONFIGURED = "not_configured"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"  # connection failure or an HTTP error left after the SDK's retries
    INVALID = "invalid"  # the LLM answered, but not with a usable prompt, even after one repair


_NOTICES = {
    "en": {
        Fallback.NOT_CONFIGURED: "No prompt-writing AI is set up, so your words were used as written.",
        Fallback.TIMEOUT: "The prompt-writing AI took too long to answer, so your words were used as written.",
        Fallback.UNAVAILABLE: "The prompt-writing AI could not be reached, so your words were used as written.",
        Fallback.INVALID: "The prompt-writing AI gave an unusable answer, so your words were used as written.",
    },
    "ko": {
        Fallback.NOT_CONFIGURED: "프롬프트 작성 AI가 설정되어 있지 않아 입력하신 문장을 그대로 사용했어요.",
        Fallback.TIMEOUT: "프롬프트 작성 AI의 응답이 너무 늦어 입력하신 문장을 그대로 사용했어요.",
        Fallback.UNAVAILABLE: "프롬프트 작성 AI에 연결하지 못해 입력하신 문장을 그대로 사용했어요.",
        Fallback.INVALID: "프롬프트 작성 AI의 답변을 쓸 수 없어 입력하신 문장을 그대로 사용했어요.",
    },
}

_PHRASES = {
    "en": {
        "blocked": "Your request contains a word this server does not allow: {words}.",
        "moderated": "Your request was flagged by the content filter ({categories}).",
        "llm_refused": "The prompt-writing AI declined this request: {reason}",
        "added": "Added to the prompt: {text}",
        "continued": "Continues with: {text}",
    },
    "ko": {
        "blocked": "이 서버에서 허용하지 않는 단어가 요청에 들어 있어요: {words}.",
        "moderated": "요청이 콘텐츠 필터에 걸렸어요 ({categories}).",
        "llm_refused": "프롬프트 작성 AI가 이 요청을 거절했어요: {reason}",
        "added": "프롬프트에 추가했어요: {text}",
        "continued": "이어지는 장면: {text}",
    },
}


def _table(language: str) -> str:
    base = language.split("-")[0]
    return base if base in _PHRASES else "en"


def notice(reason: Fallback, language: str) -> str:
    """The line telling the member their prompt was not written by the LLM, and why."""
    return _NOTICES[_table(language)][reason]


def phrase(key: str, language: str, **values: str) -> str:
    """A fixed sentence in the member's language with `values` filled in."""
    return _PHRASES[_table(language)][key].format(**values)
