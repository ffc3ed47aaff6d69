"""Who may ask for a video, where, and how often: allow-lists, the per-member queue cap, cooldown and daily
quota. Pure rules over the store; Discord-free, so the console and the bot share them."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from bot.settings import BotSettings
from bot.store import Store


@dataclass(frozen=True)
class Requester:
    """The member asking, and where they ask from, as plain data."""

    user_id: int
    name: str = ""
    locale: str | None = None
    guild_id: int | None = None
    channel_id: int | None = None
    parent_channel_id: int | None = None  # the channel a thread belongs to
    role_ids: tuple[int, ...] = ()
    server_admin: bool = False  # Discord's Administrator or Manage Server permission

    @property
    def mention(self) -> str:
        return f"<@{self.user_id}>" if self.user_id else (self.name or "you")


class Refusal(Exception):
    """Why a request is refused: an i18n key under `refusal.` and the values its sentence needs."""

    def __init__(self, code: str, values: dict[str, object] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.values: dict[str, object] = dict(values or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.values}"


class Limits:
    """Applies the configured limits; `admit` is atomic per process so two quick requests can't both slip in."""

    def __init__(self, settings: BotSettings, store: Store, clock: Callable[[], datetime] | None = None) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = asyncio.Lock()

    def is_admin(self, requester: Requester) -> bool:
        """Admins are named in settings (users or roles), or hold Discord's admin permission on the server."""
        if requester.server_admin or requester.user_id in self._settings.admin_user_ids:
            return True
        return bool(set(requester.role_ids) & set(self._settings.admin_role_ids))

    def may_manage(self, requester: Requester, owner_id: int) -> bool:
        """Only the owner of a video or an admin may cancel or delete it."""
        return requester.user_id == owner_id or self.is_admin(requester)

    def check_place(self, requester: Requester) -> None:
        """Raise a Refusal when the channel or the member's roles are not allowed (DMs pass the channel test)."""
        if self.is_admin(requester):
            return
        allowed_channels = set(self._settings.allowed_channel_ids)
        if allowed_channels and requester.guild_id is not None:
            here = {requester.channel_id, requester.parent_channel_id} - {None}
            if not here & allowed_channels:
                channels = ", ".join(f"<#{c}>" for c in self._settings.allowed_channel_ids)
                raise Refusal("channel", {"channels": channels})
        allowed_roles = set(self._settings.allowed_role_ids)
        if allowed_roles and requester.guild_id is not None and not set(requester.role_ids) & allowed_roles:
            roles = ", ".join(f"<@&{r}>" for r in self._settings.allowed_role_ids)
            raise Refusal("role", {"roles": roles})

    async def admit(self, requester: Requester, record: Callable[[], object]) -> object:
        """Check every limit and, if all pass, run `record` (which stores the pending generation) before any
        other request is checked. Raises Refusal with the reason otherwise."""
        self.check_place(requester)
        async with self._lock:
            now = self._clock()
            if not self.is_admin(requester):
                await self._check_usage(requester.user_id, now)
            await self._store.record_request_time(requester.user_id, now)
            result = record()
            if asyncio.iscoroutine(result):
                result = await result
            return result

    async def _check_usage(self, user_id: int, now: datetime) -> None:
        settings = self._settings
        open_count = await self._store.count_open(user_id)
        if open_count >= settings.max_queued_per_user:
            raise Refusal("queue_full", {"count": open_count, "limit": settings.max_queued_per_user})
        member = await self._store.member(user_id)
        if member.last_request_at is not None and settings.cooldown_seconds > 0:
            waited = (now - member.last_request_at).total_seconds()
            if waited < settings.cooldown_seconds:
                raise Refusal("cooldown", {"seconds": math.ceil(settings.cooldown_seconds - waited)})
        if settings.daily_quota > 0:
            midnight = datetime.combine(now.date(), time(0), tzinfo=UTC)
            used = await self._store.count_charged_since(user_id, midnight)
            if used >= settings.daily_quota:
                hours = math.ceil((midnight + timedelta(days=1) - now).total_seconds() / 3600)
                raise Refusal("quota", {"limit": settings.daily_quota, "hours": hours})
