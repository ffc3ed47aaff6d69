"""Settings every Hanul service shares, and how any service's settings are read: once, from the environment and
`.env`, with one readable message for whatever is wrong."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class CoreSettings(BaseSettings):
    """Where Hanul keeps its data, how it logs: the part every service shares."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), validation_alias="HANUL_DATA_DIR")
    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    log_level: LogLevel = Field(default="INFO", validation_alias="LOG_LEVEL")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (an async driver), "
                f"got {value.split('://', 1)[0]!r}"
            )
        return value

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or a SQLite file inside the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hanul.db').resolve()}"


class SettingsError(Exception):
    """A setting has a bad value; the message names the environment variable and what is wrong."""


def load_settings(cls: type[S], **overrides: object) -> S:
    """Read `cls` from the environment and `.env`, turning validation errors into one readable message."""
    from pydantic import ValidationError

    try:
        return cls(**overrides)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            name = ".".join(str(part) for part in problem["loc"][:1]) or "settings"
            value = problem.get("input")
            # A validator's ValueError without pydantic's "Value error, " in front of it.
            message = str(problem["ctx"]["error"]) if problem["type"] == "value_error" else problem["msg"]
            # Said once: a validator's own message may already quote what it got (only the safe part of it).
            quoted = isinstance(value, dict) or value is None or "got " in message
            shown = "" if quoted else f" (got {_without_password(str(value))[:60]!r})"
            lines.append(f"{name}: {message}{shown}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def _without_password(value: str) -> str:
    """`scheme://user:secret@host` → `scheme://user:***@host`: an error message must not print a password."""
    return re.sub(r"(://[^/@:]*:)[^/]*@", r"\1***@", value)
