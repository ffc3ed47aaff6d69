"""The bot's tables: members and their settings, conversations (one per thread), every generation, each
server's own settings, and the characters members made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from hanul_core.db import TYPE_ANNOTATION_MAP, BigIntId, new_metadata, utcnow
from hanul_core.migrate import MigrationHistory

# Generation statuses as the bot tracks them.
PENDING = "pending"  # recorded, not yet accepted by the generator
QUEUED = "queued"
RENDERING = "rendering"
COMPLETED = "completed"  # rendered, not yet posted
POSTED = "posted"
FAILED = "failed"
CANCELLED = "cancelled"
OPEN_STATUSES = (PENDING, QUEUED, RENDERING, COMPLETED)

# How a generation is made on the generator.
RENDER = "render"  # rendered from its prompt (a new video, a continuation of its parent for `extend`)
VIDEO_EDIT = "edit"  # its parent clip changed by the prompt (`POST /v1/videos/edits`), keeping the motion
MODES = (RENDER, VIDEO_EDIT)


MIGRATIONS = MigrationHistory("bot")  # migrations/bot/, upgraded by the bot alone


class Base(DeclarativeBase):
    """The bot's tables: their own metadata, migrated by their own history."""

    metadata = new_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class User(Base):
    """A member (Discord user id; the console front end uses id 0) and their defaults."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(100), default="")
    locale: Mapped[str | None] = mapped_column(String(16), default=None)  # last seen Discord locale
    language: Mapped[str | None] = mapped_column(String(16), default=None)  # chosen reply language
    default_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    default_aspect: Mapped[str | None] = mapped_column(String(16), default=None)
    default_style: Mapped[str | None] = mapped_column(String(200), default=None)
    enhance: Mapped[bool] = mapped_column(Boolean, default=True)
    sound: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())  # when the model has sound
    last_request_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Conversation(Base):
    """One refinement dialogue: a thread in a guild, or a reply chain in a DM or the console."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    guild_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    channel_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    thread_id: Mapped[int | None] = mapped_column(BigInteger, default=None, unique=True)
    current_prompt: Mapped[str] = mapped_column(Text, default="")
    current_negative_prompt: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    messages: Mapped[list[ConversationMessage]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ConversationMessage.id",
    )


class ConversationMessage(Base):
    """One turn of a refinement dialogue (member's words or the director's answer)."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    discord_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Generation(Base):
    """Every request a member made: what they asked, the prompt written for it, and where the clip went."""

    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), default=None, index=True
    )
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id", ondelete="SET NULL"), default=None)
    kind: Mapped[str] = mapped_column(
        String(16), default="generate"
    )  # generate|refine|extend|animate|reroll|rerun|smaller|edit
    mode: Mapped[str] = mapped_column(String(16), default=RENDER, server_default=RENDER)  # RENDER | VIDEO_EDIT
    request_text: Mapped[str] = mapped_column(Text)
    expanded_prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str | None] = mapped_column(Text, default=None)
    title: Mapped[str | None] = mapped_column(String(200), default=None)
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    llm_written: Mapped[bool] = mapped_column(Boolean, default=False)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)  # seconds, aspect, size, style, max_bytes
    seed: Mapped[int | None] = mapped_column(BigInteger, default=None)
    video_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    guild_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    channel_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    thread_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    status_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    result_message_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # The LLM's look at the finished clip: fine | age_restricted | withhold (None: nobody looked), and one line
    # describing it (the attachment's alt text, shown in /history).
    verdict: Mapped[str | None] = mapped_column(String(16), default=None)
    description: Mapped[str | None] = mapped_column(String(300), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    posted_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_generations_user_id_created_at", "user_id", "created_at"),
        Index("ix_generations_status", "status"),
    )


class GuildSettings(Base):
    """One server's own settings, chosen with /config: only the fields it set (field name -> value); every other
    field is the operator's default from the environment. Removing a key resets that field."""

    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_by: Mapped[int | None] = mapped_column(BigInteger, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Character(Base):
    """A subject a member made reusable (`/character create`): the generator keeps its reference frames under
    `generator_id`; the bot keeps whose it is, whether their server may use it, and its description in words."""

    __tablename__ = "member_characters"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    guild_id: Mapped[int | None] = mapped_column(BigInteger, default=None)  # the server it was made in
    shared: Mapped[bool] = mapped_column(Boolean, default=False)  # usable by everyone in `guild_id`
    name: Mapped[str] = mapped_column(String(80))
    generator_id: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    described_by: Mapped[str] = mapped_column(String(16), default="member")  # member | director
    source: Mapped[str] = mapped_column(String(16))  # image | clip
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id", "name", name="uq_member_characters_user_id_name"),
        Index("ix_member_characters_guild_id_shared", "guild_id", "shared"),
    )
