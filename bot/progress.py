"""How a job's progress reads to a member: one line with queue position or a bar, percent and ETA."""

from __future__ import annotations

from collections.abc import Callable

from bot.i18n import text
from bot.store import GenerationRecord
from bot.videos import VideoState


def bar(percent: int, width: int = 12) -> str:
    """A text progress bar: `▰▰▰▱▱▱`."""
    filled = max(0, min(width, round(width * percent / 100)))
    return "▰" * filled + "▱" * (width - filled)


def eta_text(eta_seconds: float | None, locale: str | None) -> str:
    if eta_seconds is None or eta_seconds <= 0:
        return ""
    return text("status.eta", locale, seconds=max(1, round(eta_seconds)))


def progress_line(title: str, state: VideoState, locale: str | None, say: Callable[..., str] = text) -> str:
    """The status line for a job that is queued or rendering (`say`: how sentences are filled in where it is shown,
    `bot.cogs._common.discord_text` on Discord)."""
    eta = eta_text(state.eta_seconds, locale)
    if state.status == "queued":
        if state.queue_position is None:
            return say("status.starting", locale, title=title)
        return say("status.queued", locale, title=title, position=state.queue_position, eta=eta)
    percent = max(0, min(100, state.progress))
    return say("status.rendering", locale, title=title, bar=bar(percent), percent=percent, eta=eta)


def prompt_source(record: GenerationRecord, locale: str | None) -> str:
    """Who wrote the prompt shown to the member: the director's LLM, the member, or the offline expander."""
    if record.llm_written:
        return text("prompt.by_llm", locale)
    if record.kind == "edit" or record.params.get("enhance") is False:
        return text("prompt.as_typed", locale)
    return text("prompt.offline", locale)
