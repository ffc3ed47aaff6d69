"""One JSON answer from any OpenAI-compatible chat server: structured output where the server supports it,
plain JSON (validated, repaired once) where it does not."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import openai
import pydantic
from openai.types.chat import ChatCompletion

from bot.director.results import Refused, Usage
from bot.director.safety import BlockList
from bot.director.text import one_line
from bot.director.wording import Fallback, phrase

log = logging.getLogger(__name__)

R = TypeVar("R", bound=pydantic.BaseModel)
Message = dict[str, Any]  # content is a string, or a list of parts (text and image_url) for a model that sees

_THINKING = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)  # reasoning models' preamble
# Servers whose chat template opens the reasoning block in the prompt send only its end.
_THINKING_END = re.compile(r"^.*</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)
REPLY_CHARS = 50_000  # far beyond any usable answer; bounds the work a runaway or hostile reply can cause
JSON_STARTS = 32  # how many "{" a reply wrapped in prose is searched from
REFUSAL_CHARS = 300  # the LLM's refusal, shown to the member in one line


class InvalidReply(Exception):
    """The server answered, but not with the JSON object asked for."""


class LLMFailure(Exception):
    """No usable answer: the caller falls back to the offline writer."""

    def __init__(self, reason: Fallback, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Schema:
    """The JSON object a task wants back: a name for `response_format`, each string key's description, and the
    values a key is limited to (`choices`)."""

    name: str
    fields: Mapping[str, str]
    choices: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def _property(self, key: str, text: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "string", "description": text}
        if key in self.choices:
            spec["enum"] = list(self.choices[key])
        return spec

    def json_schema(self) -> dict[str, Any]:
        # Strict structured outputs need every key required and no others allowed.
        return {
            "type": "object",
            "properties": {key: self._property(key, text) for key, text in self.fields.items()},
            "required": list(self.fields),
            "additionalProperties": False,
        }

    def response_format(self) -> dict[str, Any]:
        return {"type": "json_schema", "json_schema": {"name": self.name, "strict": True, "schema": self.json_schema()}}


@dataclass(frozen=True)
class Answer(Generic[R]):
    """A validated reply and what it cost."""

    reply: R
    usage: Usage
    structured: bool  # whether the server was asked for JSON-schema output


class JSONChat:
    """Asks one chat model for one JSON object per call, through a configured `openai.AsyncOpenAI`.

    It starts with JSON-schema structured output; when the server rejects that (HTTP 400/422) and a plain
    request then works, it stays with plain JSON for the rest of its life, so a server without structured
    outputs costs one extra request once, not on every prompt.
    """

    def __init__(
        self, client: openai.AsyncOpenAI, model: str, *, max_output_tokens: int, blocklist: BlockList | None = None
    ) -> None:
        self._client = client
        self._model = model
        self._max_output_tokens = max_output_tokens
        self._blocklist = blocklist or BlockList(())
        self.structured = True
        # max_completion_tokens, not the deprecated max_tokens: OpenAI's reasoning models reject the old name. Most
        # other servers ignore a key they do not know, but some refuse it (older vLLM, older Azure API versions):
        # those get the old name from then on.
        self._limit_key = "max_completion_tokens"

    async def ask(
        self,
        task: str,
        messages: list[Message],
        schema: Schema,
        reply_type: type[R],
        check: Callable[[R], None],
        *,
        language: str,
    ) -> Answer[R]:
        """A reply that parsed and passed `check`, repairing once; raises `LLMFailure` or `Refused`."""
        try:
            return await self._ask(task, messages, schema, reply_type, check, language)
        except openai.APITimeoutError as error:
            raise LLMFailure(Fallback.TIMEOUT, _describe(error)) from error
        except openai.OpenAIError as error:
            raise LLMFailure(Fallback.UNAVAILABLE, _describe(error)) from error

    async def _ask(
        self,
        task: str,
        messages: list[Message],
        schema: Schema,
        reply_type: type[R],
        check: Callable[[R], None],
        language: str,
    ) -> Answer[R]:
        text, usage = await self._complete(messages, schema, language)
        try:
            reply = parse_reply(text, reply_type, check)
        except InvalidReply as problem:
            log.warning("LLM %s: unusable reply (%s); asking once for a repair", task, problem)
            repair = [
                *messages,
                {"role": "assistant", "content": text[:4000] or "(empty reply)"},
                {"role": "user", "content": repair_request(problem, schema)},
            ]
            text, more = await self._complete(repair, schema, language)
            usage = usage.plus(more)
            try:
                reply = parse_reply(text, reply_type, check)
            except InvalidReply as again:
                _log_usage(task, usage, self.structured, outcome="unusable after repair")
                raise LLMFailure(Fallback.INVALID, str(again)) from again
        _log_usage(task, usage, self.structured, outcome="ok")
        return Answer(reply, usage, self.structured)

    async def _complete(self, messages: list[Message], schema: Schema, language: str) -> tuple[str, Usage]:
        if not self.structured:
            return await self._create(messages, None, language)
        try:
            return await self._create(messages, schema.response_format(), language)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
            log.info("LLM server rejected a JSON-schema request (%s); trying plain JSON", _describe(error))
            answer = await self._create(messages, None, language)
            # Only now is it clear the schema, not the request, was the problem.
            self.structured = False
            return answer

    async def _create(
        self, messages: list[Message], response_format: dict[str, Any] | None, language: str
    ) -> tuple[str, Usage]:
        started = time.perf_counter()
        extra: dict[str, Any] = {"response_format": response_format} if response_format else {}
        create = self._client.chat.completions.with_raw_response.create
        request: dict[str, Any] = {"model": self._model, "messages": messages, **extra}
        try:
            raw = await create(**request, **{self._limit_key: self._max_output_tokens})
        except (openai.BadRequestError, openai.UnprocessableEntityError) as error:
            if self._limit_key == "max_tokens" or "max_completion_tokens" not in f"{error.message} {error.body}":
                raise
            log.info("LLM server does not take max_completion_tokens (%s); using max_tokens", _describe(error))
            raw = await create(**request, max_tokens=self._max_output_tokens)
            # Only now is it clear the name, not the request, was the problem.
            self._limit_key = "max_tokens"
        try:
            completion = raw.parse()
        except (ValueError, RecursionError) as error:  # a JSON content type over a body that is not JSON
            detail = f"the server's answer was not JSON ({type(error).__name__})"
            raise LLMFailure(Fallback.UNAVAILABLE, detail) from error
        if not isinstance(completion, ChatCompletion):
            # The SDK hands back the text of a 200 that is not JSON: a web page (a wrong base URL), an event stream.
            kind = raw.headers.get("content-type", "no content type")
            raise LLMFailure(Fallback.UNAVAILABLE, f"the server's answer was not a chat completion ({kind})")
        counted = completion.usage
        usage = Usage(
            model=completion.model or self._model,
            prompt_tokens=_count(getattr(counted, "prompt_tokens", 0)),
            completion_tokens=_count(getattr(counted, "completion_tokens", 0)),
            latency_s=time.perf_counter() - started,
            requests=raw.retries_taken + 1,
        )
        if not completion.choices or not isinstance(completion.choices, list):
            return "", usage
        choice = completion.choices[0]
        message = getattr(choice, "message", None)
        refusal = getattr(message, "refusal", None)
        if refusal or getattr(choice, "finish_reason", None) == "content_filter":
            reason = one_line(refusal if isinstance(refusal, str) else "", REFUSAL_CHARS) or "content filter"
            log.info("LLM refused the request: %s", reason)
            if self._blocklist.find(reason):  # the member is shown the reason: it passes the same screen
                reason = "content filter"
            raise Refused(phrase("llm_refused", language, reason=reason), source="llm")
        return _message_text(message), usage


def extract_json(text: str) -> dict[str, Any]:
    """The JSON object in a reply: bare, in a code fence, or wrapped in prose; a reasoning preamble ignored."""
    text = _THINKING_END.sub("", _THINKING.sub("", text[:REPLY_CHARS])).strip()
    if not text:
        raise InvalidReply("the reply was empty")
    for candidate in [text, *_FENCE.findall(text)]:
        try:
            value = json.loads(candidate)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    # Prose around the object, possibly with braces of its own: the first object that decodes, text after it ignored.
    decoder = json.JSONDecoder()
    for start in [match.start() for match in re.finditer(r"\{", text)][:JSON_STARTS]:
        try:
            value, _ = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    raise InvalidReply("the reply was not a JSON object")


def parse_reply(text: str, reply_type: type[R], check: Callable[[R], None]) -> R:
    """The reply as `reply_type`, after `check` (which raises `InvalidReply` for content it cannot use)."""
    payload = extract_json(text)
    try:
        reply = reply_type.model_validate(payload)
    except pydantic.ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in error.errors())
        raise InvalidReply(problems) from error
    check(reply)
    return reply


def repair_request(problem: InvalidReply, schema: Schema) -> str:
    """The follow-up message asking the model to fix its own reply."""
    keys = ", ".join(f'"{key}"' for key in schema.fields)
    return (
        f"Your reply could not be used: {problem}. Answer again with only one JSON object with exactly the keys "
        f"{keys}, each a string, following the rules above. No other text."
    )


def _log_usage(task: str, usage: Usage, structured: bool, *, outcome: str) -> None:
    log.info(
        "LLM %s %s: model=%s output=%s tokens=%d+%d latency=%.2fs requests=%d",
        task,
        outcome,
        usage.model,
        "json_schema" if structured else "plain_json",
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.latency_s,
        usage.requests,
    )


def _count(value: object) -> int:
    """A token count as the server gave it; some give none, or null."""
    return value if isinstance(value, int) else 0


def _message_text(message: object) -> str:
    """The answer in a chat message: its content, the text parts of a content list (some servers split reasoning
    and answer into parts), or a tool call's arguments (servers that force JSON through a tool)."""
    content = getattr(message, "content", None)
    if isinstance(content, str) and content.strip():
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") in ("text", "output_text")]
        joined = "".join(p for p in parts if isinstance(p, str))
        if joined.strip():
            return joined
    for call in getattr(message, "tool_calls", None) or []:
        arguments = getattr(getattr(call, "function", None), "arguments", None)
        if isinstance(arguments, str) and arguments.strip():
            return arguments
    return ""


def _describe(error: openai.OpenAIError) -> str:
    status = getattr(error, "status_code", None)
    return f"{type(error).__name__} (HTTP {status})" if status else type(error).__name__
