"""`python -m generator generate`: render one clip straight to a file, with a progress bar, no server."""

from __future__ import annotations

import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from generator.errors import APIError
from generator.hub import ModelUnavailable
from generator.media import EncodeError, parts, writing
from generator.params import CreateVideoBody, parse_body, plan_render, plan_size
from generator.pipelines import load_backend
from generator.render import render_video
from generator.settings import GeneratorSettings
from generator.yuv import conversion_device


def _progress_bar(fraction: float, started: float, width: int = 30) -> str:
    filled = int(fraction * width)
    elapsed = time.perf_counter() - started
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}%  {elapsed:6.1f} s"


def _cannot_write(output: Path) -> str | None:
    """Why no MP4 can be written at `output` (a read-only folder, a directory in its place), or None; leaves no file."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        existed = output.exists()
        with output.open("ab"):
            pass
        if not existed:
            output.unlink()
    except OSError as error:
        return error.strerror or str(error)
    return None


def generate_to_file(
    settings: GeneratorSettings,
    *,
    prompt: str,
    output: Path,
    seconds: float,
    size: str | None,
    seed: int | None,
    steps: int | None,
    negative_prompt: str | None,
) -> int:
    """Validate like the API does, render with the configured model, write the MP4; 0 on success."""
    try:
        body = parse_body(
            CreateVideoBody,
            {
                "prompt": prompt,
                "seconds": seconds,
                "size": size,
                "seed": seed,
                "num_inference_steps": steps,
                "negative_prompt": negative_prompt,
            },
        )
    except APIError as error:
        print(f"hanul generate: {error.message}", file=sys.stderr)
        return 2
    problem = _cannot_write(output)
    if problem is not None:  # said now, not after the model loaded and the clip rendered
        print(f"hanul generate: cannot write {output}: {problem}", file=sys.stderr)
        return 2
    print(f"Loading {settings.model} …", file=sys.stderr, flush=True)
    try:
        backend = load_backend(settings)
    except ModelUnavailable as error:
        print(f"hanul generate: {error}", file=sys.stderr)
        return 1
    try:
        plan = plan_render(
            body,
            profile=backend.profile,
            seconds=seconds,
            # The command line keeps its landscape default (the API's is the spec's, portrait 720x1280).
            size=plan_size(size, backend.profile) if size else backend.profile.native_sizes["landscape"],
            default_max_bytes=settings.default_max_bytes,
            max_seconds=settings.max_seconds,
        )
    except APIError as error:
        print(f"hanul generate: {error.message}", file=sys.stderr)
        return 2
    spec = plan.spec(body.prompt, body.negative_prompt, secrets.randbelow(2**31) if body.seed is None else body.seed)
    started = time.perf_counter()
    output.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hanul-encode") as pool:
        # Encoded on a second thread while later segments render, as the service does.
        writer = parts.mp4_writer(
            output,
            plan.fps,
            parts=settings.mp4_parts,
            total_frames=plan.num_frames,
            preset=settings.mp4_preset,
            convert_on=conversion_device(backend),
        )
        along = writing.EncodeAlong(pool, writer)
        try:
            rendered = render_video(
                backend,
                spec,
                lambda f: print(_progress_bar(f, started), end="", file=sys.stderr, flush=True),
                along.add,
            )
            along.end()
            along.encoded.result()
            encoded = along.writer.finish(plan.max_bytes)
        finally:
            along.abort()  # nothing, or what an interrupted render or a failed encode left
    print(_progress_bar(1.0, started), file=sys.stderr)
    if encoded is None:  # over the byte cap: encoded again smaller, without repeating the first attempt
        try:
            encoded = writing.encode_mp4(
                rendered.frames,
                plan.fps,
                output,
                plan.max_bytes,
                preset=settings.mp4_preset,
                crf_size=along.writer.size_bytes,
            )
        except EncodeError as error:
            print(f"hanul generate: {error} (GENERATOR_MAX_BYTES is {plan.max_bytes})", file=sys.stderr)
            return 1
    print(
        f"{output}: {encoded.width}x{encoded.height}, {len(rendered.frames)} frames at {plan.fps} fps, "
        f"{encoded.size_bytes / 1024:.0f} KiB, seed {spec.seed}, {time.perf_counter() - started:.1f} s"
    )
    return 0
