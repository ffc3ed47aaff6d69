"""`bench_generator.py --case ltx2`: an LTX-2 clip with sound, end to end, at real size with random weights.

The transformer (diffusers' default config: LTX-2's 19B audio-video model), the video VAE (32x space, 8x time),
the audio VAE and LTX-2.3's vocoder with bandwidth extension (48 kHz) are built at real size on the GPU in
bfloat16. The text encoder is not: Gemma 3 12B at random adds only its own ~0.1 s encode and 24 GB; a one-layer
encoder of Gemma 3 12B's width feeds LTX-2's real text connectors instead. Measured: the render (8 steps, no
guidance, as the distilled preset runs), the MP4 with its sound muxed in (Hanul's path), and the peak memory.
`--tiny` runs the tiny sound model on the CPU (the smoke test).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import torch

REAL_SIZE = (768, 512, 121)  # the preset's native landscape size and longest segment
TINY_SIZE = (96, 64, 17)
GEMMA3_12B_WIDTH = 3840


def build(tiny: bool, device: torch.device) -> tuple[Any, Any]:
    """(LTX2ConditionPipeline, its profile)."""
    from generator.pipelines.ltx2 import ltx2_profile
    from generator.pipelines.tiny import TINY_SOUND_PROFILE, build_tiny_ltx2_pipeline

    if tiny:
        return build_tiny_ltx2_pipeline().to(device), TINY_SOUND_PROFILE
    import baseline_ltx
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2ConditionPipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    tokenizer = baseline_ltx.build_tokenizer(max_len=1024)
    with baseline_ltx.on_gpu_bf16():
        text_encoder = Gemma3ForCausalLM(
            Gemma3TextConfig(
                vocab_size=len(tokenizer),
                hidden_size=GEMMA3_12B_WIDTH,
                intermediate_size=1024,
                num_hidden_layers=1,
                num_attention_heads=16,
                num_key_value_heads=8,
                head_dim=256,
            )
        ).eval()
        transformer = LTX2VideoTransformer3DModel().eval()
        connectors = LTX2TextConnectors(caption_channels=GEMMA3_12B_WIDTH, text_proj_in_factor=2).eval()
        vae = AutoencoderKLLTX2Video(spatial_compression_ratio=32, temporal_compression_ratio=8).eval()
        audio_vae = AutoencoderKLLTX2Audio().eval()
        vocoder = LTX2VocoderWithBWE().eval()
    pipeline = LTX2ConditionPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        audio_vae=audio_vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=connectors,
        transformer=transformer,
        vocoder=vocoder,
    )
    return pipeline, ltx2_profile("random-weights/LTX-2-19B", pipeline)


def run_ltx2(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """One line: build, then `repeats` clips with sound through render_video and the MP4 writers."""
    import numpy as np

    from generator.media import audio, writing
    from generator.pipelines.ltx2 import LTX2Backend
    from generator.render import VideoSpec, render_video

    cuda = device.type == "cuda"
    width, height, frames = TINY_SIZE if args.tiny else REAL_SIZE
    steps = args.steps if args.steps is not None else 2 if args.tiny else 8
    result: dict[str, Any] = {"case": "ltx2", "variant": "sound", "size": f"{width}x{height}x{frames}"}
    result["steps"] = steps
    started = time.perf_counter()
    try:
        pipeline, profile = build(args.tiny, device)
        backend = LTX2Backend(pipeline, profile)
        result["build_s"] = round(time.perf_counter() - started, 2)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        runs = []
        for repeat in range(max(1, args.repeats)):
            spec = VideoSpec(
                prompt='a man walks on a beach at dawn; waves crash; he says, "Good morning."',
                width=width,
                height=height,
                total_frames=frames,
                fps=profile.fps,
                steps=steps,
                guidance_scale=1.0,
                seed=repeat,
                sound=True,
            )
            tick = time.perf_counter()
            rendered = render_video(backend, spec)
            render_s = time.perf_counter() - tick
            sound = rendered.sound
            assert sound is not None
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "clip.mp4"
                tick = time.perf_counter()
                bitrate = audio.sound_bitrate(sound.channels, sound.seconds, 10 * 1024 * 1024)
                writing.encode_mp4(rendered.frames, profile.fps, path, 10 * 1024 * 1024)
                size = audio.add_sound(path, sound, bitrate)
                mp4_s = time.perf_counter() - tick
            runs.append({"render_s": render_s, "mp4_with_sound_s": mp4_s, "bytes": size})
            result["sound_rate"], result["sound_samples"] = sound.rate, len(sound)
            result["sound_peak"] = round(float(np.abs(sound.samples).max()), 3)
        result["median"] = {key: round(median(run[key] for run in runs), 3) for key in runs[0]}
        if cuda:
            result["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    except Exception as error:  # one line that says what went wrong; the session goes on
        result["error"] = f"{type(error).__name__}: {error}"[:500]
    result["variant_wall_s"] = round(time.perf_counter() - started, 1)
    return result
