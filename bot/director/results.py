"""What the director hands back: plain frozen dataclasses the Discord layer and the store can keep."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "assistant"]
# What a refinement changes: only the look of the clip (light, time of day, weather, colour, style, a detail), so
# the clip itself can be edited keeping its motion; or its subject or action, so it is rendered anew.
Change = Literal["local", "subject"]
LOCAL: Change = "local"
SUBJECT: Change = "subject"


@dataclass(frozen=True)
class Turn:
    """One message of a thread's refinement dialogue: the member's (`user`) or the bot's (`assistant`)."""

    role: Role
    content: str


@dataclass(frozen=True)
class Usage:
    """What writing one prompt cost: tokens as the server counted them, wall time, HTTP requests made."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    requests: int  # chat-completions calls, the repair call and the SDK's retries included

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: Usage) -> Usage:
        """Both calls together (a reply and its repair)."""
        return Usage(
            model=self.model,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            latency_s=self.latency_s + other.latency_s,
            requests=self.requests + other.requests,
        )


@dataclass(frozen=True)
class PromptResult:
    """A prompt ready for the video model, and what the member should be told about it."""

    prompt: str  # English, in the style the active video model wants
    negative_prompt: str
    title: str  # short, in the member's language
    language: str  # BCP-47-ish code of the member's language: "en", "ko", …
    llm_written: bool
    notice: str | None  # why it was not LLM-written, in the member's language; None when it was
    usage: Usage | None  # None when no LLM answered


@dataclass(frozen=True)
class Refinement(PromptResult):
    """A revised prompt, one line in the member's language saying what changed, and whether the change is local
    (`change`, judged by the LLM when `llm_written`, else by the offline rule)."""

    summary: str
    change: Change = SUBJECT


@dataclass(frozen=True)
class Description:
    """A character's description in words, for prompts (English), and who wrote it."""

    text: str
    by_director: bool  # False: the member's own words


@dataclass(frozen=True)
class Look:
    """What the LLM saw in a finished clip: whether it may be posted, and one line saying what it shows."""

    verdict: Literal["fine", "age_restricted", "withhold"]
    description: str  # in the member's language; the attachment's alt text


class Refused(Exception):
    """The request was not written because of the block list, moderation or the LLM's own refusal."""

    def __init__(
        self,
        reason: str,
        *,
        source: Literal["blocklist", "moderation", "llm"] = "blocklist",
        categories: Sequence[str] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason  # for the member, in their language where the director knows it
        self.source = source
        self.categories = tuple(categories)  # moderation categories, or the blocked words found
