"""Memory tiers: how a loaded pipeline is placed on the device so that it fits the card (`GENERATOR_MEMORY`).

- full: everything on the GPU (fastest).
- balanced: the text encoder stays in CPU memory and is streamed to the GPU layer by layer while it encodes (its
  embeddings are cached, so that happens once per new prompt); transformer and VAE stay on the GPU; the VAE decodes
  in tiles.
- compact: as balanced, and the transformer(s) keep their weights in float8 on the GPU, each layer cast to the
  pipeline's dtype while it computes (layerwise casting): half the transformer's memory without streaming it. A
  24 GB card holds LTX-Video 13B this way (12 GiB of weights), where balanced needs its 24 GiB in bf16. Not
  compiled: the casting hooks move weights between dtypes inside every layer's call.
- low: the transformer(s) keep their weights in float8 and compute in the pipeline's dtype (layerwise casting),
  and every part is streamed to the GPU group by group with CUDA streams overlapping copies and compute (group
  offload); the VAE decodes in tiles.

Only diffusers' own hooks are used (`enable_layerwise_casting`, `apply_group_offloading`, `enable_tiling`).
`auto` picks the fastest tier whose estimated peak (generator/catalog.py) fits the card's free memory at start.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import torch
from diffusers import DiffusionPipeline
from diffusers.hooks import apply_group_offloading

from ..catalog import GIB, TIERS, MemoryNeeds, pick_tier
from ._common import transformers_of

log = logging.getLogger(__name__)


class TierDoesNotFit(Exception):
    """The model ran out of GPU memory at start in this memory tier."""

    def __init__(self, tier: str) -> None:
        super().__init__(f"out of GPU memory in memory tier {tier}")
        self.tier = tier


def lower_tier(tier: str) -> str | None:
    """The tier that needs less memory than `tier`, or None after the last."""
    return TIERS[TIERS.index(tier) + 1] if tier in TIERS[:-1] else None


def checks_fit(device: torch.device) -> bool:
    """Whether the start renders a warm-up clip to find a tier that does not fit (on a GPU, where memory runs out)."""
    return device.type == "cuda"


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def free_gpu_memory() -> None:
    """Give the memory of what is gone back to the card (objects still referenced keep theirs)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def choose_tier(
    setting: str, device: torch.device, needs: MemoryNeeds | None, pipeline: DiffusionPipeline, fp8: bool = False
) -> str:
    """The tier to use: as configured, or for `auto` the fastest whose estimated peak fits the device's free memory
    (everything is in RAM anyway on a CPU: `full`). With `fp8` (GENERATOR_FP8) the full and balanced tiers count
    their transformers in float8: `fp8_before_placing` puts them on the GPU that way."""
    if setting != "auto":
        return setting
    if device.type != "cuda":
        return "full"
    free, _total = torch.cuda.mem_get_info(device)
    needs = needs or estimate_needs(pipeline)
    tier = pick_tier(needs, free / GIB, fp8)
    log.info(
        "memory tier auto -> %s (%.1f GiB free; estimated peaks%s: %s)",
        tier,
        free / GIB,
        " with GENERATOR_FP8" if fp8 else "",
        ", ".join(f"{name} {needs.peak_gib(name, fp8):.1f} GiB" for name in TIERS),
    )
    return tier


def fp8_hint(tier: str, device: torch.device, fp8: bool) -> str | None:
    """What to tell an admin whose card fits the model only in float8 storage (compact) but could multiply in float8
    (compute capability 8.9+: RTX 40xx, L4, L40S, Hopper): GENERATOR_FP8 would place it balanced, compiled."""
    if fp8 or tier != "compact" or device.type != "cuda" or torch.cuda.get_device_capability(device) < (8, 9):
        return None
    return (
        "memory tier compact: this GPU has FP8 tensor cores, so GENERATOR_FP8=true would keep the transformer in "
        "float8 with float8 matmuls instead (tier balanced, compiled: faster, the same memory)"
    )


def fp8_before_placing(tier: str) -> bool:
    """Whether GENERATOR_FP8 quantizes the transformer blocks as they go to the GPU, before the rest is placed (the
    tiers that keep the transformer on the GPU): the card then never holds the transformer in bf16, so a 24 GB
    Ada card (RTX 4090) runs LTX-Video 13B balanced, its float8 matmuls compiled. compact and low store the
    weights in float8 already (GENERATOR_FP8 is ignored there)."""
    return tier in ("full", "balanced")


def estimate_needs(pipeline: DiffusionPipeline) -> MemoryNeeds:
    """Memory needs of a model outside the catalog, from its parameter counts; working sets as for LTX-Video 2B
    (the one measured) scaled by the transformer's size."""

    def billions(module: object) -> float:
        if not isinstance(module, torch.nn.Module):
            return 0.0
        return sum(parameter.numel() for parameter in module.parameters()) / 1e9

    transformers = transformers_of(pipeline)
    transformer_b = sum(billions(model) for model in transformers)
    largest = max((billions(model) for model in transformers), default=0.0)
    scale = max(1.0, largest / 1.92) ** 0.5
    return MemoryNeeds(
        transformer_b=transformer_b,
        text_encoder_b=billions(getattr(pipeline, "text_encoder", None)),
        vae_b=billions(getattr(pipeline, "vae", None)),
        activations_gib=1.6 * scale,
        untiled_decode_gib=2.0,
        largest_transformer_b=largest if len(transformers) > 1 else None,
    )


SMALL_PARTS = ("connectors", "audio_vae", "vocoder")


def place(pipeline: DiffusionPipeline, tier: str, device: torch.device, compute_dtype: torch.dtype) -> None:
    """Put the pipeline's parts where `tier` says (see the module docstring)."""
    if tier == "full":
        pipeline.to(device)  # weights are already in their dtypes (Wan's VAE stays float32)
        return
    streams = device.type == "cuda"  # copies overlap compute on CUDA streams; there are none on a CPU
    vae = pipeline.vae
    vae.enable_tiling()
    text_encoder = getattr(pipeline, "text_encoder", None)
    if text_encoder is not None:
        # Leaf level, not block level: diffusers' block level groups only the `ModuleList`s that are direct children
        # of the module, and a transformers text encoder keeps its layers deeper (T5's `encoder.block`, Gemma 3's
        # `model.layers`), so block level made the whole encoder one group, copied to the GPU whole for every
        # encode (the H200 run of 2026-12-04: balanced saved 4.4 GiB of T5-XXL's 8.9; low's 9.0 GiB peak was T5-XXL).
        stream_layers(text_encoder, device, streams)
    for name in SMALL_PARTS:  # LTX-2's text connectors and sound decoders: small, they stay on the GPU
        part = getattr(pipeline, name, None)
        if part is not None:
            part.to(device)
    if tier in ("balanced", "compact"):
        for transformer in transformers_of(pipeline):
            if tier == "compact":
                store_in_float8(transformer, compute_dtype)  # cast where the weights are: the GPU never holds bf16
            transformer.to(device)
        vae.to(device)
        return
    if tier != "low":
        raise ValueError(f"unknown memory tier {tier!r}")
    for transformer in transformers_of(pipeline):
        store_in_float8(transformer, compute_dtype)  # half the bytes to stream
        stream_layers(transformer, device, streams)
    stream_layers(vae, device, streams)


def store_in_float8(transformer: torch.nn.Module, compute_dtype: torch.dtype) -> None:
    """Keep the transformer's weights in float8 and cast each layer's to `compute_dtype` while it runs (diffusers'
    layerwise casting). Its defaults keep the norms, embeddings and input/output projections in their dtype, as
    its docs recommend. Approximate: float8 keeps 3 bits of mantissa."""
    transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)


def stream_layers(module: torch.nn.Module, device: torch.device, streams: bool) -> None:
    """Keep `module`'s weights in CPU memory and put each layer's (linear, convolution, embedding) on `device` only
    while it runs; with CUDA streams the next layer's are copied meanwhile. The few weights outside such layers (the
    norms') ride with the module that holds them."""
    if streams:
        pin_in_place(module)
    apply_group_offloading(module, onload_device=device, offload_type="leaf_level", use_stream=streams)


def pin_in_place(module: torch.nn.Module) -> None:
    """Move `module`'s weights into page-locked memory one tensor at a time. diffusers' streamed offload pins a copy
    of every weight it streams and keeps the original until that weight first runs, so host RAM would hold the
    streamed parts twice from the start until the first render; it pins only what is not pinned yet
    (`Tensor.pin_memory` returns a pinned tensor itself), so after this it copies nothing."""
    for tensor in (*module.parameters(), *module.buffers()):
        if not tensor.is_pinned():
            tensor.data = tensor.data.pin_memory()


def warn_if_short_of_host_memory(needs: MemoryNeeds | None, model: str) -> None:
    """Log a warning before loading when the host's available RAM is under what the model's weights take: every tier
    loads them into host RAM first (from_pretrained), and balanced and low keep them there (pinned), so such a load
    is likely to be stopped by the system with no word from us."""
    if needs is None:
        return
    available = available_host_gib()
    wanted = needs.host_ram_gib()
    if available is not None and available < wanted:
        log.warning(
            "loading %s takes about %.0f GiB of host RAM (its weights in bf16, which the balanced and low memory "
            "tiers keep there) and %.0f GiB is available: the system may stop the load. Free memory, add swap, or "
            "pick a smaller model (python -m generator models lists what each needs)",
            model,
            wanted,
            available,
        )


def available_host_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """The host RAM available to new allocations without swapping (Linux's MemAvailable), GiB; None elsewhere."""
    return proc_gib(meminfo, "MemAvailable")


def proc_gib(path: Path, field: str) -> float | None:
    """A `field:  N kB` line of a Linux /proc file (meminfo, a process's status) in GiB; None where it is missing."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in lines if line.startswith(f"{field}:")), None)
    return None if kib is None else kib / 2**20


def weights_move(tier: str) -> bool:
    """Whether weights move during a render, between CPU and GPU (low) or between dtypes (compact): compiling then
    buys little and cannot trace the hooks that move them."""
    return tier in ("compact", "low")
