"""The bot's memory: members and their defaults, conversations, every generation, and members' characters, as
plain dataclasses.

One `AsyncSession` per call (a unit of work); nothing Discord-shaped comes in or goes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.models import (
    CANCELLED,
    COMPLETED,
    FAILED,
    OPEN_STATUSES,
    PENDING,
    POSTED,
    QUEUED,
    RENDER,
    RENDERING,
    Character,
    Conversation,
    ConversationMessage,
    Generation,
    User,
)
from hanul_core.db import read_only_session_factory, session_factory, utcnow

UNCHANGED: Any = object()  # "leave this setting as it is" (None means "clear it")
ANYWHERE: Any = object()  # a member's history from every server and DM (only ever shown to that member)
MAX_ROW_ID = 2**63 - 1  # ids in custom_ids and commands come from outside: larger ones match no row


def _possible_id(value: int) -> bool:
    return 0 < value <= MAX_ROW_ID


@dataclass(frozen=True)
class MemberSettings:
    """A member's identity as last seen and the defaults they chose with /settings."""

    user_id: int
    name: str = ""
    locale: str | None = None
    language: str | None = None
    seconds: float | None = None
    aspect: str | None = None
    style: str | None = None
    enhance: bool = True
    sound: bool = True  # clips with sound, when the model renders it
    last_request_at: datetime | None = None

    @property
    def reply_locale(self) -> str | None:
        """The language to answer in: the one they chose, else their Discord locale."""
        return self.language or self.locale


@dataclass(frozen=True)
class GenerationRecord:
    """One row of `generations`, detached from the database."""

    id: int
    user_id: int
    kind: str
    request_text: str
    status: str
    conversation_id: int | None = None
    parent_id: int | None = None
    mode: str = RENDER  # RENDER, or VIDEO_EDIT: the parent clip edited by the prompt
    expanded_prompt: str = ""
    negative_prompt: str | None = None
    title: str | None = None
    language: str | None = None
    llm_written: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    video_id: str | None = None
    progress: int = 0
    guild_id: int | None = None
    channel_id: int | None = None
    thread_id: int | None = None
    status_message_id: int | None = None
    result_message_id: int | None = None
    error: str | None = None
    verdict: str | None = None  # the LLM's look at the clip: fine | age_restricted | withhold; None: no look
    description: str | None = None  # one line describing the clip (its alt text)
    created_at: datetime | None = None
    completed_at: datetime | None = None
    posted_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def display_title(self) -> str:
        """A short name for the clip, on one line: the director's title, else the start of the request."""
        title = " ".join((self.title or self.request_text or "").split()) or f"#{self.id}"
        return title if len(title) <= 80 else title[:79] + "…"


@dataclass(frozen=True)
class ConversationRecord:
    """A refinement dialogue: a thread in a guild, a reply chain in a DM, or a console session."""

    id: int
    user_id: int
    guild_id: int | None
    channel_id: int | None
    thread_id: int | None
    current_prompt: str
    current_negative_prompt: str | None


@dataclass(frozen=True)
class DialogueTurn:
    """One remembered turn of a conversation."""

    role: str  # user | assistant
    content: str


@dataclass
class NewGeneration:
    """What is known about a request when it is admitted."""

    user_id: int
    kind: str
    request_text: str
    conversation_id: int | None = None
    parent_id: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    guild_id: int | None = None
    channel_id: int | None = None
    thread_id: int | None = None
    mode: str = RENDER


@dataclass(frozen=True)
class CharacterRecord:
    """A member's character: its name, the generator's id for its reference frames, and its description."""

    id: int
    user_id: int
    guild_id: int | None
    shared: bool
    name: str
    generator_id: str
    description: str
    described_by: str  # member | director
    source: str  # image | clip
    created_at: datetime | None = None


@dataclass(frozen=True)
class NewCharacter:
    """A character to record once the generator has made it."""

    user_id: int
    guild_id: int | None
    shared: bool
    name: str
    generator_id: str
    description: str
    described_by: str
    source: str


_GENERATION_FIELDS = tuple(f.name for f in fields(GenerationRecord))


def _generation(row: Generation) -> GenerationRecord:
    return GenerationRecord(**{name: getattr(row, name) for name in _GENERATION_FIELDS})


_CHARACTER_FIELDS = tuple(f.name for f in fields(CharacterRecord))


def _character(row: Character) -> CharacterRecord:
    return CharacterRecord(**{name: getattr(row, name) for name in _CHARACTER_FIELDS})


def _member(row: User) -> MemberSettings:
    return MemberSettings(
        user_id=row.id,
        name=row.name,
        locale=row.locale,
        language=row.language,
        seconds=row.default_seconds,
        aspect=row.default_aspect,
        style=row.default_style,
        enhance=row.enhance,
        sound=row.sound,
        last_request_at=row.last_request_at,
    )


def _conversation(row: Conversation) -> ConversationRecord:
    return ConversationRecord(
        id=row.id,
        user_id=row.user_id,
        guild_id=row.guild_id,
        channel_id=row.channel_id,
        thread_id=row.thread_id,
        current_prompt=row.current_prompt,
        current_negative_prompt=row.current_negative_prompt,
    )


class Store:
    """Persistence for members, conversations and generations.

    Over 300 lines on purpose: it is the bot's one gateway to its tables, every method one short unit of work
    with its own session (writers and lock-free readers chosen here, in one place); split by table, the session
    rules would be repeated in three classes that the studio would then have to hold together."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine  # the servers' settings (`bot.guild_config`) live in the same database
        self._sessions: async_sessionmaker = session_factory(engine)
        # Reads need no write lock: on SQLite (shared with the in-process generator's claims and lease renewals)
        # they would otherwise queue for it, and hold it, like writes.
        self._readers: async_sessionmaker = read_only_session_factory(engine)

    # --- members ---------------------------------------------------------------------------------

    async def ensure_member(self, user_id: int, name: str | None = None, locale: str | None = None) -> MemberSettings:
        """The member's settings, creating the row on first sight and refreshing name and locale. Two first
        requests at once both try to create it; the one that loses reads the winner's row."""
        try:
            return await self._ensure_member(user_id, name, locale)
        except IntegrityError:
            return await self._ensure_member(user_id, name, locale)

    async def _ensure_member(self, user_id: int, name: str | None, locale: str | None) -> MemberSettings:
        async with self._sessions() as session, session.begin():
            row = await session.get(User, user_id)
            if row is None:
                row = User(id=user_id, name=(name or "")[:100], locale=locale, enhance=True)
                session.add(row)
            else:
                if name is not None and name[:100] != row.name:
                    row.name = name[:100]
                if locale is not None and locale != row.locale:
                    row.locale = locale
            await session.flush()
            return _member(row)

    async def member(self, user_id: int) -> MemberSettings:
        """The member's settings (defaults when never seen)."""
        async with self._readers() as session:
            row = await session.get(User, user_id)
            return _member(row) if row else MemberSettings(user_id=user_id)

    async def update_member(
        self,
        user_id: int,
        *,
        seconds: float | None = UNCHANGED,
        aspect: str | None = UNCHANGED,
        style: str | None = UNCHANGED,
        enhance: bool = UNCHANGED,
        language: str | None = UNCHANGED,
        sound: bool = UNCHANGED,
    ) -> MemberSettings:
        """Change some of a member's defaults; `None` clears one, `UNCHANGED` leaves it."""
        await self.ensure_member(user_id)
        async with self._sessions() as session, session.begin():
            row = await session.get(User, user_id)
            assert row is not None
            for attribute, value in (
                ("default_seconds", seconds),
                ("default_aspect", aspect),
                ("default_style", style),
                ("enhance", enhance),
                ("language", language),
                ("sound", sound),
            ):
                if value is not UNCHANGED:
                    setattr(row, attribute, value)
            await session.flush()
            return _member(row)

    async def record_request_time(self, user_id: int, at: datetime) -> None:
        """Remember when the member last asked for a video (the cooldown survives restarts)."""
        async with self._sessions() as session, session.begin():
            await session.execute(update(User).where(User.id == user_id).values(last_request_at=at))

    # --- generations -----------------------------------------------------------------------------

    async def create_generation(self, new: NewGeneration) -> GenerationRecord:
        """Record a request the moment it is admitted (status pending)."""
        async with self._sessions() as session, session.begin():
            row = Generation(
                user_id=new.user_id,
                kind=new.kind,
                request_text=new.request_text,
                conversation_id=new.conversation_id,
                parent_id=new.parent_id,
                mode=new.mode,
                params=dict(new.params),
                seed=new.seed,
                guild_id=new.guild_id,
                channel_id=new.channel_id,
                thread_id=new.thread_id,
                status=PENDING,
                progress=0,
                expanded_prompt="",
                llm_written=False,
            )
            session.add(row)
            await session.flush()
            return _generation(row)

    async def update_generation(self, generation_id: int, **changes: Any) -> GenerationRecord:
        """Change some columns of one generation and return the row as it now is."""
        unknown = set(changes) - set(_GENERATION_FIELDS)
        if unknown:
            raise ValueError(f"not generation fields: {sorted(unknown)}")
        async with self._sessions() as session, session.begin():
            row = await session.get(Generation, generation_id)
            if row is None:
                raise LookupError(f"generation {generation_id} does not exist")
            for name, value in changes.items():
                setattr(row, name, value)
            await session.flush()
            return _generation(row)

    async def update_if_unfinished(self, generation_id: int, **changes: Any) -> GenerationRecord | None:
        """Like `update_generation`, but only while the generation is pending, queued or rendering: a progress
        report racing a cancel (or a failure) must not bring it back. None when it had already ended."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Generation)
                .where(Generation.id == generation_id, Generation.status.in_((PENDING, QUEUED, RENDERING)))
                .values(**changes)
            )
            if result.rowcount != 1:
                return None
        return await self.generation(generation_id)

    async def generation(self, generation_id: int) -> GenerationRecord | None:
        if not _possible_id(generation_id):
            return None
        async with self._readers() as session:
            row = await session.get(Generation, generation_id)
            return _generation(row) if row else None

    async def generation_by_message(self, message_id: int) -> GenerationRecord | None:
        """The generation whose clip (or status message) is this Discord message."""
        if not _possible_id(message_id):
            return None
        async with self._readers() as session:
            row = await session.scalar(
                select(Generation)
                .where(or_(Generation.result_message_id == message_id, Generation.status_message_id == message_id))
                .order_by(Generation.id.desc())
                .limit(1)
            )
            return _generation(row) if row else None

    async def open_generations(
        self, user_id: int | None = None, *, guild_id: int | None = None
    ) -> list[GenerationRecord]:
        """Unfinished generations, oldest first: all members' when `user_id` is None, only those made in
        `guild_id` when it is given."""
        query = select(Generation).where(Generation.status.in_(OPEN_STATUSES)).order_by(Generation.id)
        if user_id is not None:
            query = query.where(Generation.user_id == user_id)
        if guild_id is not None:
            query = query.where(Generation.guild_id == guild_id)
        async with self._readers() as session:
            return [_generation(row) for row in (await session.scalars(query)).all()]

    async def count_open(self, user_id: int) -> int:
        async with self._readers() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(Generation)
                    .where(Generation.user_id == user_id, Generation.status.in_(OPEN_STATUSES))
                )
                or 0
            )

    async def count_charged_since(self, user_id: int, since: datetime) -> int:
        """Requests since `since` that count against the daily quota: all but those refused, failed or
        cancelled before they reached the generator (they cost no GPU time)."""
        async with self._readers() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(Generation)
                    .where(
                        Generation.user_id == user_id,
                        Generation.created_at >= since,
                        or_(Generation.video_id.is_not(None), Generation.status.not_in((FAILED, CANCELLED))),
                    )
                )
                or 0
            )

    @staticmethod
    def _history_filter(user_id: int, made_in: int | object | None) -> list[Any]:
        conditions: list[Any] = [Generation.user_id == user_id]
        if made_in is not ANYWHERE:
            # Others see only what was made in the server they ask from; DM requests (no server) never.
            conditions.append(Generation.guild_id == made_in if made_in is not None else false())
        return conditions

    async def history(
        self, user_id: int, *, limit: int = 10, offset: int = 0, made_in: int | object | None = ANYWHERE
    ) -> list[GenerationRecord]:
        """A member's generations, newest first (`made_in`: only those made in that server; None: none)."""
        async with self._readers() as session:
            rows = await session.scalars(
                select(Generation)
                .where(*self._history_filter(user_id, made_in))
                .order_by(Generation.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [_generation(row) for row in rows.all()]

    async def history_of_conversation(self, conversation_id: int) -> list[GenerationRecord]:
        """A conversation's generations, newest first."""
        async with self._readers() as session:
            rows = await session.scalars(
                select(Generation).where(Generation.conversation_id == conversation_id).order_by(Generation.id.desc())
            )
            return [_generation(row) for row in rows.all()]

    async def count_history(self, user_id: int, *, made_in: int | object | None = ANYWHERE) -> int:
        async with self._readers() as session:
            query = select(func.count()).select_from(Generation).where(*self._history_filter(user_id, made_in))
            return int(await session.scalar(query) or 0)

    async def mark_completed(self, generation_id: int, **changes: Any) -> GenerationRecord:
        """Rendered and downloaded, not yet posted."""
        return await self.update_generation(generation_id, status=COMPLETED, progress=100, **changes)

    async def mark_posted(self, generation_id: int, result_message_id: int | None) -> bool:
        """Record that the clip was posted; False when it already was (so nobody posts it twice)."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(Generation)
                .where(Generation.id == generation_id, Generation.posted_at.is_(None))
                .values(status=POSTED, result_message_id=result_message_id, posted_at=utcnow(), progress=100)
            )
            return result.rowcount == 1

    async def mark_failed(self, generation_id: int, error: str) -> GenerationRecord:
        return await self.update_generation(generation_id, status=FAILED, error=error[:2000])

    async def mark_cancelled(self, generation_id: int) -> GenerationRecord:
        return await self.update_generation(generation_id, status=CANCELLED)

    # --- conversations ---------------------------------------------------------------------------

    async def create_conversation(
        self,
        user_id: int,
        *,
        guild_id: int | None = None,
        channel_id: int | None = None,
        thread_id: int | None = None,
        prompt: str = "",
        negative_prompt: str | None = None,
    ) -> ConversationRecord:
        async with self._sessions() as session, session.begin():
            row = Conversation(
                user_id=user_id,
                guild_id=guild_id,
                channel_id=channel_id,
                thread_id=thread_id,
                current_prompt=prompt,
                current_negative_prompt=negative_prompt,
            )
            session.add(row)
            await session.flush()
            return _conversation(row)

    async def conversation(self, conversation_id: int) -> ConversationRecord | None:
        async with self._readers() as session:
            row = await session.get(Conversation, conversation_id)
            return _conversation(row) if row else None

    async def conversation_by_thread(self, thread_id: int) -> ConversationRecord | None:
        async with self._readers() as session:
            row = await session.scalar(select(Conversation).where(Conversation.thread_id == thread_id))
            return _conversation(row) if row else None

    async def update_conversation(
        self,
        conversation_id: int,
        *,
        prompt: str = UNCHANGED,
        negative_prompt: str | None = UNCHANGED,
        thread_id: int | None = UNCHANGED,
        channel_id: int | None = UNCHANGED,
    ) -> ConversationRecord:
        async with self._sessions() as session, session.begin():
            row = await session.get(Conversation, conversation_id)
            if row is None:
                raise LookupError(f"conversation {conversation_id} does not exist")
            for attribute, value in (
                ("current_prompt", prompt),
                ("current_negative_prompt", negative_prompt),
                ("thread_id", thread_id),
                ("channel_id", channel_id),
            ):
                if value is not UNCHANGED:
                    setattr(row, attribute, value)
            row.updated_at = utcnow()
            await session.flush()
            return _conversation(row)

    async def add_turn(
        self, conversation_id: int, role: str, content: str, discord_message_id: int | None = None
    ) -> None:
        async with self._sessions() as session, session.begin():
            session.add(
                ConversationMessage(
                    conversation_id=conversation_id,
                    role=role,
                    content=content,
                    discord_message_id=discord_message_id,
                )
            )

    async def turns(self, conversation_id: int, *, limit: int = 20) -> list[DialogueTurn]:
        """The latest `limit` turns of a conversation, oldest first."""
        async with self._readers() as session:
            rows = (
                await session.scalars(
                    select(ConversationMessage)
                    .where(ConversationMessage.conversation_id == conversation_id)
                    .order_by(ConversationMessage.id.desc())
                    .limit(limit)
                )
            ).all()
            return [DialogueTurn(role=row.role, content=row.content) for row in reversed(rows)]

    # --- characters ------------------------------------------------------------------------------

    async def add_character(self, new: NewCharacter) -> CharacterRecord:
        """Record a character the generator made (IntegrityError: the member has one of that name already)."""
        async with self._sessions() as session, session.begin():
            row = Character(**{f.name: getattr(new, f.name) for f in fields(NewCharacter)})
            session.add(row)
            await session.flush()
            return _character(row)

    async def character(self, character_id: int) -> CharacterRecord | None:
        if not _possible_id(character_id):
            return None
        async with self._readers() as session:
            row = await session.get(Character, character_id)
            return _character(row) if row else None

    async def usable_characters(self, user_id: int, guild_id: int | None) -> list[CharacterRecord]:
        """The characters a member may use where they are: their own, and those shared in this server (a DM: their
        own only); their own first, then by name."""
        visible = Character.user_id == user_id
        if guild_id is not None:
            visible = or_(visible, and_(Character.guild_id == guild_id, Character.shared.is_(True)))
        async with self._readers() as session:
            rows = await session.scalars(
                select(Character).where(visible).order_by((Character.user_id != user_id), Character.name, Character.id)
            )
            return [_character(row) for row in rows.all()]

    async def delete_character(self, character_id: int) -> bool:
        """Forget a character; False when it was gone already."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(Character).where(Character.id == character_id))
            return result.rowcount == 1
