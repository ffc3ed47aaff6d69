"""A small fake Discord at discord.py's two HTTP seams, so tests drive the real library end to end.

- REST: the bot's aiohttp session is replaced (at login) by one that answers like Discord's API, so discord.py's
  own request handling runs: rate-limit buckets, its retries of 429 and 500/502/504, its errors. Every attempt
  is recorded in `attempts` (method, path, JSON or multipart payload, uploaded files, the status answered); the
  ones Discord accepted (2xx) also in `calls`. `fail(...)` scripts faults for matching requests: a real-shaped
  429 (`rate_limited`), 5xx (`server_error`), a dropped connection (`disconnected`), each optionally *after*
  the request took effect (the answer lost on the way back). Messages sent with `enforce_nonce` are
  deduplicated by nonce, as Discord does.
- Interaction responses and follow-ups: `AsyncWebhookAdapter.request` is replaced and recorded the same way.
- Gateway events are fed to `client._connection.parsers[...]` with payloads shaped like the Discord API docs'
  (GUILD_CREATE, INTERACTION_CREATE, MESSAGE_CREATE, THREAD_CREATE).
- Attachments a member uploads with a command (`upload(...)`) are served from a fake CDN, as
  `Attachment.read()` fetches them.

Creating a thread over REST also delivers THREAD_CREATE, as Discord does.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import http
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import discord
from discord.http import Route
from discord.webhook.async_ import AsyncWebhookAdapter
from multidict import CIMultiDict

APP_ID = 900000000000000001
BOT_ID = 900000000000000002
GUILD_ID = 910000000000000001
CHANNEL_ID = 910000000000000002
DM_CHANNEL_ID = 910000000000000003
EPHEMERAL = 64
SIZE_LIMIT = 10 * 1024 * 1024


@dataclass
class Call:
    """One HTTP request the bot made (one attempt: discord.py's retries and the bot's are separate calls)."""

    method: str
    path: str
    json: Any = None
    files: dict[str, bytes] = field(default_factory=dict)
    params: dict[str, Any] | None = None
    status: int = 200  # what the fake answered (0: the connection dropped)
    created: bool = False  # a POST that made a new message (not a nonce replay)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def payload(self) -> dict[str, Any]:
        return self.json if isinstance(self.json, dict) else {}

    @property
    def content(self) -> str:
        return self.payload.get("content") or (self.payload.get("data") or {}).get("content") or ""

    @property
    def custom_ids(self) -> list[str]:
        """Every button custom_id in the payload's components."""
        payload = self.payload
        rows = payload.get("components") or (payload.get("data") or {}).get("components") or []
        return [item.get("custom_id", "") for row in rows for item in row.get("components", [])]


def user_payload(user_id: int, name: str = "mina", *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
    }


def message_payload(
    message_id: int, channel_id: int, author: dict[str, Any], content: str = "", **fields: Any
) -> dict[str, Any]:
    """A MESSAGE object as Discord sends it; `fields` add or replace keys (attachments, components, type…)."""
    return {
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "content": content,
        "timestamp": datetime.now(UTC).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
        "components": [],
        "flags": 0,
        **fields,
    }


def member_payload(user_id: int, name: str = "mina", roles: tuple[int, ...] = (), permissions: int = 0) -> dict:
    return {
        "user": user_payload(user_id, name),
        "roles": [str(r) for r in roles],
        "joined_at": "2026-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "nick": None,
        "permissions": str(permissions),
    }


def text_channel_payload(channel_id: int = CHANNEL_ID, guild_id: int = GUILD_ID, name: str = "videos") -> dict:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(guild_id),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "rate_limit_per_user": 0,
        "topic": None,
        "last_message_id": None,
        "flags": 0,
    }


def guild_payload(guild_id: int = GUILD_ID, channels: list[dict] | None = None, roles: list[int] = ()) -> dict:
    everyone = {
        "id": str(guild_id),
        "name": "@everyone",
        "permissions": str(discord.Permissions(view_channel=True).value | discord.Permissions.text().value),
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }
    extra_roles = [dict(everyone, id=str(r), name=f"role-{r}", position=1) for r in roles]
    return {
        "id": str(guild_id),
        "name": "Hanul test server",
        "icon": None,
        "owner_id": "1",
        "roles": [everyone, *extra_roles],
        "emojis": [],
        "stickers": [],
        "features": [],
        "channels": channels if channels is not None else [text_channel_payload()],
        "threads": [],
        "members": [member_payload(BOT_ID, "Hanul")],
        "voice_states": [],
        "presences": [],
        "member_count": 2,
        "large": False,
        "unavailable": False,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "system_channel_flags": 0,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "afk_timeout": 300,
        "premium_progress_bar_enabled": False,
        "joined_at": "2026-01-01T00:00:00+00:00",
    }


@dataclass(frozen=True)
class Fault:
    """How Discord fails one request: a status with a body and headers, or a dropped connection; `after`: the
    request took effect first and only the answer was lost."""

    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    after: bool = False
    disconnect: bool = False


def rate_limited(retry_after: float = 0.05, *, is_global: bool = False, bucket: str = "41f9cd5d28af77da") -> Fault:
    """Discord's 429, shaped like the real one: JSON body with `retry_after` and `global`, the rate-limit
    headers, and `Via` (a 429 without it is Cloudflare's ban, which discord.py does not retry)."""
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global, "code": 0}
    headers = {
        "Content-Type": "application/json",
        "Retry-After": str(max(1, round(retry_after))),
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": bucket,
        "X-RateLimit-Scope": "global" if is_global else "user",
        "Via": "1.1 google",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    return Fault(429, json.dumps(body), headers)


def server_error(status: int = 500, *, after: bool = False) -> Fault:
    """A 5xx as Discord's edge sends them: JSON for 500, Cloudflare's HTML for 502, Envoy's text for 503."""
    if status == 502:
        return Fault(502, "<html><head><title>502 Bad Gateway</title></head></html>", {"Content-Type": "text/html"})
    if status == 503:
        text = "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        return Fault(503, text, {"Content-Type": "text/plain"}, after=after)
    body = json.dumps({"message": f"{status}: {http.HTTPStatus(status).phrase}", "code": 0})
    return Fault(status, body, {"Content-Type": "application/json"}, after=after)


def disconnected(*, after: bool = False) -> Fault:
    """The connection drops before an answer arrives."""
    return Fault(0, after=after, disconnect=True)


class _DiscordError(Exception):
    """An API error the fake answers with (unknown message, invalid form body…)."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


# Discord's length limits on what a bot sends, counted in code points (its API is Python: `len(str)`).
CONTENT_LIMIT = 2000
THREAD_NAME_LIMIT = 100


def _checked_form(payload: Any, *, thread: bool = False) -> None:
    """Refuse a body Discord would refuse, as it does: 400, code 50035 "Invalid Form Body", with `errors` naming
    the field."""
    body = payload if isinstance(payload, dict) else {}
    data = body.get("data") if isinstance(body.get("data"), dict) else body  # an interaction callback's message
    errors: dict[str, Any] = {}
    content = data.get("content")
    if isinstance(content, str) and len(content) > CONTENT_LIMIT:
        errors["content"] = {
            "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {CONTENT_LIMIT} or fewer in length."}]
        }
    if thread and not 1 <= len(str(body.get("name") or "")) <= THREAD_NAME_LIMIT:
        errors["name"] = {
            "_errors": [
                {"code": "BASE_TYPE_BAD_LENGTH", "message": f"Must be between 1 and {THREAD_NAME_LIMIT} in length."}
            ]
        }
    if errors:
        raise _DiscordError(400, 50035, "Invalid Form Body", errors)


class _Response:
    """Just enough of `aiohttp.ClientResponse` for discord.py's `HTTPClient.request`."""

    def __init__(self, status: int, body: str | bytes, headers: dict[str, str]) -> None:
        self.status = status
        self.reason = http.HTTPStatus(status).phrase
        self.headers = CIMultiDict(headers)
        self._body = body

    async def text(self, encoding: str = "utf-8") -> str:
        return self._body if isinstance(self._body, str) else self._body.decode(encoding)

    async def read(self) -> bytes:
        return self._body if isinstance(self._body, bytes) else self._body.encode()


class _Exchange:
    def __init__(self, answer: Any) -> None:
        self._answer = answer

    async def __aenter__(self) -> _Response:
        return await self._answer

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Session:
    """The aiohttp session discord.py talks to, answered by the fake."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.closed = False

    def request(self, method: str, url: str, **kwargs: Any) -> _Exchange:
        return _Exchange(self.fake._exchange(method, url, kwargs))

    def get(self, url: str, **kwargs: Any) -> _Exchange:
        """A download from Discord's CDN (`Attachment.read`)."""
        return _Exchange(self.fake._download(url))

    async def close(self) -> None:
        self.closed = True


_REQUEST: contextvars.ContextVar[Call] = contextvars.ContextVar("fake_discord_request")


class FakeDiscord:
    """Records what the bot sends and answers like Discord would."""

    def __init__(self) -> None:
        self.calls: list[Call] = []  # accepted requests (2xx)
        self.attempts: list[Call] = []  # every request, failed ones included
        self.messages: dict[int, dict[str, Any]] = {}
        self.threads: dict[int, dict[str, Any]] = {}
        self.tokens: set[str] = set()  # bot tokens seen in Authorization headers
        self.cdn: dict[str, bytes] = {}  # files members attached, by URL
        self.downloads: list[str] = []  # CDN URLs the bot fetched
        self._ids = itertools.count(int(time.time() * 1000 - 1420070400000) << 22)
        self._faults: list[tuple[str, str, Callable[[Call], bool], Fault]] = []
        self._nonces: dict[str, int] = {}
        self.deleted: set[int] = set()  # messages members or moderators deleted (`delete_message`)
        self.bot: discord.Client | None = None

    # --- wiring ----------------------------------------------------------------------------------

    def install(self, bot: discord.Client, monkeypatch: Any) -> None:
        self.bot = bot
        client = bot.http
        original = client.request
        fake = self

        async def request(route: Any, *, files: Any = None, form: Any = None, **kwargs: Any) -> Any:
            # What the bot asked for, as data; discord.py then builds and sends it (and retries it) itself.
            _REQUEST.set(fake._described(route, files, form, kwargs))
            return await original(route, files=files, form=form, **kwargs)

        async def static_login(token: str) -> Any:
            client._HTTPClient__session = _Session(fake)  # type: ignore[attr-defined]
            client._global_over = asyncio.Event()
            client._global_over.set()
            client.token = token
            return await client.request(Route("GET", "/users/@me"))

        client.request = request  # type: ignore[method-assign]
        client.static_login = static_login  # type: ignore[method-assign]

        async def webhook(adapter: AsyncWebhookAdapter, route: Any, session: Any, **kwargs: Any) -> Any:
            return await fake._webhook(route, **kwargs)

        monkeypatch.setattr(AsyncWebhookAdapter, "request", webhook)

    def fail(
        self, method: str, path_part: str, *faults: Fault, predicate: Callable[[Call], bool] = lambda c: True
    ) -> None:
        """The next matching requests fail, one fault each, in order."""
        self._faults.extend((method, path_part, predicate, fault) for fault in faults)

    @property
    def faults_left(self) -> int:
        return len(self._faults)

    def forget_nonces(self) -> None:
        """Discord checks nonces for a few minutes only: after that a repeated nonce makes a new message."""
        self._nonces.clear()

    def snowflake(self) -> int:
        return next(self._ids)

    def feed(self, event: str, payload: dict[str, Any]) -> None:
        """Deliver one gateway event to the bot."""
        assert self.bot is not None
        self.bot._connection.parsers[event](payload)

    # --- what the bot sent -----------------------------------------------------------------------

    def find(self, method: str, path_part: str, predicate: Callable[[Call], bool] = lambda c: True) -> list[Call]:
        return [c for c in self.calls if c.method == method and path_part in c.path and predicate(c)]

    async def wait_for(
        self, method: str, path_part: str, predicate: Callable[[Call], bool] = lambda c: True, *, within: float = 30
    ) -> Call:
        """The first matching call, waiting for it while the bot works."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            found = self.find(method, path_part, predicate)
            if found:
                return found[0]
            if asyncio.get_running_loop().time() > deadline:
                seen = "\n".join(f"  {c.method} {c.path} {c.content[:80]!r}" for c in self.calls)
                raise AssertionError(f"no {method} {path_part} within {within}s; calls:\n{seen}")
            await asyncio.sleep(0.02)

    def clips(self) -> list[Call]:
        """Uploads that made a new message with an MP4 (what members see, however many attempts it took; an
        upload whose answer was lost counts too, since Discord made the message)."""
        made = [c for c in self.attempts if c.method == "POST" and "/messages" in c.path and c.created]
        return [c for c in made if any(n.endswith(".mp4") for n in c.files)]

    def clip_messages(self) -> list[dict[str, Any]]:
        """Messages that exist now with an MP4 attached."""
        return [m for m in self.messages.values() if any(a["filename"].endswith(".mp4") for a in m["attachments"])]

    def upload(self, filename: str, data: bytes, content_type: str) -> dict[str, Any]:
        """A file a member attaches to a command: its ATTACHMENT object (for `resolved`), served by the CDN."""
        return self.attachment(filename, data, content_type, ephemeral=True)

    # --- REST ------------------------------------------------------------------------------------

    @staticmethod
    def _described(route: Any, files: Any, form: Any, kwargs: dict[str, Any]) -> Call:
        path = route.url.split("/api/v10", 1)[1]
        payload = kwargs.get("json")
        uploaded: dict[str, bytes] = {}
        if form:
            for part in form:
                if part["name"] == "payload_json":
                    payload = json.loads(part["value"])
        for attachment in files or []:
            start = attachment.fp.tell()
            attachment.fp.seek(0)
            uploaded[attachment.filename] = attachment.fp.read()
            attachment.fp.seek(start)
        return Call(route.method, path, payload, uploaded, kwargs.get("params"))

    def _take_fault(self, call: Call) -> Fault | None:
        for index, (method, path_part, predicate, fault) in enumerate(self._faults):
            if method == call.method and path_part in call.path and predicate(call):
                del self._faults[index]
                return fault
        return None

    async def _exchange(self, method: str, url: str, kwargs: dict[str, Any]) -> _Response:
        """One HTTP round trip from discord.py's `HTTPClient.request`."""
        asked = _REQUEST.get()
        path = url.split("/api/v10", 1)[1]
        assert (method, path) == (asked.method, asked.path), f"{method} {path} is not {asked.method} {asked.path}"
        headers = kwargs.get("headers") or {}
        self.tokens.add(str(headers.get("Authorization", "")).removeprefix("Bot "))
        call = dataclasses.replace(asked, headers=dict(headers), params=kwargs.get("params") or asked.params)
        self.attempts.append(call)
        await asyncio.sleep(0)  # a network round trip yields to the loop
        fault = self._take_fault(call)
        if fault is not None and not fault.after:
            return self._failed(call, fault)
        try:
            data = self._answer(call)
        except _DiscordError as error:
            call.status = error.status
            return _Response(error.status, json.dumps(error.body), {"Content-Type": "application/json"})
        if fault is not None:
            return self._failed(call, fault)
        self.calls.append(call)
        if data is None:
            call.status = 204
            return _Response(204, "", {})
        return _Response(200, json.dumps(data), {"Content-Type": "application/json"})

    @staticmethod
    def _failed(call: Call, fault: Fault) -> _Response:
        call.status = fault.status
        if fault.disconnect:
            raise aiohttp.ServerDisconnectedError()
        return _Response(fault.status, fault.body, fault.headers)

    def _answer(self, call: Call) -> Any:
        method, path, parts = call.method, call.path, call.path.strip("/").split("/")
        if (method, path) == ("GET", "/users/@me"):
            return user_payload(BOT_ID, "Hanul", bot=True)
        if (method, path) == ("GET", "/oauth2/applications/@me"):
            return {
                "id": str(APP_ID),
                "name": "Hanul",
                "icon": None,
                "description": "",
                "rpc_origins": [],
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": user_payload(1, "owner"),
                "summary": "",
                "verify_key": "0" * 64,
                "team": None,
                "flags": 0,
            }
        if method == "PUT" and path.endswith("/commands"):
            # Discord answers each command with its id, version, and an empty description for menus.
            return [
                {"description": "", **c, "id": str(self.snowflake()), "application_id": str(APP_ID), "version": "1"}
                for c in call.json
            ]
        if parts[0] == "channels" and len(parts) >= 3 and parts[2] == "messages":
            channel_id = int(parts[1])
            if method in ("POST", "PATCH"):
                _checked_form(call.json, thread=parts[-1] == "threads")
            if method == "POST" and len(parts) == 3:
                return self._store_message(channel_id, call)
            if method == "GET" and len(parts) == 3:
                return self._history(channel_id, call.params or {})
            message_id = int(parts[3])
            if method in ("PATCH", "DELETE") and message_id not in self.messages:
                raise _DiscordError(404, 10008, "Unknown Message")
            if method == "PATCH":
                message = self.messages[message_id]
                body = call.json or {}
                message.update({k: v for k, v in body.items() if k in ("content", "components")})
                if "attachments" in body:  # the attachments kept (by id), then the files uploaded with the edit
                    kept = {str(attachment.get("id")) for attachment in body["attachments"]}
                    message["attachments"] = [a for a in message["attachments"] if a["id"] in kept] + [
                        self._attachment(channel_id, name, data) for name, data in call.files.items()
                    ]
                message["edited_timestamp"] = datetime.now(UTC).isoformat()
                return message
            if method == "DELETE":
                self.messages.pop(message_id, None)
                return None
            if method == "POST" and parts[-1] == "threads":
                return self._create_thread(channel_id, message_id, call.json or {})
        raise AssertionError(f"the fake Discord does not know {method} {path}")

    def _guild_of(self, channel_id: int) -> int | None:
        if channel_id in self.threads:
            return int(self.threads[channel_id]["guild_id"])
        assert self.bot is not None
        channel = self.bot.get_channel(channel_id)
        guild = getattr(channel, "guild", None)
        return guild.id if guild else None

    def _history(self, channel_id: int, params: dict[str, Any]) -> list[dict[str, Any]]:
        """GET /channels/{id}/messages: newest first, `limit` of them, older than `before` when given."""
        before = int(params.get("before") or 1 << 64)
        found = [m for i, m in self.messages.items() if m["channel_id"] == str(channel_id) and i < before]
        found.sort(key=lambda m: int(m["id"]), reverse=True)
        return found[: int(params.get("limit") or 50)]

    def _store_message(self, channel_id: int, call: Call) -> dict[str, Any]:
        payload = call.json or {}
        reference = payload.get("message_reference")
        if reference and int(reference["message_id"]) in self.deleted and reference.get("fail_if_not_exists", True):
            # A reply to a message that is gone: refused unless the bot asked for a plain message then.
            error = {"code": "REPLIES_UNKNOWN_MESSAGE", "message": "Unknown message"}
            raise _DiscordError(400, 50035, "Invalid Form Body", {"message_reference": {"_errors": [error]}})
        if reference and int(reference["message_id"]) in self.deleted:
            reference = None  # posted as a plain message
        nonce = payload.get("nonce")
        if nonce and payload.get("enforce_nonce") and self._nonces.get(str(nonce)) in self.messages:
            return self.messages[self._nonces[str(nonce)]]  # the message this nonce made already
        call.created = True
        message_id = self.snowflake()
        if nonce:
            self._nonces[str(nonce)] = message_id
        message = message_payload(
            message_id,
            channel_id,
            user_payload(BOT_ID, "Hanul", bot=True),
            payload.get("content") or "",
            attachments=[self._attachment(channel_id, name, data) for name, data in call.files.items()],
            type=19 if reference else 0,
            components=payload.get("components") or [],
            flags=payload.get("flags") or 0,
        )
        if nonce:
            message["nonce"] = str(nonce)
        guild_id = self._guild_of(channel_id)
        if guild_id is not None:
            message["guild_id"] = str(guild_id)
        if reference:
            message["message_reference"] = {
                "message_id": str(reference["message_id"]),
                "channel_id": str(channel_id),
                "type": 0,
            }
        self.messages[message_id] = message
        return message

    def _attachment(self, channel_id: int, name: str, data: bytes) -> dict[str, Any]:
        """An ATTACHMENT object for an uploaded file, as Discord describes it."""
        types = {".mp4": "video/mp4", ".webp": "image/webp"}
        return {
            "id": str(self.snowflake()),
            "filename": name,
            "size": len(data),
            "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{name}",
            "proxy_url": f"https://media.discordapp.net/attachments/{channel_id}/{name}",
            "content_type": next(
                (t for suffix, t in types.items() if name.endswith(suffix)), "application/octet-stream"
            ),
        }

    def _create_thread(self, channel_id: int, message_id: int, body: dict[str, Any]) -> dict[str, Any]:
        guild_id = self._guild_of(channel_id)
        thread = {
            "id": str(message_id),  # a thread made from a message takes the message's id
            "type": 11,
            "guild_id": str(guild_id),
            "parent_id": str(channel_id),
            "owner_id": str(BOT_ID),
            "name": body.get("name", ""),
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration", 1440),
                "archive_timestamp": datetime.now(UTC).isoformat(),
                "locked": False,
            },
        }
        self.threads[message_id] = thread
        self.feed("THREAD_CREATE", dict(thread, newly_created=True))
        return thread

    async def _download(self, url: str) -> _Response:
        self.downloads.append(url)
        await asyncio.sleep(0)
        if url not in self.cdn:
            return _Response(404, "<Error><Code>NoSuchKey</Code></Error>", {"Content-Type": "application/xml"})
        return _Response(200, self.cdn[url], {"Content-Type": "application/octet-stream"})

    # --- interaction responses and follow-ups ----------------------------------------------------

    async def _webhook(
        self, route: Any, *, payload: Any = None, multipart: Any = None, files: Any = None, params: Any = None, **_: Any
    ) -> Any:
        path = route.url.split("/api/v10", 1)[1]
        if multipart:
            for part in multipart:
                if part["name"] == "payload_json":
                    payload = json.loads(part["value"])
        call = Call(route.method, path, payload, {}, params)
        try:
            _checked_form(payload)
        except _DiscordError as error:
            call.status = error.status
            self.attempts.append(call)
            raise discord.HTTPException(_Response(error.status, "", {}), error.body) from None
        self.calls.append(call)
        if path.endswith("/callback"):
            interaction_id = path.split("/")[2]
            flags = ((payload or {}).get("data") or {}).get("flags") or 0
            return {
                "interaction": {
                    "id": interaction_id,
                    "type": 2,
                    "response_message_loading": payload["type"] == 5,
                    "response_message_ephemeral": bool(flags & EPHEMERAL),
                },
                "resource": {"type": payload["type"]},
            }
        # A follow-up (POST) or an edit of the original response (PATCH): answer with the message.
        return message_payload(
            self.snowflake(),
            CHANNEL_ID,
            user_payload(BOT_ID, "Hanul", bot=True),
            (payload or {}).get("content") or "",
            components=(payload or {}).get("components") or [],
            flags=(payload or {}).get("flags") or 0,
        )

    # --- gateway payloads a member's actions produce ---------------------------------------------

    def delete_message(self, message_id: int, channel_id: int) -> None:
        """A member (or a moderator) deletes a message: it is gone, and the bot gets MESSAGE_DELETE."""
        self.messages.pop(message_id, None)
        self.deleted.add(message_id)
        event = {"id": str(message_id), "channel_id": str(channel_id)}
        guild_id = self._guild_of(channel_id)
        if guild_id is not None:
            event["guild_id"] = str(guild_id)
        self.feed("MESSAGE_DELETE", event)

    def _interact(
        self,
        kind: int,
        data: dict[str, Any],
        *,
        user_id: int,
        channel_id: int | None,
        locale: str = "en-US",
        dm: bool = False,
        roles: tuple[int, ...] = (),
        permissions: int = 0,
        message: dict | None = None,
        size_limit: int = SIZE_LIMIT,
        guild_id: int = GUILD_ID,
        app_permissions: int | None = None,
    ) -> dict[str, Any]:
        """Send an INTERACTION_CREATE of `kind` (2 command, 3 component, 5 modal) from this member (in `guild_id`,
        unless `dm`); returns it. `app_permissions`: the bot's own permissions in the channel (default: all)."""
        interaction_id = self.snowflake()
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(APP_ID),
            "type": kind,
            "data": data,
            "token": f"token-{interaction_id}",
            "version": 1,
            "locale": locale,
            "app_permissions": str(discord.Permissions.all().value if app_permissions is None else app_permissions),
            "entitlements": [],
            "attachment_size_limit": size_limit,
        }
        if dm:
            payload["channel_id"] = str(DM_CHANNEL_ID)
            payload["channel"] = {"id": str(DM_CHANNEL_ID), "type": 1, "recipients": [user_payload(user_id)]}
            payload["user"] = user_payload(user_id)
            payload["context"] = 1
            payload["authorizing_integration_owners"] = {"0": str(GUILD_ID)}
        else:
            channel_id = channel_id or CHANNEL_ID
            thread = self.threads.get(channel_id)
            payload["guild_id"] = str(guild_id)
            payload["guild_locale"] = "en-US"
            payload["channel_id"] = str(channel_id)
            payload["channel"] = thread or text_channel_payload(channel_id, guild_id)
            payload["member"] = member_payload(user_id, roles=roles, permissions=permissions)
            payload["context"] = 0
            payload["authorizing_integration_owners"] = {"0": str(guild_id)}
        if message is not None:
            payload["message"] = message
        self.feed("INTERACTION_CREATE", payload)
        return payload

    def slash(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int = 1001,
        locale: str = "en-US",
        channel_id: int | None = None,
        dm: bool = False,
        roles: tuple[int, ...] = (),
        permissions: int = 0,
        size_limit: int = SIZE_LIMIT,
        resolved: dict[str, Any] | None = None,
        types: dict[str, int] | None = None,
        guild_id: int = GUILD_ID,
        subcommand: str | None = None,
        app_permissions: int | None = None,
    ) -> dict[str, Any]:
        """Type a slash command (`"group sub"`, or `subcommand=`, for a subcommand such as `/config limits`); returns
        the INTERACTION_CREATE payload it sent.
        An option whose value is an ATTACHMENT object (`upload(...)`) is sent as Discord sends an attachment."""
        if subcommand is not None:
            name = f"{name} {subcommand}"
        data = self._command_data(name, options, types)
        attachments = {v["id"]: v for v in (options or {}).values() if isinstance(v, dict) and "filename" in v}
        if attachments:
            resolved = {**(resolved or {}), "attachments": attachments}
        if not dm:
            data["guild_id"] = str(guild_id)
        if resolved:
            data["resolved"] = resolved
        return self._interact(
            2,
            data,
            user_id=user_id,
            locale=locale,
            channel_id=channel_id,
            dm=dm,
            roles=roles,
            permissions=permissions,
            size_limit=size_limit,
            guild_id=guild_id,
            app_permissions=app_permissions,
        )

    def _command_data(
        self,
        name: str,
        options: dict[str, Any] | None,
        types: dict[str, int] | None,
        focused: str | None = None,
    ) -> dict[str, Any]:
        kinds = {bool: 5, int: 4, float: 10, str: 3}
        listed = []
        for key, value in (options or {}).items():
            if isinstance(value, dict) and "filename" in value:  # an attachment: its id, resolved below
                listed.append({"name": key, "type": 11, "value": value["id"]})
                continue
            option = {"name": key, "type": (types or {}).get(key) or kinds[type(value)], "value": value}
            if key == focused:
                option["focused"] = True
            listed.append(option)
        command, _, sub = name.partition(" ")
        if sub:
            listed = [{"name": sub, "type": 1, "options": listed}]
        return {"id": str(self.snowflake()), "name": command, "type": 1, "options": listed}

    def autocomplete(
        self, name: str, options: dict[str, Any], focused: str, *, user_id: int = 1001, dm: bool = False, **who: Any
    ) -> dict[str, Any]:
        """Type into a command's option (`focused`) that offers choices; the bot answers the callback with type 8."""
        data = self._command_data(name, options, None, focused)
        if not dm:
            data["guild_id"] = str(who.get("guild_id", GUILD_ID))
        return self._interact(
            4,
            data,
            user_id=user_id,
            channel_id=who.get("channel_id"),
            dm=dm,
            **{k: v for k, v in who.items() if k in ("locale", "guild_id")},
        )

    async def choices(self, interaction: dict[str, Any]) -> list[dict[str, Any]]:
        """The autocomplete choices the bot answered `interaction` with (waiting for the answer)."""
        answer = await self.wait_for(
            "POST", f"/interactions/{interaction['id']}/", lambda c: c.path.endswith("/callback")
        )
        assert answer.json["type"] == 8  # APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
        return answer.json["data"]["choices"]

    def message_command(self, name: str, message_id: int, **who: Any) -> dict[str, Any]:
        """Right-click a message → Apps → `name`."""
        message = self.messages[message_id]
        data = {
            "id": str(self.snowflake()),
            "name": name,
            "type": 3,
            "target_id": str(message_id),
            "resolved": {"messages": {str(message_id): message}},
        }
        if not who.get("dm"):
            data["guild_id"] = str(GUILD_ID)
        return self._interact(
            2,
            data,
            user_id=who.get("user_id", 1001),
            locale=who.get("locale", "en-US"),
            channel_id=int(message["channel_id"]),
            dm=who.get("dm", False),
        )

    def old_bot_message(self, channel_id: int, custom_ids: list[str]) -> int:
        """A message the bot posted long ago (another database, a deleted row) with these buttons on it."""
        message_id = self.snowflake()
        rows = [{"type": 1, "components": [{"type": 2, "style": 2, "label": "…", "custom_id": c}]} for c in custom_ids]
        self.messages[message_id] = message_payload(
            message_id,
            channel_id,
            user_payload(BOT_ID, "Hanul", bot=True),
            "an old clip",
            guild_id=str(self._guild_of(channel_id) or GUILD_ID),
            components=rows,
        )
        return message_id

    def click(
        self, message_id: int, custom_id: str, *, user_id: int = 1001, locale: str = "en-US", permissions: int = 0
    ) -> dict[str, Any]:
        """Click a button on a message the bot sent."""
        message = self.messages[message_id]
        return self._interact(
            3,
            {"custom_id": custom_id, "component_type": 2},
            user_id=user_id,
            locale=locale,
            channel_id=int(message["channel_id"]),
            dm="guild_id" not in message,
            permissions=permissions,
            message=message,
            guild_id=int(message.get("guild_id") or GUILD_ID),
        )

    def submit_modal(
        self, custom_id: str, values: dict[str, str], *, channel_id: int, user_id: int = 1001, dm: bool = False
    ) -> dict[str, Any]:
        """Fill in and submit a modal the bot opened."""
        rows = [{"type": 1, "components": [{"type": 4, "custom_id": k, "value": v}]} for k, v in values.items()]
        return self._interact(
            5, {"custom_id": custom_id, "components": rows}, user_id=user_id, channel_id=channel_id, dm=dm
        )

    def attachment(
        self, filename: str, data: bytes, content_type: str | None, *, ephemeral: bool = False
    ) -> dict[str, Any]:
        """A file a member attaches (`ephemeral`: to a command), as Discord describes it; its bytes are served from
        the fake CDN."""
        attachment_id = self.snowflake()
        folder = f"ephemeral-attachments/{APP_ID}" if ephemeral else f"attachments/{CHANNEL_ID}"
        url = f"https://cdn.discordapp.com/{folder}/{attachment_id}/{filename}"
        self.cdn[url] = data
        payload: dict[str, Any] = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
        }
        if content_type is not None:
            payload["content_type"] = content_type
        if ephemeral:
            payload["ephemeral"] = True
        return payload

    def say(
        self,
        channel_id: int,
        content: str,
        *,
        user_id: int = 1001,
        reply_to: int | None = None,
        dm: bool = False,
        attachments: list[dict[str, Any]] = (),  # from `attachment(...)`
    ) -> dict[str, Any]:
        """A member writes a message (optionally a reply, optionally with files)."""
        message = message_payload(
            self.snowflake(),
            channel_id,
            user_payload(user_id),
            content,
            type=19 if reply_to else 0,
            attachments=list(attachments),
        )
        if not dm:
            message["guild_id"] = str(GUILD_ID)
            message["member"] = {k: v for k, v in member_payload(user_id).items() if k != "user"}
        if reply_to:
            message["message_reference"] = {"message_id": str(reply_to), "channel_id": str(channel_id), "type": 0}
            if reply_to in self.messages:
                message["referenced_message"] = self.messages[reply_to]
        self.feed("MESSAGE_CREATE", message)
        return message
