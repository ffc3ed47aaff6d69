"""`python -m bot`: run the Discord bot (and, with no GENERATOR_URL, the generator beside it)."""

from __future__ import annotations

import argparse
import sys

from bot.settings import BotSettings
from hanul_core.settings import SettingsError, load_settings

NO_TOKEN_HELP = """\
hanul: DISCORD_TOKEN is not set, so the Discord bot cannot start.

  To run on Discord: create an application at https://discord.com/developers/applications,
  add a bot, copy its token into .env as DISCORD_TOKEN=..., and run this again.
  To try Hanul without Discord:  python -m bot --console   (or: make console)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Hanul: a text-to-video assistant for Discord, rendering on your own GPU.",
    )
    parser.add_argument(
        "--console", action="store_true", help="chat in this terminal instead of Discord (no token needed)"
    )
    parser.add_argument(
        "--migrate",
        action="store_true",
        help="upgrade the bot's tables (and the in-process generator's) to the newest schema and exit",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(BotSettings)
    except SettingsError as error:
        print(f"hanul: {error}", file=sys.stderr)
        return 2

    if not args.migrate and not settings.generator_url:
        # The generator started beside the bot reads its own variables: check them now, before Discord or the
        # database is touched, and say which one is wrong as `python -m generator` does.
        from bot.runtime import generator_settings_for

        try:
            generator_settings_for(settings)
        except SettingsError as error:
            print(f"hanul: {error}", file=sys.stderr)
            return 2

    from hanul_core.logs import configure_logging

    if args.console:
        # The conversation owns the terminal: the log goes to a file; the console itself says what went wrong.
        from bot.console import console_log_file

        log_file = console_log_file(settings)
        configure_logging(settings.log_level, settings.secrets(), log_file=log_file, terminal_level="CRITICAL")
    else:
        configure_logging(settings.log_level, settings.secrets())

    if args.migrate:
        import asyncio

        from bot.runtime import migrate_database

        asyncio.run(migrate_database(settings))
        return 0
    if args.console:
        from bot.console import run_console

        return run_console(settings)
    if settings.discord_token is None:
        print(NO_TOKEN_HELP, file=sys.stderr)
        return 2
    from bot.app import run_bot

    return run_bot(settings)


if __name__ == "__main__":
    sys.exit(main())
