"""The bot's settings: Discord, the LLM that writes prompts, the generator it talks to, limits and quotas."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from hanul_core.settings import CoreSettings


def _split_ids(value: object) -> object:
    """`123,456` or `123 456` → [123, 456]; an empty value is an empty list."""
    if isinstance(value, str):
        parts = [p for p in value.replace(",", " ").split() if p]
        return [int(p) if p.isdigit() else p for p in parts]
    if isinstance(value, int):
        return [value]
    return value


IdList = Annotated[list[int], NoDecode]
# What happens to a clip the LLM's look says needs an age-restricted channel (a server can choose its own, /config).
OutputPolicy = Literal["post", "spoiler", "age_restricted_channels", "withhold"]
OUTPUT_POLICIES: tuple[str, ...] = ("post", "spoiler", "age_restricted_channels", "withhold")


class BotSettings(CoreSettings):
    """Everything the Discord bot and the console front end need."""

    discord_token: SecretStr | None = Field(default=None, validation_alias="DISCORD_TOKEN")
    discord_guild_ids: IdList = Field(default_factory=list, validation_alias="DISCORD_GUILD_IDS")
    message_content_intent: bool = Field(default=True, validation_alias="DISCORD_MESSAGE_CONTENT")

    llm_base_url: str = Field(default="", validation_alias="LLM_BASE_URL")
    llm_api_key: SecretStr | None = Field(default=None, validation_alias="LLM_API_KEY")
    llm_model: str = Field(default="gpt-4o-mini", validation_alias="LLM_MODEL")
    llm_timeout: float = Field(default=30.0, gt=0, validation_alias="LLM_TIMEOUT")
    llm_max_retries: int = Field(default=2, ge=0, le=10, validation_alias="LLM_MAX_RETRIES")
    llm_moderation: bool = Field(default=False, validation_alias="LLM_MODERATION")
    # Whether the LLM is shown each finished clip (its spritesheet) before it is posted: auto asks once, and a
    # server that refuses images is remembered as text-only until the bot restarts.
    llm_vision: Literal["auto", "on", "off"] = Field(default="auto", validation_alias="LLM_VISION")
    blocked_words: Annotated[list[str], NoDecode] = Field(default_factory=list, validation_alias="HANUL_BLOCKED_WORDS")

    generator_url: str = Field(default="", validation_alias="GENERATOR_URL")
    generator_api_key: SecretStr | None = Field(default=None, validation_alias="GENERATOR_API_KEY")
    generator_timeout: float = Field(default=60.0, gt=0, validation_alias="GENERATOR_TIMEOUT")

    default_seconds: float = Field(default=5.0, gt=0, le=60, validation_alias="HANUL_DEFAULT_SECONDS")
    max_seconds: float = Field(default=20.0, gt=0, le=60, validation_alias="HANUL_MAX_SECONDS")
    max_queued_per_user: int = Field(default=2, ge=1, validation_alias="HANUL_MAX_QUEUED_PER_USER")
    # Off by default: the queue cap and the generator's fair-share queue already pace members, and a cooldown
    # would refuse the main flow (refining or extending a clip the moment it arrives). Follow-ups on one's own
    # clip never wait for it.
    cooldown_seconds: float = Field(default=0.0, ge=0, validation_alias="HANUL_COOLDOWN_SECONDS")
    daily_quota: int = Field(default=20, ge=0, validation_alias="HANUL_DAILY_QUOTA")  # 0 = unlimited
    output_policy: OutputPolicy = Field(default="age_restricted_channels", validation_alias="HANUL_OUTPUT_POLICY")
    allowed_channel_ids: IdList = Field(default_factory=list, validation_alias="HANUL_ALLOWED_CHANNEL_IDS")
    allowed_role_ids: IdList = Field(default_factory=list, validation_alias="HANUL_ALLOWED_ROLE_IDS")
    admin_user_ids: IdList = Field(default_factory=list, validation_alias="HANUL_ADMIN_USER_IDS")
    admin_role_ids: IdList = Field(default_factory=list, validation_alias="HANUL_ADMIN_ROLE_IDS")
    progress_edit_interval: float = Field(default=3.0, ge=1.0, validation_alias="HANUL_PROGRESS_INTERVAL")
    # The bot's Prometheus metrics (bot/metrics.py) on their own port; unset: off (a bot opens no port unasked).
    metrics_port: int | None = Field(default=None, ge=0, le=65535, validation_alias="HANUL_METRICS_PORT")
    metrics_host: str = Field(default="127.0.0.1", validation_alias="HANUL_METRICS_HOST")
    # How long a request waits out an unreachable generator or Discord trouble before it is reported as failed.
    retry_minutes: float = Field(default=60.0, gt=0, le=10080, validation_alias="HANUL_RETRY_MINUTES")

    @field_validator(
        "discord_guild_ids",
        "allowed_channel_ids",
        "allowed_role_ids",
        "admin_user_ids",
        "admin_role_ids",
        mode="before",
    )
    @classmethod
    def _ids(cls, value: object) -> object:
        return _split_ids(value)

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _empty_port_is_off(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("llm_vision", "output_policy", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("blocked_words", mode="before")
    @classmethod
    def _words(cls, value: object) -> object:
        if isinstance(value, str):
            return [w.strip().lower() for w in value.split(",") if w.strip()]
        return value

    @field_validator("discord_token", "llm_api_key", "generator_api_key", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("generator_url", "llm_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
        return value.rstrip("/")

    def secrets(self) -> list[str]:
        """Every secret value, for the log scrubber."""
        return [s.get_secret_value() for s in (self.discord_token, self.llm_api_key, self.generator_api_key) if s]
