"""What every Discord front-end module shares: the services the composition root builds, who is asking, where
the answer goes, and the one way a failed interaction is answered."""

from __future__ import annotations

import dataclasses
import logging
import re
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from bot.i18n import Quoted, template, text
from bot.limits import Refusal, Requester
from bot.settings import BotSettings
from bot.store import GenerationRecord
from bot.studio import Destination, Studio

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # Discord's per-file cap without boosts (2025 onwards)
MESSAGE_LIMIT = 2000  # Discord's limit on a message's content, in code points


# --- what Hanul says on Discord -----------------------------------------------------------------------


def quoted(value: str) -> str:
    """Text Hanul did not write, shown on Discord as it was written: its Markdown (a masked link, a code fence, a
    spoiler, a backslash that would escape Hanul's own `**`) escaped. Pings are allowed_mentions' job: an escaped
    mention would no longer read as typed."""
    return discord.utils.escape_markdown(value)


def _shortened(value: str, room: int) -> str:
    """`value` quoted in at most `room` characters: cut, with "…", when it is longer."""
    shown = quoted(value)
    if len(shown) <= room:
        return shown
    if room < 1:
        return ""
    low, high = 0, min(len(value), room - 1)  # the longest start of `value` that fits with its "…"
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(quoted(value[:middle])) <= room - 1 else (low, middle - 1)
    return quoted(value[:low]) + "…"


def fit(sentence: str, max_chars: int = MESSAGE_LIMIT, /, **values: object) -> str:
    """`sentence` (a catalog template) filled in for Discord: its `Quoted` values escaped and, when the whole would
    be longer than `max_chars`, the longest of them cut until it fits; Hanul's own words around them are never cut."""
    free = {name: str(value) for name, value in values.items() if isinstance(value, Quoted)}
    fixed = {name: value for name, value in values.items() if name not in free}
    uses = {name: 0 for name in free}
    for _, name, _, _ in string.Formatter().parse(sentence):
        if name in uses:
            uses[name] += 1
    room = max_chars - len(sentence.format(**fixed, **dict.fromkeys(free, "")))
    lengths = {name: len(quoted(value)) for name, value in free.items()}
    shown: dict[str, str] = {}
    for name in sorted(free, key=lambda name: lengths[name]):  # the short ones whole, the long ones share the rest
        share = max(0, room) // max(1, sum(uses[other] for other in free if other not in shown))
        shown[name] = _shortened(free[name], min(lengths[name], share))
        room -= len(shown[name]) * uses[name]
    return _filled(sentence, fixed, shown)


_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def _filled(sentence: str, fixed: dict[str, object], shown: dict[str, str]) -> str:
    """`sentence.format(**fixed, **shown)`, except that a `shown` value inside a code span (`…`), where Discord
    renders no Markdown, is the text as typed: its escapes taken off again, a backtick (which would end the span)
    shown as a look-alike."""
    formatter = string.Formatter()
    parts: list[str] = []
    in_code = False
    for literal, name, spec, conversion in formatter.parse(sentence):
        parts.append(literal)
        in_code ^= literal.count("`") % 2 == 1
        if name is None:
            continue
        if name in shown:
            value: object = shown[name]
            if in_code:
                value = _ESCAPED.sub(r"\1", shown[name]).replace("`", "ˋ")
        else:
            value = formatter.get_field(name, (), fixed)[0]
        parts.append(formatter.format_field(formatter.convert_field(value, conversion), spec or ""))
    return "".join(parts)


def discord_text(key: str, locale: str | None = None, /, *, max_chars: int = MESSAGE_LIMIT, **values: object) -> str:
    """`text(key, locale, **values)` for a Discord message (see `fit`): wrap what Hanul did not write in `Quoted`."""
    return fit(template(key, locale), max_chars, **values)


@dataclass(frozen=True)
class Services:
    """What the cogs and the clip buttons work with, built once by the composition root (`bot.app`)."""

    settings: BotSettings
    studio: Studio
    deliver: Callable[[GenerationRecord], None]  # follow a submitted generation to its posted clip, in the background


def services_of(client: discord.Client) -> Services:
    """The services of the bot an extension is loaded into, or a persistent button is clicked on."""
    services = getattr(client, "services", None)
    if not isinstance(services, Services):
        raise RuntimeError("this client has no Hanul services: build it with bot.app.HanulBot")
    return services


def requester_of(user: discord.abc.User, channel: object, locale: str | None) -> Requester:
    """The asking member as plain data; roles and admin rights come from the guild member when there is one."""
    roles: tuple[int, ...] = ()
    server_admin = False
    if isinstance(user, discord.Member):
        roles = tuple(role.id for role in user.roles if not role.is_default())
        permissions = user.guild_permissions
        server_admin = permissions.administrator or permissions.manage_guild
    guild_id = getattr(getattr(channel, "guild", None), "id", None)
    parent_id = getattr(channel, "parent_id", None) if isinstance(channel, discord.Thread) else None
    return Requester(
        user_id=user.id,
        name=user.display_name,
        locale=locale,
        guild_id=guild_id,
        channel_id=getattr(channel, "id", None),
        parent_channel_id=parent_id,
        role_ids=roles,
        server_admin=server_admin,
    )


def interaction_requester(interaction: discord.Interaction) -> Requester:
    """The asking member; Discord resolves their permissions in this channel into the interaction itself."""
    requester = requester_of(interaction.user, interaction.channel, str(interaction.locale.value))
    permissions = interaction.permissions
    return dataclasses.replace(
        requester,
        # The guild may not be cached (a user-installed app); the id still decides the allow-lists.
        guild_id=requester.guild_id if requester.guild_id is not None else interaction.guild_id,
        server_admin=interaction.guild_id is not None and (permissions.administrator or permissions.manage_guild),
    )


def upload_limit(interaction: discord.Interaction | None, guild: discord.Guild | None) -> int:
    """The channel's real per-file upload limit."""
    if interaction is not None and interaction.filesize_limit:
        return interaction.filesize_limit
    if guild is not None:
        return guild.filesize_limit
    return DEFAULT_UPLOAD_LIMIT


def destination_for(channel: discord.abc.Messageable | object, limit: int) -> Destination:
    """Where a result goes: a thread (and its parent channel), a channel, or a DM."""
    guild = getattr(channel, "guild", None)
    if isinstance(channel, discord.Thread):
        return Destination(guild.id if guild else None, channel.parent_id, channel.id, limit)
    return Destination(guild.id if guild else None, getattr(channel, "id", None), None, limit)


def interaction_destination(interaction: discord.Interaction) -> Destination:
    """Where the result of an interaction goes: the channel it happened in."""
    assert interaction.channel is not None
    return destination_for(interaction.channel, upload_limit(interaction, interaction.guild))


# What Hanul needs in a channel to post a request, its thread and its clip.
POST_PERMISSIONS = ("send_messages", "send_messages_in_threads", "create_public_threads", "attach_files")


def _permission_names(names: tuple[str, ...] | list[str], locale: str | None) -> str:
    return ", ".join(text(f"permission.{name}", locale) for name in names)


def cannot_post(locale: str | None, missing: tuple[str, ...] | list[str] = POST_PERMISSIONS) -> Refusal:
    """Discord forbade Hanul to post here: the refusal names the permissions to give it (all it needs, when which
    one is missing is not known)."""
    return Refusal("bot_permissions", {"permissions": _permission_names(missing, locale)})


def check_can_post(interaction: discord.Interaction, locale: str | None) -> None:
    """Refuse, before anything is drafted or rendered, a request in a server channel where Hanul may not post its
    messages or attach the clip (Discord resolves Hanul's own permissions there into the interaction)."""
    if interaction.guild_id is None:
        return
    allowed = interaction.app_permissions
    in_thread = isinstance(interaction.channel, discord.Thread)
    needed = ["send_messages_in_threads" if in_thread else "send_messages", "attach_files"]
    if isinstance(interaction.channel, discord.TextChannel) and allowed.create_public_threads:
        needed.insert(1, "send_messages_in_threads")  # the conversation goes on in a thread made here
    missing = [name for name in needed if not getattr(allowed, name)]
    if missing:
        raise cannot_post(locale, missing)


async def member_locale(studio: Studio, user_id: int, fallback: str | None, guild_id: int | None = None) -> str | None:
    """The language to answer a member in: their /settings choice, else their server's (/config), else the
    Discord locale."""
    return await studio.reply_locale(user_id, guild_id, fallback)


async def interaction_locale(interaction: discord.Interaction) -> str | None:
    """The language to answer the member behind an interaction in."""
    return await member_locale(
        services_of(interaction.client).studio, interaction.user.id, _discord_locale(interaction), interaction.guild_id
    )


def _discord_locale(interaction: discord.Interaction) -> str:
    return str(interaction.locale.value)


async def answer(interaction: discord.Interaction, content: str, *, view: discord.ui.View | None = None) -> None:
    """An ephemeral answer, whether or not the interaction was deferred already."""
    kwargs: dict[str, object] = {"ephemeral": True}
    if view is not None:
        kwargs["view"] = view
    if interaction.response.is_done():
        await interaction.followup.send(content, **kwargs)  # type: ignore[arg-type]
    else:
        await interaction.response.send_message(content, **kwargs)  # type: ignore[arg-type]


async def defer(interaction: discord.Interaction) -> None:
    """Acknowledge within Discord's 3 s; the answer follows, ephemeral."""
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=True, thinking=True)


# --- the one error handler of the Discord front end -------------------------------------------------


async def on_app_command_error(interaction: discord.Interaction, error: discord.app_commands.AppCommandError) -> None:
    """`tree.on_error`: a command that failed gets an ephemeral answer, never silence. A refusal says why and what
    to do; an option Discord sent that does not convert is a refusal too; only real surprises are logged as
    errors."""
    if isinstance(error, discord.app_commands.CommandInvokeError):
        await report(interaction, error.original)
        return
    locale = _discord_locale(interaction)  # it failed before its handler ran: the member's settings are not read
    if isinstance(error, discord.app_commands.TransformerError):
        log.warning("interaction %s: option %r did not convert: %s", interaction.id, error.value, error)
        refusal = Refusal("bad_option", {"option": getattr(error.transformer, "_error_display_name", "?")})
        content = refusal.said(locale, discord_text)
    else:
        log.error("interaction %s failed", interaction.id, exc_info=error)
        content = text("error.unexpected", locale, id=interaction.id)
    await _answer_quietly(interaction, content)


def failure_text(error: BaseException, locale: str | None, what: str, reference: int) -> str:
    """What a member is told when their request raised: a refusal says why and what to do; anything else is
    logged (`what` failed) and apologised for with `reference`, the id an admin finds in the log."""
    if isinstance(error, Refusal):
        return error.said(locale, discord_text)
    log.error("%s failed", what, exc_info=error)
    return text("error.unexpected", locale, id=reference)


async def report(interaction: discord.Interaction, error: BaseException) -> None:
    """Answer an interaction whose work raised, ephemerally (see `failure_text`)."""
    locale = await interaction_locale(interaction)
    content = failure_text(error, locale, f"interaction {interaction.id}", interaction.id)
    await _answer_quietly(interaction, content)


async def guarded(interaction: discord.Interaction, work: Callable[[], Awaitable[None]]) -> None:
    """Run the work of a click or a modal (which have no command tree to catch for them) through `report`."""
    try:
        await work()
    except Exception as error:
        await report(interaction, error)


async def _answer_quietly(interaction: discord.Interaction, content: str) -> None:
    try:
        await answer(interaction, content)
    except discord.HTTPException as failure:
        log.warning("could not answer interaction %s: %s", interaction.id, failure)
