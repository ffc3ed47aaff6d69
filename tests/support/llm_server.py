"""A scriptable OpenAI-compatible LLM server for tests, driven by the real `openai` SDK.

Start it with the `llm_server` fixture (import it into a conftest or test module), queue the replies a test
expects, point an `openai.AsyncOpenAI` (or `BotSettings.llm_base_url`) at `server.base_url`, then assert on
`server.chat_requests`:

    async def test_something(llm_server):
        llm_server.add(Reply.json({"prompt": "..."}), Reply.error(429), Reply.text("not json"))
        client = llm_server.client()            # timeout 0.5 s, 2 retries, answers fast
        ...
        assert llm_server.chat_requests[0].messages[-1]["content"] == "..."

Replies: `Reply.json(obj)`, `Reply.text(s)`, `Reply.malformed()`, `Reply.error(status)`, `Reply.refuse(reason)`;
any of them takes `delay=` (seconds, for timeouts), `headers=`, `prompt_tokens=`/`completion_tokens=`, `message=`
(keys merged into the answer's message: a list `content`, `tool_calls`, `reasoning_content`) and `usage=` (the
`usage` object as sent). `Reply.raw(body, content_type)` answers 200 with exactly that body (a web page, an event
stream, a bare `{}`), as a careless server or a wrong base URL does.
`server.moderate(Moderation(("violence",)), Moderation(status=404))` scripts `/v1/moderations` verdicts (none
queued: nothing is flagged; `Moderation(body=...)` answers 200 with that raw body).
`server.rejected_params = {"max_completion_tokens"}` makes it answer any request carrying one of those keys with a
400 (as servers that forbid unknown keys do), without consuming a reply.
`server.json_schema = False` makes it reject JSON-schema `response_format` with a 400, like a server without
structured outputs. Messages may carry OpenAI's content parts (`text` and `image_url`); `RecordedRequest.images`
decodes the images a request showed, and `server.vision = False` makes it a text-only
model that answers any image with a 400 (as OpenAI and vLLM do), again without consuming a reply.

Endpoints: `POST /v1/chat/completions` (non-streaming), `POST /v1/moderations`, `GET /v1/models`.
Each chat request takes the next queued `Reply`; with none queued it answers 500 (without inviting a retry)
and counts it in `unscripted`, so a test that made more calls than it scripted fails loudly.
Error replies carry `retry-after-ms: 1` by default: the SDK honours a server-given delay, so its retries
take a millisecond instead of its 0.5 s+ exponential backoff.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
from aiohttp import web

__all__ = ["LLMServer", "Moderation", "RecordedRequest", "Reply", "llm_server"]


@dataclass
class Reply:
    """One scripted answer to one chat-completions request."""

    content: str | None = None
    status: int = 200
    error_message: str = ""
    refusal: str | None = None
    delay: float = 0.0  # seconds to wait before answering (a slow model)
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    prompt_tokens: int | None = None  # estimated from the request when None
    completion_tokens: int | None = None  # estimated from the content when None
    message: dict[str, Any] = field(default_factory=dict)  # merged into the answer's message
    usage: dict[str, Any] | None = None  # the `usage` object as sent; None: counted as above
    body: str | None = None  # a raw 200 body instead of a completion
    content_type: str = "application/json"  # of `body`

    @classmethod
    def json(cls, payload: Mapping[str, Any], **options: Any) -> Reply:
        """A reply whose message content is `payload` serialised as JSON."""
        return cls(content=json.dumps(payload, ensure_ascii=False), **options)

    @classmethod
    def text(cls, content: str, **options: Any) -> Reply:
        """A reply whose message content is free text (for example JSON wrapped in prose or a code fence)."""
        return cls(content=content, **options)

    @classmethod
    def malformed(cls, **options: Any) -> Reply:
        """JSON cut off mid-string, as a model that hit its token limit writes it."""
        return cls(content='{"prompt": "A cat walks slowly through', finish_reason="length", **options)

    @classmethod
    def raw(cls, body: str, content_type: str = "application/json", **options: Any) -> Reply:
        """A 200 whose body is exactly `body`, not a chat completion (a web page, an event stream, garbage)."""
        return cls(body=body, content_type=content_type, **options)

    @classmethod
    def error(cls, status: int, message: str = "", *, retry_after_ms: int | None = 1, **options: Any) -> Reply:
        """An HTTP error in OpenAI's error shape; `retry_after_ms=None` leaves the SDK to its own backoff."""
        headers = dict(options.pop("headers", {}))
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        return cls(status=status, error_message=message or f"scripted HTTP {status}", headers=headers, **options)

    @classmethod
    def refuse(cls, reason: str = "I can't help with that.", **options: Any) -> Reply:
        """A structured-outputs refusal: `message.refusal` set, no content."""
        return cls(content=None, refusal=reason, **options)


@dataclass(frozen=True)
class Moderation:
    """One scripted moderation verdict (or an HTTP error when `status` is not 200)."""

    categories: tuple[str, ...] = ()
    status: int = 200
    body: str | None = None  # a raw 200 body instead of verdicts
    content_type: str = "application/json"

    @property
    def flagged(self) -> bool:
        return bool(self.categories)


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received: path, headers and JSON body."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def response_format(self) -> Mapping[str, Any] | None:
        return self.body.get("response_format")

    @property
    def model(self) -> str | None:
        return self.body.get("model")

    def text(self) -> str:
        """All message texts joined (the text parts of multi-part contents), for assertions that something was (or
        was not) sent."""
        return "\n".join(_text_of(m.get("content", "")) for m in self.messages)

    @property
    def images(self) -> list[bytes]:
        """The images the request's messages showed (`image_url` parts with base64 data URLs), decoded."""
        return [
            base64.b64decode(url.split(",", 1)[1]) if url.startswith("data:") else url.encode()
            for url in self.image_urls()
        ]

    def image_urls(self) -> list[str]:
        """The `image_url` URLs the messages carry (data URLs for uploaded frames), in order."""
        return [
            str((part.get("image_url") or {}).get("url", ""))
            for m in self.messages
            for part in _parts(m.get("content"))
            if part.get("type") == "image_url"
        ]


def _parts(content: Any) -> list[dict[str, Any]]:
    return [p for p in content if isinstance(p, dict)] if isinstance(content, list) else []


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in _parts(content) if p.get("type") == "text")
    return str(content)


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class LLMServer:
    """An aiohttp app on 127.0.0.1 (a free port) that answers like an OpenAI-compatible LLM server.

    `json_schema=False` makes it behave like a server without structured outputs: a request with
    `response_format: {"type": "json_schema"}` gets a 400 without consuming a queued reply.
    """

    def __init__(self, *, json_schema: bool = True, vision: bool = True, model: str = "test-model") -> None:
        self.json_schema = json_schema
        self.vision = vision
        self.model = model
        self.rejected_params: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.unscripted = 0
        self._replies: deque[Reply] = deque()
        self._moderations: deque[Moderation] = deque()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # -- scripting -------------------------------------------------------------------------------------------

    def add(self, *replies: Reply) -> None:
        """Queue replies for the next chat-completions requests, in order."""
        self._replies.extend(replies)

    def moderate(self, *verdicts: Moderation) -> None:
        """Queue moderation verdicts; with none queued, every input passes."""
        self._moderations.extend(verdicts)

    @property
    def pending(self) -> int:
        """Replies queued but not yet served."""
        return len(self._replies)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def moderation_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/moderations")]

    def client(self, *, timeout: float = 0.5, max_retries: int = 2, api_key: str = "test-key") -> openai.AsyncOpenAI:
        """An SDK client pointed at this server; the caller closes it."""
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/moderations", self._moderation)
        app.router.add_get("/v1/models", self._models)
        # A short shutdown timeout: slow handlers wake on `_closing` anyway, nothing should linger.
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- handlers --------------------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> RecordedRequest:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = {}
        recorded = RecordedRequest(request.method, request.path, dict(request.headers), body)
        self.requests.append(recorded)
        return recorded

    async def _sleep(self, seconds: float) -> None:
        """Wait, but stop early when the server closes so teardown never waits for a slow reply."""
        if seconds > 0:
            try:
                await asyncio.wait_for(self._closing.wait(), seconds)
            except TimeoutError:
                pass

    async def _chat(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        response_format = recorded.response_format or {}
        if response_format.get("type") == "json_schema" and not self.json_schema:
            return _error(400, "response_format of type json_schema is not supported", param="response_format")
        if recorded.images and not self.vision:
            # What OpenAI answers a text-only model shown an image (vLLM's and others' are alike).
            return _error(400, "Invalid content type. image_url is only supported by certain models.", param="messages")
        rejected = sorted(self.rejected_params & set(recorded.body))
        if rejected:
            return _error(400, f"Unrecognized request argument supplied: {rejected[0]}", param=rejected[0])
        if recorded.body.get("stream"):
            return _error(400, "llm_server does not script streaming replies", param="stream")
        if not self._replies:
            self.unscripted += 1
            return _error(500, "llm_server: no reply scripted for this request", headers={"x-should-retry": "false"})
        reply = self._replies.popleft()
        await self._sleep(reply.delay)
        if reply.status != 200:
            return _error(reply.status, reply.error_message, headers=reply.headers)
        if reply.body is not None:
            return _raw(reply.body, reply.content_type, reply.headers)
        return web.json_response(_completion(reply, recorded, self.model), headers=reply.headers)

    async def _moderation(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        verdict = self._moderations.popleft() if self._moderations else Moderation()
        if verdict.status != 200:
            return _error(verdict.status, f"scripted HTTP {verdict.status}", headers={"retry-after-ms": "1"})
        if verdict.body is not None:
            return _raw(verdict.body, verdict.content_type, {})
        inputs = recorded.body.get("input", "")
        count = len(inputs) if isinstance(inputs, list) else 1
        return web.json_response(
            {
                "id": f"modr-{uuid.uuid4().hex[:12]}",
                "model": "omni-moderation-latest",
                "results": [_moderation_result(verdict) for _ in range(count)],
            }
        )

    async def _models(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "test"}]}
        )


def _error(
    status: int, message: str, *, param: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    kind = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_exceeded"}
    body = {"error": {"message": message, "type": kind.get(status, "server_error"), "param": param, "code": None}}
    return web.json_response(body, status=status, headers=dict(headers or {}))


def _raw(body: str, content_type: str, headers: Mapping[str, str]) -> web.Response:
    return web.Response(body=body.encode(), headers={**headers, "Content-Type": content_type})


def _completion(reply: Reply, request: RecordedRequest, model: str) -> dict[str, Any]:
    prompt_tokens = reply.prompt_tokens if reply.prompt_tokens is not None else _estimate_tokens(request.text())
    completion_tokens = (
        reply.completion_tokens if reply.completion_tokens is not None else _estimate_tokens(reply.content or "")
    )
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    message = {"role": "assistant", "content": reply.content, "refusal": reply.refusal, **reply.message}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model or model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage if reply.usage is None else reply.usage,
    }


_CATEGORIES = ("harassment", "hate", "illicit", "self-harm", "sexual", "sexual/minors", "violence", "violence/graphic")


def _moderation_result(verdict: Moderation) -> dict[str, Any]:
    names = set(_CATEGORIES) | set(verdict.categories)
    return {
        "flagged": verdict.flagged,
        "categories": {name: name in verdict.categories for name in names},
        "category_scores": {name: 0.99 if name in verdict.categories else 0.001 for name in names},
        "category_applied_input_types": {name: ["text"] for name in names},
    }


@pytest.fixture
async def llm_server() -> AsyncIterator[LLMServer]:
    """A started `LLMServer`, closed after the test."""
    server = LLMServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()
