"""Speed levers applied at load time, each behind a setting (see docs/performance.md for what each one buys).

- `GENERATOR_ATTENTION_BACKEND`: diffusers' attention dispatcher backend for the transformer(s). Exact up to the
  kernel's own rounding; `*_hub` backends are refused by the settings because they download kernels at run time.
- `GENERATOR_COMPILE`: `compile_repeated_blocks` (regional compilation: one compiled graph shared by every
  transformer block, so compile time stays bounded), static shapes, then warm-up renders at the profile's native
  sizes so no user request pays for compilation. Approximate: frames within a tolerance of eager, not identical.
  `auto` (the default) compiles on a CUDA device without CPU offload and falls back to eager when compiling fails
  (no C compiler, an unsupported GPU); `on` lets the failure stop the start.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from .base import RenderRequest, VideoBackend

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

WARM_UP_STEPS = 2  # enough to trace and compile every block for a shape; the step count does not change shapes
WARM_UP_PROMPT = "warm-up"


def transformers_of(pipeline: object) -> list[object]:
    """The pipeline's denoising transformer(s): Wan 2.2 has a second one for low-noise steps."""
    return [model for name in ("transformer", "transformer_2") if (model := getattr(pipeline, name, None)) is not None]


def set_attention_backend(pipeline: object, backend: str) -> None:
    """Route the transformers' attention through diffusers' `backend` ("native" leaves diffusers' default)."""
    if backend == "native":
        return
    for transformer in transformers_of(pipeline):
        transformer.set_attention_backend(backend)
    log.info("attention backend: %s", backend)


def compile_wanted(setting: str, device: torch.device, cpu_offload: bool) -> bool:
    """GENERATOR_COMPILE: `on`, `off`, or `auto` = on a CUDA device whose weights stay there (measured there)."""
    if setting == "auto":
        return device.type == "cuda" and not cpu_offload
    return setting == "on"


def compile_and_warm_up(backend: VideoBackend, *, insist: bool) -> bool:
    """Compile the blocks and warm up (compilation happens in the warm-up's first calls). If that fails and the
    setting does not `insist`, the blocks go back to eager and the service starts uncompiled. True when compiled."""
    pipeline = getattr(backend, "pipeline", backend)
    try:
        compile_blocks(pipeline)
        warm_up(backend)
    except Exception:
        if insist:
            raise
        log.warning("compiling failed; running eagerly (GENERATOR_COMPILE=off skips the attempt)", exc_info=True)
        uncompile_blocks(pipeline)
        return False
    return True


def uncompile_blocks(pipeline: object) -> None:
    """Undo `compile_blocks`: `nn.Module.compile` keeps the compiled call in `_compiled_call_impl`."""
    for transformer in transformers_of(pipeline):
        for module in transformer.modules():
            if getattr(module, "_compiled_call_impl", None) is not None:
                module._compiled_call_impl = None


def compile_blocks(pipeline: object) -> None:
    """Compile each transformer's repeated block once (fullgraph, static shapes: one graph per shape bucket)."""
    for transformer in transformers_of(pipeline):
        transformer.compile_repeated_blocks(fullgraph=True, dynamic=False)


def warm_up(backend: VideoBackend) -> dict[str, float]:
    """One short render at every native size of the profile, at the full segment length and default guidance, so
    compilation (and CUDA's lazy initialisation) happens before the first request. Returns seconds per size."""
    profile = backend.profile
    seconds = {}
    for orientation, (width, height) in profile.native_sizes.items():
        started = time.perf_counter()
        backend.render(
            RenderRequest(
                prompt=WARM_UP_PROMPT,
                width=width,
                height=height,
                num_frames=profile.max_segment_frames,
                seed=0,
                num_inference_steps=WARM_UP_STEPS,
                guidance_scale=profile.default_guidance,
            )
        )
        seconds[orientation] = time.perf_counter() - started
        log.info("warm-up %s %dx%d: %.1f s", orientation, width, height, seconds[orientation])
    cache = getattr(backend, "prompt_cache", None)
    if cache is not None:
        cache.clear()  # the warm-up prompt is not worth a slot
    return seconds
