"""A running generator on the tiny model, and an openai SDK client pointed at it."""

from __future__ import annotations

import asyncio
import io
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import openai
import pytest

from generator.pipelines.base import RenderRequest, VideoBackend
from generator.service import RunningGenerator, start_generator
from generator.settings import GeneratorSettings

warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"openai\..*")
warnings.filterwarnings("ignore", message=r".*Sora API.*", category=DeprecationWarning)

_TINY: dict[str, VideoBackend] = {}


def tiny_backend() -> VideoBackend:
    """One tiny LTX backend per test session (building it takes a moment; rendering is deterministic)."""
    if "ltx" not in _TINY:
        from generator.pipelines import load_backend

        _TINY["ltx"] = load_backend(generator_settings(Path("/nonexistent")))
    return _TINY["ltx"]


def tiny_sound_backend() -> VideoBackend:
    """One tiny LTX-2 backend (video with sound) per test session."""
    if "ltx2" not in _TINY:
        from generator.pipelines import load_backend

        _TINY["ltx2"] = load_backend(generator_settings(Path("/nonexistent"), GENERATOR_MODEL="tiny-sound"))
    return _TINY["ltx2"]


def generator_settings(data_dir: Path, **overrides: Any) -> GeneratorSettings:
    values: dict[str, Any] = {
        "HANUL_DATA_DIR": str(data_dir),
        "GENERATOR_MODEL": "tiny",
        "GENERATOR_DEVICE": "cpu",
        "GENERATOR_DTYPE": "float32",
        "GENERATOR_PORT": 0,
        "GENERATOR_POLL_INTERVAL": 0.05,
        "GENERATOR_LEASE_SECONDS": 5,
    }
    values.update(overrides)
    return GeneratorSettings(**values)


class SlowBackend:
    """Wraps a backend to take `step_delay` seconds per denoising step (time to cancel), or fail on a word; renders
    with sound too when the backend has sound.

    With `gate`, every render first waits (up to a minute) until the test sets it: jobs stay open for as long as
    the test needs, however slow the machine.
    """

    def __init__(
        self,
        inner: VideoBackend,
        step_delay: float = 0.0,
        fail_on: dict[str, BaseException] | None = None,
        gate: threading.Event | None = None,
    ):
        self.inner = inner
        self.profile = inner.profile
        self.latent_rgb = getattr(inner, "latent_rgb", None)  # its previews' colours, as the worker looks them up
        self.step_delay = step_delay
        self.fail_on = fail_on or {}
        self.gate = gate
        self.prompts: list[str] = []

    def render(
        self, request: RenderRequest, on_step: Callable[[int, int], None] | None = None, preview: Any = None
    ) -> np.ndarray:
        return self.inner.render(request, self._start(request, on_step), preview)

    def render_with_sound(
        self, request: RenderRequest, on_step: Callable[[int, int], None] | None = None, preview: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.render_with_sound(request, self._start(request, on_step), preview)

    def _start(self, request: RenderRequest, on_step: Callable[[int, int], None] | None) -> Callable[[int, int], None]:
        """Wait for the gate, fail on a word, and return `on_step` slowed down."""
        if self.gate is not None:
            self.gate.wait(timeout=60)
        self.prompts.append(request.prompt)
        for word, error in self.fail_on.items():
            if word in request.prompt:
                raise error

        def slow_step(step: int, total: int) -> None:
            import time

            time.sleep(self.step_delay)
            if on_step is not None:
                on_step(step, total)

        return slow_step


class HeldRenders:
    """Wraps a backend: each render waits at its start (up to a minute) until the test sets `release`; `started` is
    set when a render has begun."""

    def __init__(self, inner: VideoBackend) -> None:
        self.inner = inner
        self.profile = inner.profile
        self.started, self.release = threading.Event(), threading.Event()

    def render(
        self, request: RenderRequest, on_step: Callable[[int, int], None] | None = None, preview: Any = None
    ) -> np.ndarray:
        self.started.set()
        assert self.release.wait(timeout=60)
        return self.inner.render(request, on_step, preview)


class RecordingBackend:
    """Wraps a backend and keeps a copy of every render's raw frames."""

    def __init__(self, inner: VideoBackend) -> None:
        self.inner = inner
        self.profile = inner.profile
        self.outputs: list[np.ndarray] = []

    def render(
        self, request: RenderRequest, on_step: Callable[[int, int], None] | None = None, preview: Any = None
    ) -> np.ndarray:
        frames = self.inner.render(request, on_step, preview)
        self.outputs.append(frames.copy())
        return frames


@asynccontextmanager
async def running_generator(
    data_dir: Path, backend: VideoBackend | None = None, **overrides: Any
) -> AsyncIterator[RunningGenerator]:
    settings = generator_settings(data_dir, **overrides)
    chosen = backend or tiny_backend()
    running = await start_generator(settings, backend_factory=lambda _settings: chosen)
    try:
        yield running
    finally:
        await running.stop()


def sdk_client(running: RunningGenerator, api_key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=running.base_url, api_key=api_key, max_retries=0, timeout=30)


@pytest.fixture
async def tiny_generator(tmp_path: Path) -> AsyncIterator[RunningGenerator]:
    """A generator with one worker on the tiny model, serving on a free port."""
    async with running_generator(tmp_path / "generator") as running:
        yield running


@pytest.fixture
async def client(tiny_generator: RunningGenerator) -> AsyncIterator[openai.AsyncOpenAI]:
    """An openai SDK client pointed at `tiny_generator`."""
    async with sdk_client(tiny_generator) as sdk:
        yield sdk


async def wait_until(predicate: Callable[[], Any], limit: float = 30.0, interval: float = 0.05) -> None:
    """Poll an async or plain predicate until it is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


async def poll(client: openai.AsyncOpenAI, video_id: str) -> Any:
    return await client.videos.poll(video_id, poll_interval_ms=50)


def probe_mp4(data: bytes) -> dict[str, Any]:
    """Codec facts and decoded frames of an MP4."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "fps": float(stream.average_rate),
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": frames,
            "faststart": data.find(b"moov") < data.find(b"mdat"),
        }
