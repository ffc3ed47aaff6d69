"""Each server's own settings, in the manner of Red-DiscordBot's per-scope config: one registered set of fields
whose defaults are the operator's environment (`BotSettings`), and per guild only the fields it chose with
/config (a row of `guild_settings`). `GuildConfigs.effective(guild_id)` is what every rule reads for a server;
a DM or the console (no guild) gets the defaults.

A server may tighten the operator's limits, never loosen them: one GPU is shared by every server, and the
operator's numbers are its budget (a longer clip, a larger queue or quota, a shorter cooldown are refused here
and clamped when read, should the operator lower a limit later)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.i18n import LANGUAGES
from bot.models import GuildSettings
from bot.settings import OUTPUT_POLICIES, BotSettings
from bot.videos import ASPECT_SIZES
from hanul_core.db import read_only_session_factory, session_factory

log = logging.getLogger(__name__)

DEFAULT_ASPECT = "16:9"
MAX_STYLE_CHARS = 200
MAX_LISTED = 25  # channels or roles in one allow-list (a message shows them all)
MAX_COOLDOWN = 86_400.0

# The fields a server can set, in the order /config shows them.
FIELDS = (
    "allowed_channel_ids",
    "allowed_role_ids",
    "max_queued_per_user",
    "daily_quota",
    "cooldown_seconds",
    "max_seconds",
    "default_seconds",
    "default_aspect",
    "default_style",
    "output_policy",
    "language",
)


class BadConfig(ValueError):
    """A value a server may not set: `code` names the sentence (`config.bad.<code>`), `values` fill it in."""

    def __init__(self, code: str, **values: object) -> None:
        super().__init__(f"{code}: {values}")
        self.code = code
        self.values = values


@dataclass(frozen=True)
class GuildConfig:
    """The settings in force in one server (None: a DM or the console), its own choices over the defaults."""

    guild_id: int | None
    allowed_channel_ids: tuple[int, ...]
    allowed_role_ids: tuple[int, ...]
    max_queued_per_user: int
    daily_quota: int  # 0: unlimited
    cooldown_seconds: float
    max_seconds: float
    default_seconds: float
    default_aspect: str
    default_style: str | None
    output_policy: str
    language: str | None  # None: each member's own Discord language
    overridden: frozenset[str] = field(default_factory=frozenset)  # the fields the server set itself


def defaults(settings: BotSettings, guild_id: int | None = None) -> GuildConfig:
    """The operator's settings as a server's config: what every server has until it chooses otherwise."""
    return GuildConfig(
        guild_id=guild_id,
        allowed_channel_ids=tuple(settings.allowed_channel_ids),
        allowed_role_ids=tuple(settings.allowed_role_ids),
        max_queued_per_user=settings.max_queued_per_user,
        daily_quota=settings.daily_quota,
        cooldown_seconds=settings.cooldown_seconds,
        max_seconds=settings.max_seconds,
        default_seconds=min(settings.default_seconds, settings.max_seconds),
        default_aspect=DEFAULT_ASPECT,
        default_style=None,
        output_policy=settings.output_policy,
        language=None,
    )


def _ids(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or len(value) > MAX_LISTED:
        raise BadConfig("ids")
    ids = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | str) or not str(item).isdigit():
            raise BadConfig("ids")
        ids.append(int(item))
    return tuple(dict.fromkeys(ids))


def _number(value: Any, kind: type[int] | type[float], low: float, high: float | None = None) -> Any:
    # NaN passes every comparison (a NaN cooldown would be none at all) and infinity has no int.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise BadConfig("number", low=f"{low:g}", high=f"{high:g}" if high is not None else "∞")
    if kind is int and value != int(value):
        raise BadConfig("number", low=f"{low:g}", high=f"{high:g}" if high is not None else "∞")
    if value < low or (high is not None and value > high):
        raise BadConfig("number", low=f"{low:g}", high=f"{high:g}" if high is not None else "∞")
    return kind(value)


def checked(name: str, value: Any, base: GuildConfig) -> Any:
    """`value` as field `name` stores it, or BadConfig: its type and range, and the operator's limits (`base`)."""
    if name in ("allowed_channel_ids", "allowed_role_ids"):
        return list(_ids(value))
    if name == "max_queued_per_user":
        return _number(value, int, 1, base.max_queued_per_user)
    if name == "daily_quota":
        if base.daily_quota == 0:
            return _number(value, int, 0)
        return _number(value, int, 1, base.daily_quota)
    if name == "cooldown_seconds":
        return _number(value, float, base.cooldown_seconds, MAX_COOLDOWN)
    if name == "max_seconds":
        return _number(value, float, 1, base.max_seconds)
    if name == "default_seconds":
        return _number(value, float, 1, base.max_seconds)
    if name == "default_aspect":
        if value not in ASPECT_SIZES:
            raise BadConfig("choice", choices=", ".join(ASPECT_SIZES))
        return value
    if name == "default_style":
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_STYLE_CHARS:
            raise BadConfig("style", limit=MAX_STYLE_CHARS)
        return value.strip()
    if name == "output_policy":
        if value not in OUTPUT_POLICIES:
            raise BadConfig("choice", choices=", ".join(OUTPUT_POLICIES))
        return value
    if name == "language":
        if value not in LANGUAGES:
            raise BadConfig("choice", choices=", ".join(LANGUAGES))
        return value
    raise BadConfig("field", field=name)


def resolve(settings: BotSettings, guild_id: int | None, overrides: dict[str, Any]) -> GuildConfig:
    """A server's config: each stored choice that is still valid under the operator's current limits, the
    defaults for the rest (a stored value the operator's limits no longer allow is ignored, and logged)."""
    config = defaults(settings, guild_id)
    ceiling = config
    chosen: dict[str, Any] = {}
    # `default_seconds` is checked against the server's own longest clip, so that one comes first.
    for name in sorted(overrides, key=lambda n: FIELDS.index(n) if n in FIELDS else len(FIELDS)):
        try:
            value = checked(name, overrides[name], ceiling)
        except BadConfig:
            log.warning("guild %s: ignoring its stored %s=%r (not allowed now)", guild_id, name, overrides[name])
            continue
        chosen[name] = tuple(value) if isinstance(value, list) else value
        if name == "max_seconds":
            ceiling = replace(ceiling, max_seconds=value)
    resolved = replace(config, **chosen, overridden=frozenset(chosen))
    if "default_seconds" not in chosen and resolved.default_seconds > resolved.max_seconds:
        resolved = replace(resolved, default_seconds=resolved.max_seconds)
    return resolved


class GuildConfigs:
    """Reads and changes servers' settings (`guild_settings`), one unit of work per call."""

    def __init__(self, settings: BotSettings, engine: AsyncEngine) -> None:
        self.settings = settings
        self._sessions: async_sessionmaker = session_factory(engine)
        self._readers: async_sessionmaker = read_only_session_factory(engine)

    async def effective(self, guild_id: int | None) -> GuildConfig:
        """The settings in force in `guild_id` (the defaults for a DM, the console, or a server that chose none)."""
        if guild_id is None:
            return defaults(self.settings)
        async with self._readers() as session:
            row = await session.get(GuildSettings, guild_id)
            overrides = dict(row.overrides) if row is not None else {}
        return resolve(self.settings, guild_id, overrides)

    async def change(
        self, guild_id: int, by: int, changes: dict[str, Any], *, reset: tuple[str, ...] = ()
    ) -> GuildConfig:
        """Set some fields (each checked: BadConfig names the first refused, and nothing is saved) and reset others
        to the default; returns the config now in force."""
        unknown = (set(changes) | set(reset)) - set(FIELDS)
        if unknown:
            raise BadConfig("field", field=", ".join(sorted(unknown)))
        async with self._sessions() as session, session.begin():
            row = await session.get(GuildSettings, guild_id)
            current = dict(row.overrides) if row is not None else {}
            for name in reset:
                current.pop(name, None)
            ceiling = defaults(self.settings, guild_id)
            for name in FIELDS:  # longest clip before default length, which must fit under it
                if name not in changes:
                    continue
                try:
                    current[name] = checked(name, changes[name], ceiling)
                except BadConfig as error:
                    error.values.setdefault("field", name)
                    raise
                if name == "max_seconds":
                    ceiling = replace(ceiling, max_seconds=current[name])
            new_max = min(float(current.get("max_seconds", self.settings.max_seconds)), self.settings.max_seconds)
            if float(current.get("default_seconds", 0)) > new_max:
                if "default_seconds" in changes:
                    raise BadConfig("number", low="1", high=f"{new_max:g}", field="default_seconds")
                current.pop("default_seconds")  # a shorter longest clip takes the server's default length down
            if row is None:
                session.add(GuildSettings(guild_id=guild_id, overrides=current, updated_by=by))
            else:
                row.overrides = current  # a new dict: SQLAlchemy sees the JSON column changed
                row.updated_by = by
        log.info("guild %s settings changed by %s: set %s, reset %s", guild_id, by, sorted(changes), list(reset))
        return await self.effective(guild_id)
