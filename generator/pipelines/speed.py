"""Speed levers applied at load time, each behind a setting (see docs/performance.md for what each one buys).

- `GENERATOR_ATTENTION_BACKEND`: diffusers' attention dispatcher backend for the transformer(s), or Hanul's
  `cudnn_first` (torch's SDPA trying cuDNN's kernels first). Exact up to the kernel's own rounding; `*_hub` backends
  are refused by the settings because they download kernels at run time.
- `GENERATOR_COMPILE`: `compile_repeated_blocks` (regional compilation: one compiled graph shared by every
  transformer block, so compile time stays bounded), static shapes, then warm-up renders at the profile's native
  sizes so no user request pays for compilation. Approximate: frames within a tolerance of eager, not identical.
  `auto` (the default) compiles on a CUDA device without CPU offload and falls back to eager when compiling fails
  (no C compiler, an unsupported GPU); `on` lets the failure stop the start.
- `GENERATOR_FIRST_BLOCK_CACHE` (approximate, off by default): diffusers' FirstBlockCache. Each step runs the first
  block; when its output changed less than the threshold since the last full step, the other blocks are skipped
  and their last residual is reused. Its skip decision is data-dependent, so compiled blocks are then compiled
  without `fullgraph` (the decision stays eager between graphs).
- `GENERATOR_FP8` (approximate, off by default): float8 matmuls in the transformer blocks, see fp8.py.
- `GENERATOR_GUIDANCE_STOP` (approximate, off by default): guidance on the first part of the steps, see guidance.py.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import torch

from ._common import repeated_blocks, transformers_of
from .base import RenderRequest, VideoBackend
from .memory import is_out_of_memory

log = logging.getLogger(__name__)

WARM_UP_STEPS = 2  # enough to trace and compile every block for a shape; the step count does not change shapes
WARM_UP_PROMPT = "warm-up"
RECOMPILE_LIMIT = 64  # compiled variants of the shared block code (see compile_blocks)


SAGE_VERSION = "2.1.1"  # diffusers' minimum for its `sage` backends; PyPI has only 1.0.6 (2.x builds from source)
CUDNN_FIRST = "cudnn_first"  # Hanul's own setting value, beside diffusers' backend names (settings.py)


def set_attention_backend(pipeline: object, backend: str) -> None:
    """Route the transformers' attention through diffusers' `backend` ("native" leaves diffusers' default; Hanul's
    `cudnn_first` leaves it too and sets torch's kernel order, see `prefer_cudnn_attention`).

    SageAttention (`sage`, `sage_varlen`, `_sage_*`: approximate, 8-bit attention) is checked first (the package at
    diffusers' minimum version, a CUDA device) with a message naming the setting. Its kernels take no attention
    mask, and LTX-Video's cross-attention passes its prompt's: such backends go on the self-attention layers
    (`attn1`: video tokens × video tokens, nearly all the attention work) and the cross-attention stays on torch
    SDPA."""
    prefer_cudnn_attention(backend == CUDNN_FIRST)
    if backend == "native":
        return
    if backend == CUDNN_FIRST:
        log.info("attention: torch SDPA with cuDNN's kernels tried first")
        return
    if _is_sage(backend):
        check_sage(_device_of(pipeline))
        for transformer in transformers_of(pipeline):
            self_attention_backend(transformer, backend)
    else:
        for transformer in transformers_of(pipeline):
            transformer.set_attention_backend(backend)
    log.info("attention backend: %s", backend)


_cudnn_first: contextlib.ExitStack | None = None  # holds torch's kernel order while cudnn_first is set
_cudnn_first_lock = threading.Lock()  # GPU workers load on their own threads


def prefer_cudnn_attention(prefer: bool) -> None:
    """Put cuDNN first in the order torch's `scaled_dot_product_attention` tries its kernels (`prefer`), or give
    torch back its own order (FlashAttention 2, memory-efficient, math, cuDNN last).

    On Hopper (H100, H200) cuDNN's attention kernels run at about twice FlashAttention 2's speed (PyTorch issue
    142132: 631 against 329 TFLOP/s at 4608 tokens × 128; transformers' PR 48163 prefers them on Hopper only, being
    slower on Ampere and Blackwell). A preference, not a restriction: a call cuDNN cannot take (a shape, a mask, a
    CPU) falls back in torch's order. Unlike diffusers' `_native_cudnn` it adds no copies and forces nothing on the
    masked cross-attention. The order is torch's process-wide setting, read when a kernel is chosen and when a
    compiled graph is traced: set it before compiling (load_backend does)."""
    global _cudnn_first
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with _cudnn_first_lock:
        if prefer and _cudnn_first is None:
            held = contextlib.ExitStack()
            held.enter_context(sdpa_kernel(order, set_priority=True))
            _cudnn_first = held
        elif not prefer and _cudnn_first is not None:
            _cudnn_first.close()
            _cudnn_first = None


def cudnn_attention_preferred() -> bool:
    """Whether `prefer_cudnn_attention` holds torch's kernel order now."""
    return _cudnn_first is not None


def check_sage(device: torch.device | None) -> None:
    """Raise a clear error unless diffusers can run SageAttention here: the `sageattention` package at diffusers'
    minimum version, and a CUDA GPU (its kernels are Triton/CUDA only)."""
    from diffusers.utils import is_sageattention_available, is_sageattention_version

    missing = []
    if not is_sageattention_available():
        missing.append(f"the sageattention package >= {SAGE_VERSION} (not installed)")
    elif not is_sageattention_version(">=", SAGE_VERSION):
        import importlib.metadata

        installed = importlib.metadata.version("sageattention")
        missing.append(f"the sageattention package >= {SAGE_VERSION} ({installed} is installed; PyPI has only 1.x)")
    if device is None or device.type != "cuda":
        missing.append(f"a CUDA GPU (the model is on {device})")
    if missing:
        raise RuntimeError(
            f"GENERATOR_ATTENTION_BACKEND=sage needs {' and '.join(missing)}; SageAttention 2 is built from its "
            "source (github.com/thu-ml/SageAttention). Set GENERATOR_ATTENTION_BACKEND=native."
        )


def self_attention_backend(transformer: torch.nn.Module, backend: str) -> int:
    """Put diffusers' `backend` on the transformer's self-attention layers only (modules named `attn1`), leaving the
    others on the default; returns how many layers changed. What `ModelMixin.set_attention_backend` does, per layer,
    without making the backend the process-wide default."""
    from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

    name = AttentionBackendName(backend)
    _check_attention_backend_requirements(name)
    changed = 0
    for module_name, module in transformer.named_modules():
        processor = getattr(module, "processor", None)
        if module_name.rsplit(".", 1)[-1] == "attn1" and hasattr(processor, "_attention_backend"):
            processor._attention_backend = name
            changed += 1
    if not changed:
        raise ValueError(f"{type(transformer).__name__} has no self-attention layers (attn1) for {backend}")
    return changed


def _is_sage(backend: str) -> bool:
    return backend.startswith(("sage", "_sage"))


def _device_of(pipeline: object) -> torch.device | None:
    """Where the pipeline runs (its execution device also under CPU offload)."""
    try:
        return pipeline._execution_device
    except AttributeError:
        transformers = transformers_of(pipeline)
        return next(transformers[0].parameters()).device if transformers else None


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
    except Exception as error:
        if insist or is_out_of_memory(error):  # running out of memory is the tier's doing, not the compiler's
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


def compile_blocks(pipeline: object, **options: object) -> None:
    """Compile each transformer's repeated block once (static shapes: one graph per shape bucket). Whole graphs
    (`fullgraph`) unless a step cache sits in the blocks: its skip decision has to run between graphs. `options`
    go to `torch.compile` (tests pass a backend that skips code generation)."""
    # Every block shares one compiled code object; each shape, guidance mode, step-cache path and device adds a
    # variant to it. torch's default limit (8) would send the rarer ones back to eager; a server has a bounded set.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    for transformer in transformers_of(pipeline):
        fullgraph = not getattr(transformer, "is_cache_enabled", False)
        transformer.compile_repeated_blocks(fullgraph=fullgraph, dynamic=False, **options)


# VAEs whose decoder is one pass over the whole latent video (no per-frame cache), so one static graph per size.
# Wan's VAE decodes a latent frame at a time with a feature cache kept in Python lists: not compiled.
WHOLE_PASS_DECODERS = ("AutoencoderKLLTXVideo", "AutoencoderKLLTX2Video")


def compile_decoder_and_text_encoder(pipeline: object, **options: object) -> list[str]:
    """Compile the VAE's decoder and the text encoder too, each whole with static shapes (the prompt is padded to
    one length, and a decoder sees one latent shape per native size, so the warm-up compiles them all). Returns the
    names of the parts compiled.

    Not part of GENERATOR_COMPILE yet: the H200 measured the distilled clip's VAE decode at 0.16 s and its text
    encoding at 0.05 s (T5-XXL, a new prompt) beside a 0.47 s denoise, so together they are a third of the GPU
    work the ≤ 0.8 s goal leaves; the GPU session's line `compiled_8_steps_no_guidance_decoder_text_compiled`
    says what compiling them saves, against its compile time at start-up. `options` go to `torch.compile`."""
    compiled = []
    vae = getattr(pipeline, "vae", None)
    if type(vae).__name__ in WHOLE_PASS_DECODERS:
        vae.decoder.compile(dynamic=False, fullgraph=True, **options)
        compiled.append("vae.decoder")
    text_encoder = getattr(pipeline, "text_encoder", None)
    if isinstance(text_encoder, torch.nn.Module):
        text_encoder.compile(dynamic=False, **options)  # transformers' models may break graphs (masks, caches)
        compiled.append("text_encoder")
    return compiled


def uncompile_decoder_and_text_encoder(pipeline: object) -> None:
    """Undo `compile_decoder_and_text_encoder`."""
    for module in (getattr(getattr(pipeline, "vae", None), "decoder", None), getattr(pipeline, "text_encoder", None)):
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None


def enable_first_block_cache(pipeline: object, threshold: float) -> None:
    """diffusers' FirstBlockCache on each transformer: skip the blocks after the first while the first block's
    output changes by less than `threshold` (relative mean absolute difference) from the last computed step."""
    from diffusers.hooks import FirstBlockCacheConfig

    for transformer in transformers_of(pipeline):
        blocks = repeated_blocks(transformer)
        if len(blocks) < 2 or not hasattr(transformer, "enable_cache"):
            raise ValueError(
                f"GENERATOR_FIRST_BLOCK_CACHE needs a transformer with diffusers' cache support and at least two "
                f"blocks; {type(transformer).__name__} has {len(blocks)}"
            )
        transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
    log.info("first-block cache: threshold %g", threshold)


def disable_first_block_cache(pipeline: object) -> None:
    """Undo `enable_first_block_cache` (compiled blocks must be compiled again: their graphs had the hooks)."""
    for transformer in transformers_of(pipeline):
        if getattr(transformer, "is_cache_enabled", False):
            transformer.disable_cache()


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
