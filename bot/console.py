"""`python -m bot --console`: the same conversation as in Discord, in a terminal.

Type a request, see the expanded prompt and the progress, get the MP4's path; type more to refine the last
clip, `/extend …` to continue it. The console's member is the local admin (id 0), so no limits apply.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import TextIO

from bot.director.text import detect_language
from bot.i18n import LANGUAGES, text
from bot.limits import Refusal, Requester
from bot.progress import progress_line, prompt_source
from bot.runtime import open_runtime
from bot.settings import BotSettings
from bot.store import GenerationRecord
from bot.studio import MAX_DOWNLOAD_BYTES, Destination, Job, Progress, Studio, VideoOptions
from bot.videos import GeneratorError
from generator.settings import GeneratorSettings

CONSOLE_USER_ID = 0
log = logging.getLogger(__name__)


class Console:
    """Reads lines, drives the studio, writes what a member would see."""

    def __init__(self, studio: Studio, out: TextIO, output_dir: Path, *, poll_interval: float = 0.5) -> None:
        self.studio = studio
        self.out = out
        self.output_dir = output_dir
        self.poll_interval = poll_interval
        self.locale: str | None = None
        self.chosen_language = False  # with /lang (kept in the store); else replies follow what the member writes
        self.conversation_id: int | None = None
        self.last_clip: GenerationRecord | None = None

    @property
    def requester(self) -> Requester:
        return Requester(user_id=CONSOLE_USER_ID, name="console", locale=self.locale, operator=True)

    def say(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    async def start(self) -> None:
        member = await self.studio.store.ensure_member(CONSOLE_USER_ID, "console")
        self.locale = member.reply_locale
        self.chosen_language = member.language is not None
        self.say(text("console.welcome", self.locale))

    async def handle(self, line: str) -> bool:
        """Act on one line of input; False when the member wants to leave."""
        line = line.strip()
        if not line:
            return True
        command, _, rest = line.partition(" ") if line.startswith("/") else ("", "", line)
        if not self.chosen_language and rest.strip():
            # A terminal has no Discord locale: answer in the language of the request, as the prompt notes do.
            self.locale = detect_language(rest)
        try:
            if command in ("/quit", "/exit"):
                self.say(text("console.bye", self.locale))
                return False
            if command == "/help":
                self.say(text("console.welcome", self.locale))
            elif command == "/lang":
                await self._set_language(rest.strip())
            elif command == "/new":
                self.conversation_id = None
                await self._new(rest)
            elif command == "/extend":
                await self._extend(rest)
            elif command:
                self.say(text("console.unknown", self.locale, command=command))
            elif self.conversation_id is None:
                await self._new(line)
            else:
                await self._refine(line)
        except Refusal as refusal:
            self.say("⚠️ " + text(f"refusal.{refusal.code}", self.locale, **{"detail": "", "id": "?", **refusal.values}))
        except Exception:
            # One request going wrong must not end the session: the traceback goes to the log file.
            log.exception("console request %r failed", line[:80])
            self.say(text("error.unexpected", self.locale, id=self.last_clip.id if self.last_clip else "-"))
        return True

    async def _set_language(self, language: str) -> None:
        if language not in LANGUAGES:
            self.say(text("console.unknown", self.locale, command=f"/lang {language}"))
            return
        await self.studio.store.update_member(CONSOLE_USER_ID, language=language)
        self.locale, self.chosen_language = language, True
        self.say(text("settings.saved", self.locale))

    async def _new(self, request: str) -> None:
        job = await self.studio.new_video(self.requester, request, VideoOptions(), Destination())
        self.conversation_id = job.generation.conversation_id
        await self._render(job)

    async def _refine(self, message: str) -> None:
        assert self.conversation_id is not None
        job = await self.studio.refine(self.requester, self.conversation_id, message, Destination())
        if job.summary:
            self.say(text("refine.changed", self.locale, summary=job.summary))
        await self._render(job)

    async def _extend(self, what_next: str) -> None:
        if self.last_clip is None:
            self.say(text("console.need_clip", self.locale))
            return
        job = await self.studio.extend(self.requester, self.last_clip.id, what_next, Destination())
        self.say(text("extend.started", self.locale, title=self.last_clip.display_title, what=what_next.strip()))
        await self._render(job)

    async def _render(self, job: Job) -> None:
        """Show the prompt, queue the job, print progress as it changes, save the MP4."""
        record = job.generation
        how = prompt_source(record, self.locale)
        self.say(text("prompt.show", self.locale, how=how, prompt=record.expanded_prompt))
        if job.notice:
            self.say(text("prompt.notice", self.locale, notice=job.notice))
        try:
            await self.studio.submit(record.id)
        except GeneratorError:
            # Unreachable: the request stays saved and `follow` keeps trying to queue it.
            self.say(text("status.waiting", self.locale, title=record.display_title))

        async def report(progress: Progress) -> None:
            if not progress.state.finished:
                self.say("  " + progress_line(record.display_title, progress.state, self.locale))

        outcome = await self.studio.follow(record.id, report, poll_interval=self.poll_interval)
        if outcome.too_big is not None:
            limit = f"{MAX_DOWNLOAD_BYTES // (1024 * 1024)} MiB"
            error = text("console.too_big", self.locale, limit=limit)
            self.say(text("status.failed", self.locale, title=record.display_title, error=error))
            await self.studio.store.mark_failed(record.id, f"the clip is larger than {limit}")
            return
        if outcome.video is None:
            key = "status.cancelled" if outcome.cancelled else "status.failed"
            self.say(text(key, self.locale, title=record.display_title, error=outcome.error or ""))
            return
        path = self.output_dir / f"hanul-{record.id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(outcome.video)
        await self.studio.store.mark_posted(record.id, None)
        self.last_clip = await self.studio.store.generation(record.id)
        self.say(text("console.saved", self.locale, path=str(path)))


async def console_main(
    settings: BotSettings,
    stdin: TextIO,
    stdout: TextIO,
    generator_settings: GeneratorSettings | None = None,
    *,
    poll_interval: float = 0.5,
) -> int:
    """Open the runtime, then read requests until EOF or /quit."""
    runtime = await open_runtime(settings, generator_settings)
    try:
        console = Console(runtime.studio, stdout, settings.data_dir / "console", poll_interval=poll_interval)
        await console.start()
        loop = asyncio.get_running_loop()
        while True:
            stdout.write("> ")
            stdout.flush()
            # Reading the terminal blocks; a thread keeps the loop (and the in-process generator) running.
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                stdout.write("\n")
                return 0
            if not await console.handle(line):
                return 0
    finally:
        await runtime.close()


def run_console(
    settings: BotSettings,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    generator_settings: GeneratorSettings | None = None,
) -> int:
    """The `--console` entry point; returns the process exit code."""
    try:
        return asyncio.run(console_main(settings, stdin or sys.stdin, stdout or sys.stdout, generator_settings))
    except KeyboardInterrupt:
        return 130
