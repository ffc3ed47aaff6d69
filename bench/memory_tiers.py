"""Peak GPU memory and speed of each memory tier (GENERATOR_MEMORY) for catalog presets at real size with random
weights, placed by the generator's own `memory.place` and rendered through its own backends. One JSON line per
(preset, tier); runs on a GPU machine (never in CI), stops starting new work after --deadline-s.

    python3 bench/memory_tiers.py --out RESULTS/tiers.jsonl [--presets ltx-2b-legacy,wan2.1-1.3b] [--deadline-s 150]

Each tier gets a freshly built model (tiers add hooks that cannot be taken off): built on the GPU in bf16 (fast
random init), moved to CPU memory as `from_pretrained` would leave it, then placed. A clip at the preset's native
landscape size and longest segment renders with 2 steps (the peak comes from one step and the decode); seconds per
step are timed over those steps. Then the live previews' colours are fitted from the placed VAE, as load_backend
does (`preview_fit_s`). `--tiny` runs the same path with the tiny models on the CPU (the smoke test).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generator.catalog import GIB, PRESETS, TIERS
from generator.pipelines import RenderRequest, fp8
from generator.pipelines.base import profile_from_preset
from generator.pipelines.latent_rgb import fit_backend_latent_rgb
from generator.pipelines.memory import place, proc_gib

DEFAULT_PRESETS = "ltx-2b-legacy,wan2.1-1.3b,ltx-13b-distilled,wan2.2-5b"


def _t5_xxl(vocab: int):
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    shape = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, feed_forward_proj="gated-gelu")
    if vocab == 32128:
        return T5EncoderModel(T5Config(vocab_size=vocab, **shape)).eval()
    return UMT5EncoderModel(UMT5Config(vocab_size=vocab, **shape)).eval()


def build_real_size(name: str):
    """A pipeline of the preset's class at its real size, random weights, bf16 (Wan's VAE float32), in CPU memory."""
    import baseline_ltx
    from diffusers import (
        AutoencoderKLLTXVideo,
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
        UniPCMultistepScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )

    torch.manual_seed(0)
    preset = PRESETS[name]
    with baseline_ltx.on_gpu_bf16():
        if preset.family == "ltx":
            if name == "ltx-13b-distilled":  # 48 blocks of 32 heads x 128, captions of T5-XXL's 4096
                transformer = LTXVideoTransformer3DModel(
                    num_attention_heads=32, attention_head_dim=128, cross_attention_dim=4096, num_layers=48
                )
            else:
                transformer = LTXVideoTransformer3DModel()  # the 2B defaults
            parts = dict(
                transformer=transformer.eval(), vae=AutoencoderKLLTXVideo().eval(), text_encoder=_t5_xxl(32128)
            )
        else:
            if name == "wan2.2-5b":
                transformer = WanTransformer3DModel(
                    num_attention_heads=24,
                    attention_head_dim=128,
                    in_channels=48,
                    out_channels=48,
                    ffn_dim=14336,
                    num_layers=30,
                )
            else:
                transformer = WanTransformer3DModel(num_attention_heads=12, ffn_dim=8960, num_layers=30)  # 1.3B
            parts = dict(transformer=transformer.eval(), text_encoder=_t5_xxl(256384))
    with torch.device("cuda"):
        if name == "wan2.2-5b":  # Wan 2.2's high-compression VAE (its repo's vae/config.json shape)
            vae = AutoencoderKLWan(
                base_dim=160,
                decoder_base_dim=256,
                z_dim=48,
                is_residual=True,
                in_channels=12,
                out_channels=12,
                patch_size=2,
                scale_factor_spatial=16,
                latents_mean=[0.0] * 48,
                latents_std=[1.0] * 48,
            )
            parts["vae"] = vae.eval()
        elif preset.family == "wan":
            parts["vae"] = AutoencoderKLWan().eval()
    if preset.family == "ltx":
        scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=False, shift=1.0)
        pipeline = LTXConditionPipeline(scheduler=scheduler, tokenizer=baseline_ltx.build_tokenizer(), **parts)
    else:
        scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
        pipeline = WanPipeline(
            scheduler=scheduler,
            tokenizer=baseline_ltx.build_tokenizer(max_len=512),
            expand_timesteps=name == "wan2.2-5b",
            **parts,
        )
    pipeline.to("cpu")  # where from_pretrained leaves it
    torch.cuda.empty_cache()
    return pipeline


def host_rss_gib() -> float | None:
    """This process's resident host memory (pinned memory included), GiB; None where /proc is missing."""
    rss = proc_gib(Path("/proc/self/status"), "VmRSS")
    return None if rss is None else round(rss, 2)


def build_tiny(name: str):
    from generator.pipelines.tiny import build_tiny_like

    return build_tiny_like(PRESETS[name])


def backend_for(name: str, pipeline):
    from generator.pipelines.ltx import LTXBackend
    from generator.pipelines.wan import WanBackend

    profile = profile_from_preset(name, PRESETS[name])
    backend_class = LTXBackend if profile.family == "ltx" else WanBackend
    return backend_class(pipeline, profile, prompt_cache_size=0)


def measure(name: str, tier: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """One (preset, tier) row. A tier named `balanced+fp8` (or `full+fp8`) is placed as load_backend places it with
    GENERATOR_FP8: the blocks' float8 layers made on the device first, then the tier's placement."""
    preset = PRESETS[name]
    placement, _, extra = tier.partition("+")
    if extra not in ("", "fp8") or (extra and placement not in ("full", "balanced")):
        raise ValueError(f"unknown tier {tier!r}: one of {', '.join(TIERS)}, or full+fp8 / balanced+fp8")
    pipeline = build_tiny(name) if args.tiny else build_real_size(name)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    if extra == "fp8":
        fp8.check_fp8_support(device)
        fp8.quantize_transformers(pipeline, "hanul", device)
    place(pipeline, placement, device, torch.float32 if args.tiny else torch.bfloat16)
    if args.no_tiling:  # what VAE tiling costs or saves at this size (balanced and low tile by default)
        pipeline.vae.disable_tiling()
    placed = time.perf_counter() - started
    rss_placed = host_rss_gib()  # streamed weights are pinned in place (memory.pin_in_place): about the same as
    # after the render, not twice the weights (docs/performance.md, round 4)
    backend = backend_for(name, pipeline)
    width, height = (64, 64) if args.tiny else preset.native_sizes["landscape"]
    frames = preset.frame_multiple + 1 if args.tiny else preset.max_segment_frames
    steps: list[float] = []

    def on_step(step: int, total: int) -> None:
        if cuda:
            torch.cuda.synchronize(device)
        steps.append(time.perf_counter())

    request = RenderRequest(
        prompt="a lighthouse on a cliff in a storm, waves breaking",
        width=width,
        height=height,
        num_frames=frames,
        seed=1,
        num_inference_steps=2,
        guidance_scale=preset.default_guidance,
    )
    started = time.perf_counter()
    backend.render(request, on_step=on_step)
    render = time.perf_counter() - started
    row = {
        "case": "memory_tier",
        "preset": name,
        "tier": tier,
        "size": f"{width}x{height}x{frames}",
        "guidance": preset.default_guidance,
        "place_s": round(placed, 2),
        "render_2_steps_s": round(render, 2),
        "second_step_s": round(steps[1] - steps[0], 3) if len(steps) > 1 else None,
        "estimated_peak_gib": preset.memory.peak_gib(placement, fp8=True)
        if extra
        else preset.memory.estimated_gib(tier),
        "vae_tiling": bool(getattr(pipeline.vae, "use_tiling", False)),
        "host_rss_placed_gib": rss_placed,
        "host_rss_rendered_gib": host_rss_gib(),
    }
    if cuda:
        row["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 2)
        row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved(device) / GIB, 2)
    # What load_backend adds for live previews: their colours fitted from the VAE (its first encode of the run),
    # after the peaks above so they stay the render's.
    started = time.perf_counter()
    colours = fit_backend_latent_rgb(backend)
    row["preview_fit_s"] = round(time.perf_counter() - started, 3)
    row["preview_fit_rms"] = None if colours is None else round(colours.error, 3)
    del backend, pipeline
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=DEFAULT_PRESETS)
    parser.add_argument("--tiers", default=",".join(TIERS))
    parser.add_argument("--deadline-s", type=float, default=150.0, help="start nothing new after this many seconds")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--tiny", action="store_true", help="the tiny models on the CPU (smoke test)")
    parser.add_argument("--no-tiling", action="store_true", help="decode untiled in every tier")
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.tiny:
        parser.error("needs a CUDA GPU (or --tiny)")
    begun = time.perf_counter()
    rows = []
    for name in args.presets.split(","):
        for tier in args.tiers.split(","):
            if time.perf_counter() - begun > args.deadline_s:
                print(json.dumps({"case": "memory_tier", "preset": name, "tier": tier, "skipped": "deadline"}))
                continue
            try:
                row = measure(name, tier, args, device)
            except Exception as error:  # one preset's failure (e.g. out of memory) must not lose the others
                row = {
                    "case": "memory_tier",
                    "preset": name,
                    "tier": tier,
                    "error": f"{type(error).__name__}: {error}"[:300],
                }
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            rows.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as out:
                    out.write(line + "\n")
    return rows


if __name__ == "__main__":
    main()
