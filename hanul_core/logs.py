"""Logging for every Hanul process: configured once, with secrets scrubbed from every record."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path

# The id of the HTTP request being served (the generator's `x-request-id`), on every record logged while serving it.
REQUEST_ID: ContextVar[str | None] = ContextVar("hanul_request_id", default=None)
_RECORD_FACTORY = logging.getLogRecordFactory()

_TOKEN_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:api[_-]?key|token|authorization|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]{4,}"),
    # Discord bot tokens: three dot-separated base64url parts.
    re.compile(r"[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"),
    re.compile(r"sk-[A-Za-z0-9_-]{16,}"),
]


class SecretScrubber(logging.Filter):
    """Replaces known secrets and anything shaped like a token with `***` before a record is written."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self.scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        return True


def _record_with_request_id(*args: object, **kwargs: object) -> logging.LogRecord:
    record = _RECORD_FACTORY(*args, **kwargs)
    request_id = REQUEST_ID.get()
    record.request_id = request_id
    record.request = f" [{request_id}]" if request_id else ""
    return record


def track_request_ids() -> None:
    """Give every log record the id of the request it was logged for (`record.request_id`, None outside one), shown
    after the logger's name. Idempotent."""
    if logging.getLogRecordFactory() is not _record_with_request_id:
        logging.setLogRecordFactory(_record_with_request_id)


def configure_logging(
    level: str, secrets: Iterable[str] = (), *, log_file: Path | None = None, terminal_level: str | None = None
) -> None:
    """Set up the root logger once: the chosen level, secrets scrubbed from every record.

    Records go to stderr; with `log_file` they go there too, and stderr shows only `terminal_level` and up
    (the console front end keeps the conversation readable that way).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hanul", False):
            root.removeHandler(handler)
            handler.close()
    track_request_ids()
    formatter = logging.Formatter(
        "%(asctime)s %(levelname)-7s %(name)s%(request)s: %(message)s", defaults={"request": ""}
    )
    scrubber = SecretScrubber(secrets)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if terminal_level is not None:
        handlers[0].setLevel(terminal_level)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler._hanul = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        handler.addFilter(scrubber)
        root.addHandler(handler)
    root.setLevel(level)
    # Third-party loggers that are chatty at INFO.
    for noisy in (
        "httpx",
        "httpx2",
        "httpcore",
        "aiohttp.access",
        "discord.gateway",
        "alembic.runtime.migration",
        "alembic.runtime.plugins",
    ):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
