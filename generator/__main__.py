"""`python -m generator`: serve the Videos API, render one clip from the terminal, or migrate the database."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from generator.settings import GeneratorSettings
from hanul_core.settings import SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m generator",
        description="Hanul's video generator: an OpenAI-compatible Videos API on your own GPU.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API and the GPU workers")
    serve.add_argument("--host", help="address to bind (default GENERATOR_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default GENERATOR_PORT, 8189)")
    serve.add_argument("--model", help="preset, hub id, local folder or 'tiny' (default GENERATOR_MODEL)")
    serve.add_argument("--workers", type=int, help="GPU workers in this process (0 = API only)")

    generate = commands.add_parser("generate", help="render one clip to a file, without the server")
    generate.add_argument("prompt", help="what the video shows")
    generate.add_argument("-o", "--output", type=Path, default=Path("hanul.mp4"), help="MP4 to write")
    generate.add_argument("--model", help="preset, hub id, local folder or 'tiny' (default GENERATOR_MODEL)")
    generate.add_argument("--seconds", type=float, default=4.0, help="length in seconds (default 4)")
    generate.add_argument("--size", default=None, help="WIDTHxHEIGHT, e.g. 768x512 (default: the model's)")
    generate.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    generate.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    generate.add_argument("--negative", default=None, help="what to avoid")

    commands.add_parser("models", help="list the model presets, what they need and which are downloaded")

    download = commands.add_parser("download", help="fetch a model's weights and lock the commit fetched")
    download.add_argument("model", nargs="?", help="preset or hub id (default GENERATOR_MODEL)")
    download.add_argument("--upgrade", action="store_true", help="fetch the newest commit and move the lock there")

    migrate = commands.add_parser(
        "migrate", help="upgrade the generator's tables to the newest schema and exit (the bot's are its own)"
    )
    migrate.add_argument("--revision", default="head", help="target revision (default head)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        key: value
        for key, value in {
            "GENERATOR_HOST": getattr(args, "host", None),
            "GENERATOR_PORT": getattr(args, "port", None),
            "GENERATOR_MODEL": getattr(args, "model", None),
            "GENERATOR_WORKERS": getattr(args, "workers", None),
        }.items()
        if value is not None
    }
    try:
        settings = load_settings(GeneratorSettings, **overrides)
    except SettingsError as error:
        print(f"hanul generator: {error}", file=sys.stderr)
        return 2

    from hanul_core.db import StorageError, ensure_writable_database, ensure_writable_folder

    try:
        if args.command in ("serve", "migrate"):  # before the heavy imports: the message alone, and at once
            ensure_writable_database(settings.resolved_database_url)
        if args.command == "serve":
            ensure_writable_folder(settings.videos_dir, "GENERATOR_ARTIFACTS_DIR (or HANUL_DATA_DIR)")
        return _run(args, settings)
    except StorageError as error:  # a read-only data folder or database: what to fix, not a traceback
        print(f"hanul generator: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: GeneratorSettings) -> int:
    from hanul_core.logs import configure_logging

    configure_logging(settings.log_level, [settings.api_key.get_secret_value()] if settings.api_key else [])

    if args.command == "models":
        from generator.listing import print_models

        print_models(settings)
        return 0
    if args.command == "download":
        from generator.hub import ModelUnavailable, download_model

        try:
            source = download_model(settings.model, settings.data_dir, upgrade=args.upgrade)
        except ModelUnavailable as error:
            print(f"hanul generator: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # Ctrl+C: what to do next, not a traceback
            print(
                "\nhanul generator: download interrupted; the files finished are kept: run the same command again "
                "to fetch the rest",
                file=sys.stderr,
            )
            return 130
        if source.folder is not None and source.repo is not None:
            print(f"ready: {source.repo} at {source.revision} in {source.folder}")
        return 0
    if args.command == "migrate":
        from generator.models import MIGRATIONS
        from hanul_core.db import create_engine
        from hanul_core.migrate import upgrade_database

        async def _migrate() -> None:
            engine = create_engine(settings.resolved_database_url)
            try:
                await upgrade_database(engine, MIGRATIONS, args.revision)
            finally:
                await engine.dispose()

        asyncio.run(_migrate())
        return 0
    if args.command == "serve":
        from generator.service import serve_forever

        return serve_forever(settings)
    from generator.oneshot import generate_to_file

    return generate_to_file(
        settings,
        prompt=args.prompt,
        output=args.output,
        seconds=args.seconds,
        size=args.size,
        seed=args.seed,
        steps=args.steps,
        negative_prompt=args.negative,
    )


if __name__ == "__main__":
    sys.exit(main())
