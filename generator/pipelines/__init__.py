"""Video backends: `load_backend(settings)` picks the model family, loads the pipeline and places it on a device."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

from ..catalog import find_preset
from ..hub import ModelSource, ModelUnavailable, pipeline_class_in, resolve_model
from ..settings import GeneratorSettings
from . import memory
from .base import ModelProfile, ProgressCallback, RenderCancelled, RenderRequest, VideoBackend
from .latent_rgb import fit_backend_latent_rgb
from .tiny import PROFILE_FILE, TINY_LTX_PROFILE, TINY_NAME, TINY_SOUND_NAME, TINY_SOUND_PROFILE, TINY_WAN_PROFILE

__all__ = [
    "ModelProfile",
    "ProgressCallback",
    "RenderCancelled",
    "RenderRequest",
    "VideoBackend",
    "detect_family",
    "load_backend",
    "resolve_device",
    "resolve_dtype",
]

log = logging.getLogger(__name__)

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_device(setting: str) -> torch.device:
    """`auto` is the first CUDA GPU when there is one, else the CPU; `cuda` or `cuda:N` only where torch sees that GPU
    (ModelUnavailable says why not: a CPU build of torch, no driver, fewer GPUs)."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(setting)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        why = (
            "this torch is a CPU build (make clean && make run installs the CUDA one)"
            if torch.version.cuda is None
            else "torch sees no GPU (is the NVIDIA driver installed? nvidia-smi says)"
        )
        raise ModelUnavailable(f"GENERATOR_DEVICE={setting}: {why}; GENERATOR_DEVICE=cpu renders on the CPU (slowly)")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ModelUnavailable(
            f"GENERATOR_DEVICE={setting}: this machine has {count} GPU{'s' if count > 1 else ''} "
            f"(cuda:0{f' … cuda:{count - 1}' if count > 1 else ''})"
        )
    return device


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    """`auto` is bfloat16 on a GPU (what LTX and Wan are trained in) and float32 on the CPU (bf16 is slow there)."""
    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[setting]


def detect_family(model: str, configured: str = "auto", folder: Path | None = None) -> str:
    """`ltx`, `ltx2` (LTX-2: video with sound) or `wan`: as configured, else the preset's, else from the folder's
    `model_index.json`, else from the name."""
    if configured != "auto":
        return configured
    preset = find_preset(model)
    if preset is not None:
        return preset.family
    class_name = pipeline_class_in(folder or Path(model))
    for family, marker in (("ltx2", "ltx2"), ("ltx", "ltx"), ("wan", "wan")):
        if marker in class_name.lower():
            return family
    name = model.lower()
    if model == TINY_SOUND_NAME or "ltx-2" in name or "ltx2" in name:
        return "ltx2"
    if model == TINY_NAME or "ltx" in name:
        return "ltx"
    if "wan" in name:
        return "wan"
    raise ValueError(f"cannot tell the model family of {model!r}; set GENERATOR_MODEL_FAMILY to ltx, ltx2 or wan")


def load_backend(settings: GeneratorSettings) -> VideoBackend:
    """Load the configured model (preset, hub id, local folder or `tiny`) and return a backend ready to render.

    Hub models load from the folder of their locked commit (generator/hub.py): nothing is downloaded here, and a
    model that is not on this machine raises `ModelNotDownloaded` with the command that fetches it.

    On a GPU the backend first renders a short clip at each native size and the longest segment (the warm-up), so
    a memory tier that does not fit the card is found before any member waits on it: `auto` (whose choice rests on
    estimates for most presets) then loads the model again one tier lower; a tier set by hand stops the start with
    what to set instead."""
    stepping_down = settings.memory == "auto" and not settings.cpu_offload
    while True:
        try:
            return _load_and_check(settings)
        except memory.TierDoesNotFit as error:
            tier = error.tier
        # Out of the except block: the exception is gone, and with its traceback's frames the model that did not fit.
        lower = memory.lower_tier(tier)
        if not stepping_down or lower is None:
            if lower:
                instead = f"Set GENERATOR_MEMORY={lower} (or auto), or a smaller model"
            elif tier == "cpu-offload":
                instead = (
                    "Set GENERATOR_CPU_OFFLOAD=false and GENERATOR_MEMORY=low (it streams less), or a smaller model"
                )
            else:
                instead = "Set a smaller model"
            raise RuntimeError(
                f"the model does not fit this GPU's memory in the {tier} memory tier (it ran out of memory rendering "
                f"a clip of the longest segment at start). {instead} (python -m generator models)."
            )
        log.warning("memory tier %s ran out of GPU memory at start; loading the model again in tier %s", tier, lower)
        memory.free_gpu_memory()
        settings = settings.model_copy(update={"memory": lower})


def _load_and_check(settings: GeneratorSettings) -> VideoBackend:
    source = resolve_model(settings.model, settings.data_dir)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    family = detect_family(settings.model, settings.model_family, source.folder)
    where = f" at {source.revision[:12]}" if source.revision else ""
    log.info("loading %s model %s%s on %s as %s", family, settings.model, where, device, dtype)
    memory.warn_if_short_of_host_memory(source.preset.memory if source.preset else None, settings.model)
    if source.is_tiny:
        pipeline, profile = _build_tiny(family, dtype)
    elif family == "ltx":
        pipeline, profile = _load_ltx(source, dtype)
    elif family == "ltx2":
        pipeline, profile = _load_ltx2(source, dtype)
    else:
        pipeline, profile = _load_wan(source, dtype)
    profile = _apply_profile_file(profile, source.folder)
    tier = place_pipeline(pipeline, settings, source, device, dtype)
    from . import speed

    speed.set_attention_backend(pipeline, settings.attention_backend)
    if settings.first_block_cache > 0:
        speed.enable_first_block_cache(pipeline, settings.first_block_cache)
    if settings.guidance_stop < 1:
        from .guidance import apply_guidance_stop

        apply_guidance_stop(pipeline, settings.guidance_stop)
    backend = _wrap(family, pipeline, profile, settings.prompt_cache_size)
    backend.memory_tier = tier
    if settings.preview_seconds > 0:
        # Live previews' colours, fitted from the VAE here, once, while nothing renders (a fraction of a second on a
        # GPU): fitting at the first preview would pause that render's GPU thread.
        backend.latent_rgb = fit_backend_latent_rgb(backend)
    weights_move = settings.cpu_offload or memory.weights_move(tier)
    try:
        compiled = speed.compile_wanted(settings.compile, device, weights_move) and speed.compile_and_warm_up(
            backend, insist=settings.compile == "on"
        )
        if not compiled and memory.checks_fit(device):
            speed.warm_up(backend)  # uncompiled (or back to eager): the warm-up is the fit check, and CUDA's set-up
    except Exception as error:
        if not memory.is_out_of_memory(error):
            raise
        raise memory.TierDoesNotFit(tier) from None
    return backend


def place_pipeline(
    pipeline: DiffusionPipeline,
    settings: GeneratorSettings,
    source: ModelSource,
    device: torch.device,
    dtype: torch.dtype,
) -> str:
    """Place the pipeline by its memory tier (or the older GENERATOR_CPU_OFFLOAD); returns the tier's name."""
    if settings.cpu_offload:
        if settings.vae_tiling:
            pipeline.vae.enable_tiling()
        pipeline.enable_model_cpu_offload(device=device)  # one model on the GPU at a time
        _apply_fp8(pipeline, settings, device, "cpu-offload")
        return "cpu-offload"
    needs = source.preset.memory if source.preset else None
    tier = memory.choose_tier(settings.memory, device, needs, pipeline, settings.fp8)
    if hint := memory.fp8_hint(tier, device, settings.fp8):
        log.info(hint)
    _apply_fp8(pipeline, settings, device, tier)
    memory.place(pipeline, tier, device, dtype)
    if settings.vae_tiling:
        pipeline.vae.enable_tiling()  # decodes in overlapping tiles: far less memory for large frames
    return tier


def _apply_fp8(pipeline: DiffusionPipeline, settings: GeneratorSettings, device: torch.device, tier: str) -> None:
    """GENERATOR_FP8 as the tier allows: before placing for the tiers that keep the transformer on the GPU (each
    block's float8 weights made there), where the weights are under model CPU offload (in CPU memory), not at all
    in compact and low (they store float8 already)."""
    if not settings.fp8:
        return
    if tier in ("compact", "low"):
        log.warning("GENERATOR_FP8 is ignored in the %s memory tier: its weights are already stored in float8", tier)
        return
    from . import fp8

    fp8.check_fp8_support(device)
    fp8.quantize_transformers(pipeline, settings.fp8_kernels, device if memory.fp8_before_placing(tier) else None)


def _build_tiny(family: str, dtype: torch.dtype) -> tuple[DiffusionPipeline, ModelProfile]:
    from .tiny import build_tiny_ltx2_pipeline, build_tiny_ltx_pipeline, build_tiny_wan_pipeline

    if family == "ltx2":
        from .ltx2 import trim_text_encoder

        pipeline = build_tiny_ltx2_pipeline()
        trim_text_encoder(pipeline)
        if dtype != torch.float32:
            pipeline.to(dtype=dtype)
        return pipeline, TINY_SOUND_PROFILE
    if family == "wan":
        pipeline, profile = build_tiny_wan_pipeline(), TINY_WAN_PROFILE
        vae = pipeline.vae
        pipeline.to(dtype=dtype)
        pipeline.vae = vae.to(torch.float32)
        return pipeline, profile
    pipeline = build_tiny_ltx_pipeline()
    if dtype != torch.float32:  # built in float32; casting to the same dtype only makes diffusers warn
        pipeline.to(dtype=dtype)
    return pipeline, TINY_LTX_PROFILE


def _load_ltx(source: ModelSource, dtype: torch.dtype) -> tuple[DiffusionPipeline, ModelProfile]:
    from diffusers import LTXConditionPipeline

    from .ltx import ltx_profile

    # LTXConditionPipeline loads LTXPipeline checkpoints too: the components are the same.
    pipeline = LTXConditionPipeline.from_pretrained(source.folder, dtype=dtype)
    return pipeline, ltx_profile(source.name, pipeline, source.preset)


def _load_ltx2(source: ModelSource, dtype: torch.dtype) -> tuple[DiffusionPipeline, ModelProfile]:
    from diffusers import LTX2ConditionPipeline

    from .ltx2 import ltx2_profile, trim_text_encoder

    # LTX2ConditionPipeline loads LTX2Pipeline checkpoints too (the same components, and an optional audio
    # scheduler it copies from the video one when absent), and adds image and video conditions.
    pipeline = LTX2ConditionPipeline.from_pretrained(source.folder, dtype=dtype)
    trim_text_encoder(pipeline)  # before placing: Gemma's vision tower is never used
    return pipeline, ltx2_profile(source.name, pipeline, source.preset)


def _load_wan(source: ModelSource, dtype: torch.dtype) -> tuple[DiffusionPipeline, ModelProfile]:
    from diffusers import AutoencoderKLWan, WanPipeline, WanVACEPipeline

    from .wan import wan_profile

    assert source.folder is not None
    pipeline_class = WanVACEPipeline if pipeline_class_of(source) == "WanVACEPipeline" else WanPipeline
    # Wan's VAE loses detail in bfloat16; its authors run it in float32 (it is small).
    vae = AutoencoderKLWan.from_pretrained(source.folder, subfolder="vae", dtype=torch.float32)
    pipeline = pipeline_class.from_pretrained(source.folder, vae=vae, dtype=dtype)
    return pipeline, wan_profile(source.name, pipeline, source.preset)


def _wrap(family: str, pipeline: DiffusionPipeline, profile: ModelProfile, prompt_cache_size: int) -> VideoBackend:
    if family == "wan":
        from .wan import WanBackend

        return WanBackend(pipeline, profile, prompt_cache_size)
    if family == "ltx2":
        from .ltx2 import LTX2Backend

        return LTX2Backend(pipeline, profile, prompt_cache_size)
    from .ltx import LTXBackend

    return LTXBackend(pipeline, profile, prompt_cache_size)


def pipeline_class_of(source: ModelSource) -> str:
    """The diffusers class that loads `source`: its folder's `model_index.json` says, else its preset ("" if
    neither)."""
    found = pipeline_class_in(source.folder) if source.folder is not None else ""
    return found or (source.preset.pipeline_class if source.preset else "")


def _apply_profile_file(profile: ModelProfile, folder: Path | None) -> ModelProfile:
    """A local folder may carry `hanul_profile.json` to override profile fields (fps, native sizes, lengths…)."""
    path = Path(folder) / PROFILE_FILE if folder is not None else None
    if path is None or not path.is_file():
        return profile
    overrides = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(ModelProfile)} - {"family", "name"}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"{path}: unknown profile fields {sorted(unknown)}")
    if "native_sizes" in overrides:
        overrides["native_sizes"] = {key: tuple(size) for key, size in overrides["native_sizes"].items()}
    return dataclasses.replace(profile, **overrides)
