"""Who may ask for a video, where, and how often: allow-lists, the per-member queue cap, cooldown and daily
quota, as the server asked from has them (its /config over the operator's defaults). Pure rules over the store;
Discord-free, so the console and the bot share them."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from bot.guild_config import GuildConfig, GuildConfigs
from bot.i18n import Quoted, text
from bot.settings import BotSettings
from bot.store import GenerationRecord, Store


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
    # Discord's Administrator or Manage Server permission in `guild_id`: rights over that guild's videos only.
    server_admin: bool = False
    operator: bool = False  # the person running Hanul at its own terminal (the console): an admin everywhere

    @property
    def mention(self) -> str:
        return f"<@{self.user_id}>" if self.user_id else (self.name or "you")


class Refusal(Exception):
    """Why a request is refused: an i18n key under `refusal.` and the values its sentence needs."""

    # Values Hanul did not write: the director's reason, the generator's detail, a name a member gave.
    QUOTED = ("reason", "detail", "name")

    def __init__(self, code: str, values: dict[str, object] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.values: dict[str, object] = {
            key: Quoted(value) if key in self.QUOTED and isinstance(value, str) else value
            for key, value in (values or {}).items()
        }

    def __str__(self) -> str:
        return f"{self.code}: {self.values}"

    def said(self, locale: str | None, say: Callable[..., str] = text) -> str:
        """The refusal as a member reads it: why, and what to do (`say`: how Hanul's sentences are filled in there,
        `bot.cogs._common.discord_text` on Discord)."""
        return "⚠️ " + say(f"refusal.{self.code}", locale, **{"detail": "", "id": "?", **self.values})


class Limits:
    """Applies the configured limits; `admit` is atomic per process so two quick requests can't both slip in."""

    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        clock: Callable[[], datetime] | None = None,
        configs: GuildConfigs | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = asyncio.Lock()
        self.configs = configs or GuildConfigs(settings, store.engine)  # each server's limits

    def is_global_admin(self, requester: Requester) -> bool:
        """Admins everywhere: only the ones the operator named in HANUL_ADMIN_USER_IDS (and the console)."""
        return requester.operator or requester.user_id in self._settings.admin_user_ids

    def is_guild_admin(self, requester: Requester, guild_id: int | None) -> bool:
        """An admin of `guild_id` asking from inside it: Discord's Administrator or Manage Server permission
        there, or one of HANUL_ADMIN_ROLE_IDS among their roles there. Nobody is an admin of a DM."""
        if guild_id is None or requester.guild_id != guild_id:
            return False
        return requester.server_admin or bool(set(requester.role_ids) & set(self._settings.admin_role_ids))

    def bypasses_limits(self, requester: Requester) -> bool:
        """The allow-lists, queue cap, cooldown and quota guard one GPU shared by every server, so only admins
        the operator chose skip them: HANUL_ADMIN_USER_IDS, and holders of HANUL_ADMIN_ROLE_IDS (roles belong to
        one server, so these are the operator's choice too). Managing a server of one's own is not enough."""
        return self.is_global_admin(requester) or bool(set(requester.role_ids) & set(self._settings.admin_role_ids))

    def may_manage(self, requester: Requester, record: GenerationRecord) -> bool:
        """Only the owner of a video, an admin of the server it was made in, or a global admin may cancel,
        delete or edit it."""
        return (
            requester.user_id == record.user_id
            or self.is_global_admin(requester)
            or self.is_guild_admin(requester, record.guild_id)
        )

    def may_see(self, requester: Requester, record: GenerationRecord, guild_id: int | None) -> bool:
        """Whether `record` (its prompt, its clip) may be shown or acted on from `guild_id` (None: a DM): by its
        owner anywhere; by others only inside the server it was made in. A DM video stays its owner's."""
        if requester.user_id == record.user_id or self.is_global_admin(requester):
            return True
        return record.guild_id is not None and record.guild_id == guild_id

    def check_place(self, requester: Requester, config: GuildConfig) -> None:
        """Raise a Refusal when the channel or the member's roles are not allowed in the server's `config` (DMs
        pass the channel test, not a role list: a DM shows no roles; @everyone on the list lets every member in)."""
        if self.bypasses_limits(requester):
            return
        allowed_channels = set(config.allowed_channel_ids)
        if allowed_channels and requester.guild_id is not None:
            here = {requester.channel_id, requester.parent_channel_id} - {None}
            if not here & allowed_channels:
                channels = ", ".join(f"<#{c}>" for c in config.allowed_channel_ids)
                raise Refusal("channel", {"channels": channels})
        allowed_roles = set(config.allowed_role_ids)
        if not allowed_roles:
            return
        if requester.guild_id is None:
            # A DM has no roles to show: the operator's role list would be skipped by anyone who writes to Hanul.
            raise Refusal("role_dm")
        # @everyone (its id is the server's) is on no member's list of roles, yet every member holds it.
        if requester.guild_id not in allowed_roles and not set(requester.role_ids) & allowed_roles:
            roles = ", ".join(f"<@&{r}>" for r in config.allowed_role_ids)
            raise Refusal("role", {"roles": roles})

    async def admit(
        self,
        requester: Requester,
        record: Callable[[], object],
        *,
        follow_up: bool = False,
        config: GuildConfig | None = None,
    ) -> object:
        """Check every limit and, if all pass, run `record` (which stores the pending generation) before any
        other request is checked. Raises Refusal with the reason otherwise. `follow_up`: the member is working
        on their own clip (refining, extending, re-rolling it), the product's main flow: the cooldown, meant
        against a burst of new requests, does not apply (the queue cap and the quota still do). `config`: the
        server's settings, where the caller has just read them (one read per request)."""
        if config is None:
            config = await self.configs.effective(requester.guild_id)
        self.check_place(requester, config)
        async with self._lock:
            now = self._clock()
            if not self.bypasses_limits(requester):
                await self._check_usage(requester.user_id, now, config, cooldown=not follow_up)
            await self._store.record_request_time(requester.user_id, now)
            result = record()
            if asyncio.iscoroutine(result):
                result = await result
            return result

    async def _check_usage(self, user_id: int, now: datetime, settings: GuildConfig, *, cooldown: bool = True) -> None:
        open_count = await self._store.count_open(user_id)
        if open_count >= settings.max_queued_per_user:
            raise Refusal("queue_full", {"count": open_count, "limit": settings.max_queued_per_user})
        member = await self._store.member(user_id)
        if cooldown and member.last_request_at is not None and settings.cooldown_seconds > 0:
            waited = (now - member.last_request_at).total_seconds()
            if waited < settings.cooldown_seconds:
                raise Refusal("cooldown", {"seconds": math.ceil(settings.cooldown_seconds - waited)})
        if settings.daily_quota > 0:
            midnight = datetime.combine(now.date(), time(0), tzinfo=UTC)
            used = await self._store.count_charged_since(user_id, midnight)
            if used >= settings.daily_quota:
                hours = math.ceil((midnight + timedelta(days=1) - now).total_seconds() / 3600)
                raise Refusal("quota", {"limit": settings.daily_quota, "hours": hours})
