"""The prompt director: turns a member's few words (any language) into the detailed English prompt a video
model wants, revises it in conversation, and writes continuations, through any OpenAI-compatible LLM."""

from bot.director.prompts import CharacterNote
from bot.director.results import LOCAL, SUBJECT, Description, Look, PromptResult, Refinement, Refused, Turn, Usage
from bot.director.service import Director, build_client

__all__ = [
    "LOCAL",
    "SUBJECT",
    "CharacterNote",
    "Description",
    "Director",
    "Look",
    "PromptResult",
    "Refinement",
    "Refused",
    "Turn",
    "Usage",
    "build_client",
]
