"""`python -m bot --console`: the same conversation as in Discord, in a terminal.

Type a request, see the expanded prompt and the progress, get the MP4's path; type more to refine the last
clip (a change of look edits it, keeping its motion), `/extend …` to continue it, `/character …` to make and use
characters. The console's member is the local admin (id 0), so no limits apply.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import mimetypes
import os
import shlex
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from bot.director.text import detect_language
from bot.i18n import CATALOGS, text
from bot.limits import Refusal, Requester
from bot.models import VIDEO_EDIT
from bot.progress import progress_line, prompt_source
from bot.runtime import GeneratorSettings, StartupError, open_runtime
from bot.settings import BotSettings
from bot.store import GenerationRecord
from bot.studio import (
    MAX_DOWNLOAD_BYTES,
    CharacterSource,
    Destination,
    Draft,
    ImageInput,
    Progress,
    StopWaiting,
    Studio,
    VideoOptions,
)
from bot.studio.drafts import MAX_IMAGE_BYTES
from bot.studio.edits import switch_to
from bot.videos import GeneratorError

CONSOLE_USER_ID = 0
QUIT_COMMANDS = ("/quit", "/exit")
# A terminal has no edit rate limit: progress is printed as soon as it changes, not at Discord's pace
# (HANUL_PROGRESS_INTERVAL, 3 s), which is longer than a whole render on a fast GPU and left 0 % the only line.
CONSOLE_REPORT_SECONDS = 0.5
log = logging.getLogger(__name__)


class Console:
    """Reads lines, drives the studio, writes what a member would see."""

    def __init__(
        self,
        studio: Studio,
        out: TextIO,
        output_dir: Path,
        *,
        poll_interval: float = 0.5,
        generator_problem: Callable[[], Awaitable[str | None]] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.studio = studio
        self.out = out
        self.output_dir = output_dir
        self.poll_interval = poll_interval
        self.generator_problem = generator_problem  # why the generator cannot render, if it cannot
        self.log_file = log_file
        self.exit_code = 0
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
        member = await self.studio.enrol(Requester(user_id=CONSOLE_USER_ID, name="console"))
        self.locale = member.reply_locale
        self.chosen_language = member.language is not None
        self.say(text("console.welcome", self.locale))

    async def handle(self, line: str) -> bool:
        """Act on one line of input; False when the member wants to leave (or nothing can be made)."""
        line = line.strip()
        if not line:
            return True
        command, _, rest = line.partition(" ") if line.startswith("/") else ("", "", line)
        if not self.chosen_language and command != "/lang" and any(character.isalpha() for character in rest):
            # A terminal has no Discord locale: answer in the language of the request, as the prompt notes do (words
            # only: "/extend 🌊🌊" or "3" is in no language, and must not switch a Korean conversation to English).
            self.locale = detect_language(rest)
        if command in QUIT_COMMANDS:
            self.say(text("console.bye", self.locale))
            return False
        return await self._safely(lambda: self._act(command, rest, line))

    async def resume(self) -> bool:
        """Make the requests left unfinished last time (the console closed while they rendered, or the generator
        could not take them): nothing a member asked for is forgotten. False when nothing can be made."""
        for record in await self.studio.open_requests(CONSOLE_USER_ID):
            self.say(text("console.resuming", self.locale, title=record.display_title))
            if not await self._safely(lambda r=record: self._finish(r)):
                return False
            self.conversation_id = record.conversation_id or self.conversation_id  # typing more refines it
        return True

    async def _safely(self, work: Callable[[], Awaitable[None]]) -> bool:
        """Run one piece of work; a refusal or a failure is said, never a traceback; False to end the session."""
        try:
            await work()
        except Refusal as refusal:
            self.say(refusal.said(self.locale))
        except StopWaiting as stop:
            log.error("the generator cannot render: %s", stop.reason)
            log_file = str(self.log_file) if self.log_file else "-"
            self.say(text("console.generator_broken", self.locale, problem=stop.reason, log=log_file))
            self.exit_code = 1
            return False
        except Exception:
            # One request going wrong must not end the session: the traceback goes to the log file.
            log.exception("console work failed")
            self.say(text("error.unexpected", self.locale, id=self.last_clip.id if self.last_clip else "-"))
        return True

    async def _act(self, command: str, rest: str, line: str) -> None:
        if command == "/help":
            self.say(text("console.welcome", self.locale))
        elif command == "/lang":
            await self._set_language(rest.strip())
        elif command == "/new":
            self.conversation_id = None
            await self._new(rest)
        elif command == "/extend":
            await self._extend(rest)
        elif command == "/image":
            await self._image(rest)
        elif command == "/character":
            await self._character(rest)
        elif command:
            self.say(text("console.unknown", self.locale, command=command))
        elif self.conversation_id is None:
            await self._new(line)
        else:
            await self._refine(line)

    async def _set_language(self, asked: str) -> None:
        language = CATALOGS.catalog_language(asked)  # "KO", "ko-KR" and "ko_kr" are Korean too
        if language is None:
            self.say(text("console.unknown", self.locale, command=f"/lang {asked}".strip()))
            return
        await self.studio.change_settings(Requester(user_id=CONSOLE_USER_ID, name="console"), language=language)
        self.locale, self.chosen_language = language, True
        self.say(text("settings.saved", self.locale))

    async def _new(self, request: str, characters: tuple[str, ...] = (), image: ImageInput | None = None) -> None:
        options = VideoOptions(characters=characters, image=image)
        draft = await self.studio.new_video(self.requester, request, options, Destination())
        self.conversation_id = draft.generation.conversation_id
        await self._render(draft)

    async def _refine(self, message: str) -> None:
        assert self.conversation_id is not None
        draft = await self.studio.refine(self.requester, self.conversation_id, message, Destination())
        if draft.summary:
            self.say(text("refine.changed", self.locale, summary=draft.summary))
        record = draft.generation
        if record.mode == VIDEO_EDIT:
            self.say(text("console.edited", self.locale))
        elif switch_to(record) == VIDEO_EDIT:
            self.say(text("console.rendered", self.locale))
        await self._render(draft)

    async def _extend(self, what_next: str) -> None:
        if self.last_clip is None:
            self.say(text("console.need_clip", self.locale))
            return
        draft = await self.studio.extend(self.requester, self.last_clip.id, what_next, Destination())
        self.say(text("extend.started", self.locale, title=self.last_clip.display_title, what=what_next.strip()))
        await self._render(draft)

    async def _image(self, rest: str) -> None:
        """`/image PATH REQUEST…`: a new video that starts from the picture at PATH, as `/video image:` does."""
        (source, *_), request = leading_words(rest, 1)
        if not source or not request:
            self.say(text("console.image_usage", self.locale))
            return
        picture = await self._read_image(source)
        if picture is not None:
            self.conversation_id = None
            await self._new(request, image=picture)

    async def _read_image(self, source: str) -> ImageInput | None:
        """The picture at `source` (a path; `~` allowed), or None after saying it cannot be read. No more is read
        than the largest picture accepted and one byte: a film or /dev/zero named by mistake is refused by its size,
        not read whole into memory."""
        path = Path(source)

        def read() -> bytes:
            with path.expanduser().open("rb") as file:
                return file.read(MAX_IMAGE_BYTES + 1)

        try:
            data = await asyncio.to_thread(read)
        except OSError:
            self.say(text("console.no_file", self.locale, path=str(path)))
            return None
        return ImageInput(path.name, data, mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    async def _character(self, rest: str) -> None:
        """`/character create NAME SOURCE [DESCRIPTION…]` (SOURCE: an image path, `clip` for the last clip, or
        `#ID`), `/character list`, `/character delete NAME`, `/character use NAME REQUEST…`."""
        (action, *_), after = leading_words(rest, 1)
        action = action.lower()
        (name, *_), words = leading_words(after, 1)  # a name may be quoted; what follows is kept as typed
        if action == "list":
            characters = await self.studio.characters(self.requester, None)
            if not characters:
                self.say(text("character.empty", self.locale))
            for character in characters:
                self.say(f"  {character.name} (#{character.id}) — {character.description}")
        elif action == "delete" and name and not words:
            deleted = await self.studio.delete_character(self.requester, name)
            self.say(text("character.deleted", self.locale, name=deleted.name))
        elif action == "use" and name and words:
            self.conversation_id = None
            await self._new(words, characters=(name,))
        elif action == "create" and name and words:
            (_, source), description = leading_words(after, 2)
            await self._create_character(name, source, description or None)
        else:
            self.say(text("console.character_usage", self.locale))

    async def _create_character(self, name: str, source: str, description: str | None) -> None:
        if source.lower() == "clip" or source.startswith("#"):
            clip_id = self.last_clip.id if source.lower() == "clip" and self.last_clip else None
            if source.startswith("#"):
                clip_id = int(source[1:]) if source[1:].isdigit() else 0
            if clip_id is None:
                self.say(text("console.need_clip", self.locale))
                return
            origin = CharacterSource(clip_id=clip_id)
        else:
            picture = await self._read_image(source)
            if picture is None:
                return
            origin = CharacterSource(image=picture)
        made = await self.studio.create_character(self.requester, name, origin, description=description)
        by = text("character.by_director" if made.described_by == "director" else "character.by_member", self.locale)
        use = f"/character use {shlex.quote(made.name)} …"
        self.say(
            text("console.character_created", self.locale, name=made.name, use=use, by=by, description=made.description)
        )

    async def _render(self, draft: Draft) -> None:
        """Show the prompt, queue the request, print progress as it changes, save the MP4."""
        record = draft.generation
        how = prompt_source(record, self.locale)
        self.say(text("prompt.show", self.locale, how=how, prompt=record.expanded_prompt))
        if draft.notice:
            self.say(text("prompt.notice", self.locale, notice=draft.notice))
        await self._check_generator()  # a model that failed to load is said now, not after a timeout
        try:
            record = await self.studio.submit(record)
        except GeneratorError:
            # Not taken: a generator that cannot render at all is said at once; one that is away is waited for,
            # `follow` trying to queue the request again.
            await self._check_generator()
            self.say(text("status.waiting", self.locale, title=record.display_title))
        await self._follow_and_save(record)

    async def _finish(self, record: GenerationRecord) -> None:
        await self._check_generator()
        await self._follow_and_save(record)

    async def _check_generator(self) -> None:
        problem = await self.generator_problem() if self.generator_problem is not None else None
        if problem:
            raise StopWaiting(problem)

    async def _follow_and_save(self, record: GenerationRecord) -> None:
        """Follow one request to its end, printing progress, and save its MP4."""

        async def report(progress: Progress) -> None:
            if not progress.state.finished:
                self.say("  " + progress_line(record.display_title, progress.state, self.locale))

        async def unreachable(current: GenerationRecord, error: GeneratorError, delay: float) -> None:
            await self._check_generator()

        outcome = await self.studio.follow(
            record,
            report,
            poll_interval=self.poll_interval,
            on_unreachable=unreachable,
            report_interval=CONSOLE_REPORT_SECONDS,
        )
        if outcome.too_big is not None:
            limit = f"{MAX_DOWNLOAD_BYTES // (1024 * 1024)} MiB"
            error = text("console.too_big", self.locale, limit=limit)
            self.say(text("status.failed", self.locale, title=record.display_title, error=error))
            await self.studio.fail(record, f"the clip is larger than {limit}")
            return
        if outcome.video is None:
            key = "status.cancelled" if outcome.cancelled else "status.failed"
            self.say(text(key, self.locale, title=record.display_title, error=outcome.error or ""))
            return
        path = self.output_dir / f"hanul-{record.id}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(outcome.video)
        await self.studio.mark_posted(record, None)
        self.last_clip = await self.studio.current(record)
        sound = self.last_clip is not None and self.last_clip.params.get("has_audio") is True
        self.say(text("console.saved_with_sound" if sound else "console.saved", self.locale, path=str(path)))


def leading_words(line: str, count: int) -> tuple[list[str], str]:
    """The first `count` words of `line`, quoted as in a shell (a path or a name with spaces; "" for each one
    missing), and the rest as typed, so that a request keeps its apostrophes ("a cat's kite"). An unclosed quote
    among those words: no words."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split, lexer.commenters = True, ""  # "#12" names a clip
    try:
        words = [lexer.get_token() or "" for _ in range(count)]
    except ValueError:
        return [""] * count, ""
    return words, lexer.instream.read().strip()


class _Lines:
    """What is typed at the terminal, read by a daemon thread: the event loop never blocks on the terminal, and
    leaving never waits for one more Enter. `quit` is set as soon as /quit arrives, even while work runs."""

    def __init__(self, stdin: TextIO, loop: asyncio.AbstractEventLoop) -> None:
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.quit = asyncio.Event()
        self._loop = loop
        threading.Thread(target=self._read, args=(stdin,), name="hanul-console-input", daemon=True).start()

    def _read(self, stdin: TextIO) -> None:
        try:
            for line in iter(stdin.readline, ""):
                self._loop.call_soon_threadsafe(self._arrived, line)
        except (OSError, ValueError):  # the terminal went away
            pass
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(self._arrived, None)

    def _arrived(self, line: str | None) -> None:
        if line is not None and line.strip() in QUIT_COMMANDS:
            self.quit.set()
        self.queue.put_nowait(line)


async def console_main(
    settings: BotSettings,
    stdin: TextIO,
    stdout: TextIO,
    generator_settings: GeneratorSettings | None = None,
    *,
    poll_interval: float = 0.5,
    interrupt: bool | None = None,
) -> int:
    """Open the runtime, make what was left unfinished, then read requests until EOF or /quit.

    `interrupt` (default: when reading a terminal): /quit stops waiting for a render at once, the request saved
    for the next start; with piped input every line is handled in turn."""
    try:
        runtime = await open_runtime(settings, generator_settings)
    except StartupError as error:
        stdout.write(f"hanul: {error}\n")
        stdout.flush()
        return 2
    if interrupt is None:
        interrupt = stdin.isatty()
    try:
        console = Console(
            runtime.studio,
            stdout,
            settings.data_dir / "console",
            poll_interval=poll_interval,
            generator_problem=runtime.generator_problem,
            log_file=console_log_file(settings),
        )
        await console.start()
        lines = _Lines(stdin, asyncio.get_running_loop())

        async def step(work: Awaitable[bool]) -> bool:
            """Do one piece of work; with `interrupt`, /quit ends the wait for it."""
            if not interrupt:
                return await work
            task, quitting = asyncio.ensure_future(work), asyncio.ensure_future(lines.quit.wait())
            try:
                done, _ = await asyncio.wait({task, quitting}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                quitting.cancel()
            if task in done:
                return task.result()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            console.say(text("console.bye_saved", console.locale))
            return False

        if not await step(console.resume()):
            return console.exit_code
        while True:
            stdout.write("> ")
            stdout.flush()
            line = await lines.queue.get()
            if line is None:
                stdout.write("\n")
                return console.exit_code
            if not await step(console.handle(line)):
                return console.exit_code
    finally:
        await runtime.close()


def console_log_file(settings: BotSettings) -> Path:
    """Where the console's log goes (the terminal shows the conversation only)."""
    return settings.data_dir / "hanul-console.log"


def run_console(
    settings: BotSettings,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    generator_settings: GeneratorSettings | None = None,
) -> int:
    """The `--console` entry point; returns the process exit code."""
    stdin = stdin or sys.stdin or io.StringIO()  # closed (`<&-`): nothing to read
    stdout = stdout or sys.stdout or open(os.devnull, "w", encoding="utf-8")  # closed (`>&-`)
    for stream in (stdin, stdout):
        # A terminal that is not UTF-8 (ISO-8859-1, a Windows code page) shows "?" for what it cannot show, rather
        # than ending the console on the first Korean word or emoji; bytes typed or piped in another encoding
        # (a CP949 file) read as "�", rather than ending the input there.
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="replace")  # type: ignore[attr-defined]
    try:
        return asyncio.run(console_main(settings, stdin, stdout, generator_settings))
    except KeyboardInterrupt:
        return 130
