"""The prompt director: writes, revises and continues video prompts with an LLM, offline when it cannot."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from typing import Any

import openai

from bot.director import offline, prompts
from bot.director.llm import Answer, InvalidReply, JSONChat, LLMFailure
from bot.director.look import Looker
from bot.director.offline import TITLE_CHARS, Draft
from bot.director.prompts import CharacterNote, DescribeReply, PromptReply, RefineReply
from bot.director.results import Description, Look, PromptResult, Refinement, Turn, Usage
from bot.director.safety import BlockList, Moderator
from bot.director.styles import ModelStyle, style_for
from bot.director.text import cap_words, latin_share, normalize_language, one_line
from bot.director.wording import Fallback, notice
from bot.metrics import BotMetrics
from bot.settings import BotSettings

log = logging.getLogger(__name__)

MIN_PROMPT_WORDS = 5  # a "prompt" shorter than this is a model misunderstanding the task
NEGATIVE_WORDS, NEGATIVE_CHARS = 80, 600
SUMMARY_CHARS = 200
DESCRIPTION_WORDS, DESCRIPTION_CHARS = 60, 400  # a character's description, kept whole in every prompt
MIN_DESCRIPTION_WORDS = 3
# A placeholder key for local servers (Ollama, llama.cpp…) that need none; the SDK insists on one and would
# otherwise read OPENAI_API_KEY from the environment behind the settings' back.
NO_KEY = "not-needed"


def build_client(settings: BotSettings) -> openai.AsyncOpenAI:
    """The one SDK client for the configured LLM server."""
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else NO_KEY
    return openai.AsyncOpenAI(
        base_url=settings.llm_base_url,
        api_key=key,
        timeout=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
    )


class Director:
    """Turns members' words into prompts for the active video model.

    Every method refuses (`Refused`) text the block list or moderation rejects; any LLM trouble (no server,
    errors left after the SDK's retries, timeouts, unusable replies after one repair) gives an offline
    result with `llm_written=False` and a `notice` for the member instead of an exception.
    """

    def __init__(
        self,
        settings: BotSettings,
        client: openai.AsyncOpenAI | None = None,
        *,
        video_model_family: str = "ltx",
        history_token_budget: int = 1500,
        max_output_tokens: int = 1024,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.metrics = metrics or BotMetrics()
        self._style: ModelStyle = style_for(video_model_family)
        self._owns_client = client is None and bool(settings.llm_base_url)
        if self._owns_client:
            client = build_client(settings)
        self._client = client
        self._blocklist = BlockList(settings.blocked_words)
        self._chat = (
            JSONChat(client, settings.llm_model, max_output_tokens=max_output_tokens, blocklist=self._blocklist)
            if client
            else None
        )
        self._moderator = Moderator(client) if client and settings.llm_moderation else None
        self._history_token_budget = history_token_budget
        self._looker = Looker(self._chat, settings.llm_vision, self._blocklist, settings.llm_model)

    @classmethod
    def from_settings(cls, settings: BotSettings, **options: object) -> Director:
        """A director with its own client built from `settings` (offline when no LLM URL is set)."""
        return cls(settings, **options)  # type: ignore[arg-type]

    @property
    def llm_configured(self) -> bool:
        return self._chat is not None

    @property
    def style(self) -> ModelStyle:
        return self._style

    @property
    def vision(self) -> str:
        """Whether finished clips are shown to the LLM: `sees`, `unknown` (not asked yet), `text_only` (it
        refused an image), `off` (LLM_VISION=off) or `no_llm`."""
        return self._looker.state

    @property
    def looks(self) -> bool:
        """Whether a finished clip is worth fetching for a look."""
        return self._looker.active

    async def look(self, image: bytes, mime: str, *, language: str = "en") -> Look | None:
        """The LLM's verdict and one-line description of a finished clip from its spritesheet (see
        `bot.director.look`); None when nobody looked."""
        return await self._looker.look(image, mime, language=language)

    def follow_model(self, family: str) -> None:
        """Write prompts in the style of the video model family the generator renders (`ltx` or `wan`)."""
        self._style = style_for(family)

    async def close(self) -> None:
        """Close the SDK client if this director built it (a client passed in belongs to the caller)."""
        if self._owns_client and self._client is not None:
            await self._client.close()

    # -- the three tasks -------------------------------------------------------------------------------------

    async def expand(
        self,
        request: str,
        *,
        style: str | None = None,
        aspect: str | None = None,
        seconds: float | None = None,
        image_description: str | None = None,
        characters: Sequence[CharacterNote] = (),
    ) -> PromptResult:
        """A detailed English prompt from a member's request, in any language; each of `characters` is shown as
        its description says, word for word."""
        await self._screen(request, style, image_description)
        descriptions = [c.description for c in characters]
        draft = offline.expand(
            self._style, request, video_style=style, image_description=image_description, characters=descriptions
        )
        if self._chat is None:
            return self._offline_result(draft, Fallback.NOT_CONFIGURED)
        messages = prompts.expand_messages(
            self._style,
            request,
            video_style=style,
            aspect=aspect,
            seconds=seconds,
            image_description=image_description,
            characters=characters,
        )
        try:
            answer = await self._ask(
                "expand", messages, prompts.EXPAND_SCHEMA, PromptReply, self._check, language=draft.language
            )
        except LLMFailure as failure:
            return self._failed("expand", draft, failure)
        result = self._llm_result(answer.reply, draft, request, answer.usage)
        # The description is what keeps the subject the same from clip to clip: an LLM that paraphrased it gets
        # it back word for word.
        prompt = offline.with_characters(result.prompt, descriptions, self._style)
        return PromptResult(**{**_fields(result), "prompt": prompt})

    async def refine(self, current_prompt: str, history: list[Turn], message: str) -> Refinement:
        """The full prompt revised by the member's new message, and a line saying what changed."""
        await self._screen(message)
        draft = offline.refine(self._style, current_prompt, history, message)
        if self._chat is None:
            return self._offline_refinement(draft, Fallback.NOT_CONFIGURED)
        messages = prompts.refine_messages(
            self._style, current_prompt, history, message, token_budget=self._history_token_budget
        )
        try:
            answer = await self._ask(
                "refine", messages, prompts.REFINE_SCHEMA, RefineReply, self._check, language=draft.language
            )
        except LLMFailure as failure:
            self._log_failure("refine", failure)
            return self._offline_refinement(draft, failure.reason)
        result = self._llm_result(answer.reply, draft, message, answer.usage)
        summary = one_line(answer.reply.summary, SUMMARY_CHARS) or draft.summary
        # The LLM's judgement of the change; a reply that did not give one gets the offline rule's.
        change = answer.reply.change or draft.change
        return Refinement(**_fields(result), summary=summary, change=change)

    async def extend(self, parent_prompt: str, what_next: str) -> PromptResult:
        """The prompt of the next segment, keeping the parent clip's subjects, setting and style."""
        await self._screen(what_next)
        draft = offline.extend(self._style, parent_prompt, what_next)
        if self._chat is None:
            return self._offline_result(draft, Fallback.NOT_CONFIGURED)
        messages = prompts.extend_messages(self._style, parent_prompt, what_next)
        try:
            answer = await self._ask(
                "extend", messages, prompts.EXPAND_SCHEMA, PromptReply, self._check, language=draft.language
            )
        except LLMFailure as failure:
            return self._failed("extend", draft, failure)
        return self._llm_result(answer.reply, draft, what_next, answer.usage)

    async def describe(self, name: str, image: bytes, mime: str, member_words: str | None) -> Description | None:
        """A character's description: written by the LLM from `image` (a reference frame) when it can see images,
        else the member's own words; None when neither is there (the member is asked for words)."""
        await self._screen(name, member_words)
        words = cap_words(member_words or "", DESCRIPTION_WORDS, DESCRIPTION_CHARS) or None
        if self._chat is None:
            return Description(words, by_director=False) if words else None
        url = f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
        messages = prompts.describe_messages(name, url, member_words)
        try:
            answer = await self._chat.ask(
                "describe", messages, prompts.DESCRIBE_SCHEMA, DescribeReply, self._check_description, language="en"
            )
        except LLMFailure as failure:
            # A server whose model cannot see images answers 400: the member's words it is.
            self._log_failure("describe", failure)
            return Description(words, by_director=False) if words else None
        text = cap_words(answer.reply.description, DESCRIPTION_WORDS, DESCRIPTION_CHARS)
        return Description(text, by_director=True)

    # -- steps -----------------------------------------------------------------------------------------------

    async def _ask(self, task: str, *args: Any, **kwargs: Any) -> Answer[Any]:
        """One LLM task through the chat, timed for the metrics (`ok`, or the failure's reason)."""
        assert self._chat is not None
        started = time.perf_counter()
        outcome = "ok"
        try:
            return await self._chat.ask(task, *args, **kwargs)
        except LLMFailure as failure:
            outcome = failure.reason.value
            raise
        finally:
            self.metrics.llm_seconds.labels(task, outcome).observe(time.perf_counter() - started)

    async def screen(self, *texts: str | None) -> None:
        """Refuse (`Refused`) member text that is used as it is, with no prompt written (a prompt typed as-is or
        edited by hand): it passes the same screen as every request."""
        await self._screen(*texts)

    async def _screen(self, *texts: str | None) -> None:
        """Block list first (free, local), then the moderation endpoint when enabled."""
        self._blocklist.check(*texts)
        if self._moderator is not None:
            await self._moderator.check([t for t in texts if t])

    def _check(self, reply: PromptReply) -> None:
        """Reject replies that are not a usable English prompt, so the one repair attempt can fix them."""
        words = len(reply.prompt.split())
        if words < MIN_PROMPT_WORDS:
            raise InvalidReply(f"prompt has {words} words; write a full description")
        if latin_share(reply.prompt) < 0.9:
            raise InvalidReply("prompt is not in English; write it in English")
        # Everything the member will see passes the same screen as their request: the title names the thread,
        # the summary is posted in it.
        blocked = self._blocklist.find(reply.prompt, reply.negative_prompt, reply.title, getattr(reply, "summary", ""))
        if blocked:
            raise InvalidReply("the reply contains words that are not allowed: " + ", ".join(blocked))

    def _check_description(self, reply: DescribeReply) -> None:
        words = len(reply.description.split())
        if words < MIN_DESCRIPTION_WORDS:
            raise InvalidReply(f"description has {words} words; describe the subject in a full sentence")
        if latin_share(reply.description) < 0.9:
            raise InvalidReply("description is not in English; write it in English")
        blocked = self._blocklist.find(reply.description)
        if blocked:
            raise InvalidReply("the reply contains words that are not allowed: " + ", ".join(blocked))

    def _llm_result(self, reply: PromptReply, draft: Draft, member_text: str, usage: Usage) -> PromptResult:
        """The reply, capped: prompt to the model's word limit, title and negative prompt to a short line."""
        negative = cap_words(reply.negative_prompt, NEGATIVE_WORDS, NEGATIVE_CHARS) or draft.negative_prompt
        return PromptResult(
            prompt=cap_words(reply.prompt, self._style.max_words, self._style.max_chars),
            negative_prompt=negative,
            title=one_line(reply.title, TITLE_CHARS) or draft.title,
            language=normalize_language(reply.language, member_text),
            llm_written=True,
            notice=None,
            usage=usage,
        )

    def _failed(self, task: str, draft: Draft, failure: LLMFailure) -> PromptResult:
        self._log_failure(task, failure)
        return self._offline_result(draft, failure.reason)

    @staticmethod
    def _log_failure(task: str, failure: LLMFailure) -> None:
        log.warning("LLM %s failed (%s); using the offline writer", task, failure)

    def _offline_result(self, draft: Draft, reason: Fallback) -> PromptResult:
        self.metrics.llm_fallbacks.labels(reason.value).inc()
        return PromptResult(
            prompt=draft.prompt,
            negative_prompt=draft.negative_prompt,
            title=draft.title,
            language=draft.language,
            llm_written=False,
            notice=notice(reason, draft.language),
            usage=None,
        )

    def _offline_refinement(self, draft: Draft, reason: Fallback) -> Refinement:
        return Refinement(**_fields(self._offline_result(draft, reason)), summary=draft.summary, change=draft.change)


def _fields(result: PromptResult) -> dict[str, object]:
    """A result's fields by name, to build the `Refinement` that extends it."""
    return {name: getattr(result, name) for name in PromptResult.__dataclass_fields__}


__all__ = ["Director", "build_client"]
