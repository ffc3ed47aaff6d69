"""A look at a finished clip before it is posted: an LLM that accepts images (OpenAI-compatible `image_url`
content) is shown the clip's spritesheet and answers with a verdict (fine / needs an age-restricted channel /
withhold) and one line describing it, the attachment's alt text.

Whether the LLM sees images is found out once (`LLM_VISION=auto`): a server that refuses the image is remembered
as text-only for the rest of the process, said once in the log and to admins (`/config`), and clips are then
posted under the prompt checks alone (block list, moderation)."""

from __future__ import annotations

import base64
import logging
from typing import Literal

import openai
from pydantic import BaseModel, ConfigDict

from bot.director.llm import InvalidReply, JSONChat, LLMFailure, Message, Schema
from bot.director.results import Look, Refused
from bot.director.safety import BlockList
from bot.director.text import one_line

log = logging.getLogger(__name__)

DESCRIPTION_CHARS = 200  # one line; Discord's alt text allows 1024
# How servers without vision answer an image: OpenAI and vLLM with 400, some with 415/422, llama.cpp's server with
# a 500 that says so.
_REFUSES_IMAGES = (400, 415, 422)
_IMAGE_WORDS = ("image", "vision", "multimodal", "multi-modal")

LOOK_SCHEMA = Schema(
    "clip_look",
    {
        "verdict": "One of: fine, age_restricted, withhold.",
        "description": "One line saying what the clip shows, for people who cannot see it.",
    },
)

_SYSTEM = (
    "You check short AI-generated video clips before a Discord bot posts them in a server. You see one image: a "
    "grid of frames taken evenly from the clip, in reading order. Judge only what is visible in it.\n"
    '"verdict": "fine" when anyone may see it; "age_restricted" when it shows nudity, sexual content, graphic '
    "violence or gore that only adults should see (Discord allows that only in age-restricted channels); "
    '"withhold" when it must not be posted anywhere: sexual content involving minors, real people sexualised, or '
    "hateful imagery.\n"
    '"description": one short sentence (at most 25 words) describing what the clip shows, as alt text for people '
    "who cannot see it; no judgement, no mention of frames or the grid, written in {language}.\n"
    'Reply with only a JSON object with exactly the keys "verdict" and "description", each a string.'
)


class LookReply(BaseModel):
    """The LLM's answer about a clip."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    verdict: Literal["fine", "age_restricted", "withhold"]
    description: str


def look_messages(image: bytes, mime: str, language: str) -> list[Message]:
    """The system rules and the spritesheet as an `image_url` part (a data URL: no server fetches anything)."""
    url = f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
    return [
        {"role": "system", "content": _SYSTEM.format(language=_language_name(language))},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "The clip's frames:"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        },
    ]


def _language_name(code: str) -> str:
    return {"ko": "Korean", "en": "English", "ja": "Japanese"}.get(code.split("-")[0], f"the language `{code}`")


def refuses_images(failure: LLMFailure) -> bool:
    """Whether the LLM failed because it does not accept images (not because it was slow or away)."""
    error = failure.__cause__
    if not isinstance(error, openai.APIStatusError):
        return False
    if error.status_code in _REFUSES_IMAGES:
        return True
    said = str(error.message).lower()
    return error.status_code >= 500 and any(word in said for word in _IMAGE_WORDS)


class Looker:
    """Shows finished clips to the LLM, when it sees images (`mode`: LLM_VISION)."""

    def __init__(self, chat: JSONChat | None, mode: str, blocklist: BlockList, model: str) -> None:
        self._chat = chat
        self._mode = mode
        self._blocklist = blocklist
        self._model = model
        self.sees: bool | None = None  # None: not known yet (auto, nothing asked)

    @property
    def state(self) -> str:
        """For admins: `off` (LLM_VISION=off), `no_llm`, `text_only` (found out), `sees` or `unknown`."""
        if self._chat is None:
            return "no_llm"
        if self._mode == "off":
            return "off"
        if self.sees is False:
            return "text_only"
        return "sees" if self.sees else "unknown"

    @property
    def active(self) -> bool:
        """Whether a finished clip is worth showing to the LLM at all."""
        return self._chat is not None and self._mode != "off" and self.sees is not False

    async def look(self, image: bytes, mime: str, *, language: str = "en") -> Look | None:
        """The LLM's verdict and description of the clip whose spritesheet is `image`; None when nobody looked
        (no vision, or the LLM failed after the usual retries and one repair: the prompt checks stand)."""
        if not self.active:
            return None
        assert self._chat is not None
        messages = look_messages(image, mime, language)
        try:
            answer = await self._chat.ask("look", messages, LOOK_SCHEMA, LookReply, self._check, language=language)
        except Refused as refused:
            # A model that will not even describe the clip has seen something it would not post.
            log.warning("the LLM declined to describe a finished clip (%s); it is withheld", refused.reason)
            self.sees = True
            return Look("withhold", "")
        except LLMFailure as failure:
            if self._mode == "auto" and self.sees is None and refuses_images(failure):
                self.sees = False
                log.warning(
                    "the LLM %s does not accept images (%s): finished clips are posted without a look, under the "
                    "prompt checks alone. Set LLM_VISION=off to stop asking, or use a model that sees images.",
                    self._model,
                    failure.detail,
                )
                return None
            log.warning("LLM look failed (%s); the clip is posted under the prompt checks alone", failure)
            return None
        self.sees = True
        reply = answer.reply
        return Look(reply.verdict, one_line(reply.description, DESCRIPTION_CHARS))

    def _check(self, reply: LookReply) -> None:
        if not reply.description:
            raise InvalidReply("description is empty; describe what the clip shows")
        blocked = self._blocklist.find(reply.description)
        if blocked:
            raise InvalidReply("the description contains words that are not allowed: " + ", ".join(blocked))
