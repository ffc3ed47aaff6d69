"""Benchmark of Hanul's generator at real size with random weights, through the generator's own code path.

Random weights cost exactly what trained ones cost. The pipelines are built the way bench/baseline_ltx.py builds
them (nothing is downloaded), wrapped in the generator's backend classes (LTXBackend / WanBackend with the real
profiles, the speed levers of generator/pipelines/speed.py), and rendered through generator.render.render_video
and generator.media.writing.encode_mp4; the queue case goes through the real service (HTTP API, queue, worker).

In the same run, on the same GPU and with the same weights, it times the plain diffusers call the way
baseline_ltx.py does (median full call to numpy, median denoise-only call) and prints the ratio.

Prints one JSON line per case (and appends them to --out FILE). Per-stage times come from hooks installed here,
never from production code: CUDA events around the text encoder, transformer, VAE and uint8 conversion.

    python bench/bench_generator.py --case clip [--repeats 3] [--compile] [--out results.jsonl]
    python bench/bench_generator.py --tiny --case all      # CPU, tiny models: checks the script itself
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
import torch  # noqa: E402

CASES = ("clip", "clip_hd", "extension", "queue", "wan")
PROMPT, NEGATIVE = "w1 w2 w3 w4", "w5"  # baseline_ltx.py's prompts: words of its tokenizer


def new_prompt(index: int) -> str:
    """A prompt the prompt cache has not seen for each index (-1 and up), still words of the tokenizer."""
    return f"{PROMPT} w{10 + index}"


# (width, height, frames, context frames for an extension, jobs in the queue)
REAL = {
    "clip": (768, 512, 121, 0, 1),
    "clip_hd": (1216, 704, 121, 0, 1),
    "extension": (768, 512, 121, 17, 1),
    "queue": (768, 512, 121, 0, 20),
    "wan": (832, 480, 81, 0, 1),
}
TINY = {
    "clip": (96, 64, 17, 0, 1),
    "clip_hd": (160, 96, 17, 0, 1),
    "extension": (96, 64, 17, 9, 1),
    "queue": (96, 64, 17, 0, 4),
    "wan": (96, 64, 17, 0, 1),
}


# --- timing -------------------------------------------------------------------------------------------------------


class StageClock:
    """Spans per stage, timed with CUDA events on a GPU (no synchronisation inside the render) or perf_counter."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.spans: list[tuple[str, Any, Any]] = []

    def _mark(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    @contextlib.contextmanager
    def span(self, stage: str) -> Iterator[None]:
        start = self._mark()
        try:
            yield
        finally:
            self.spans.append((stage, start, self._mark()))

    def wrap(self, owner: object, attribute: str, stage: str) -> None:
        """Time every call of `owner.attribute` (an instance's method, or a module's function) as `stage`."""
        original = getattr(owner, attribute)

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.span(stage):
                return original(*args, **kwargs)

        setattr(owner, attribute, timed)

    def _seconds(self, start: Any, end: Any) -> float:
        return start.elapsed_time(end) / 1000 if self.cuda else end - start

    def collect(self) -> dict[str, float]:
        """Seconds per stage since the last collect; `denoising` is the window from the first to the last
        transformer call (the whole loop, scheduler steps included)."""
        sync(self.cuda)
        totals: dict[str, float] = {}
        for stage, start, end in self.spans:
            totals[f"{stage}_s"] = totals.get(f"{stage}_s", 0.0) + self._seconds(start, end)
        transformer = [(start, end) for stage, start, end in self.spans if stage == "transformer"]
        if transformer:
            totals["denoising_s"] = self._seconds(transformer[0][0], transformer[-1][1])
        self.spans.clear()
        return totals


def sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def instrument(backend: Any, clock: StageClock) -> None:
    """Hooks on the backend's pipeline and on the generator's uint8 conversion (bench only)."""
    import generator.pipelines.ltx as ltx_module
    import generator.pipelines.wan as wan_module

    pipeline = backend.pipeline
    clock.wrap(pipeline, "encode_prompt", "text_encoding")
    clock.wrap(pipeline.transformer, "forward", "transformer")
    clock.wrap(pipeline.vae, "encode", "vae_encode")
    clock.wrap(pipeline.vae, "decode", "vae_decode")
    clock.wrap(pipeline.video_processor, "postprocess_video", "postprocess")
    module = wan_module if type(backend).__name__ == "WanBackend" else ltx_module
    clock.wrap(module, "tensor_to_frames", "to_uint8")


def median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({key for run in runs for key in run})
    return {key: median([run.get(key, 0.0) for run in runs]) for key in keys}


# --- building the models ------------------------------------------------------------------------------------------


def build_ltx(tiny: bool, device: torch.device) -> tuple[Any, Any]:
    """(LTXConditionPipeline for the generator, its profile); the components are shared with the baseline."""
    from diffusers import LTXConditionPipeline

    from generator.pipelines.ltx import ltx_profile
    from generator.pipelines.tiny import TINY_LTX_PROFILE, build_tiny_ltx_pipeline

    if tiny:
        return build_tiny_ltx_pipeline().to(device), TINY_LTX_PROFILE
    import baseline_ltx

    plain = baseline_ltx.build_pipeline()  # on the GPU in bf16, exactly the baseline's model
    pipeline = LTXConditionPipeline(**plain.components)
    return pipeline, ltx_profile("random-weights/LTX-Video-2B", pipeline)


def build_wan(tiny: bool, device: torch.device) -> tuple[Any, Any]:
    """Wan 2.1 1.3B text-to-video (UMT5-XXL-shaped encoder, float32 VAE as the generator runs it)."""
    from generator.pipelines.tiny import TINY_WAN_PROFILE, build_tiny_wan_pipeline
    from generator.pipelines.wan import wan_profile

    if tiny:
        pipeline = build_tiny_wan_pipeline(vace=False).to(device)
        return pipeline, TINY_WAN_PROFILE
    import baseline_ltx
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    with baseline_ltx.on_gpu_bf16():
        transformer = WanTransformer3DModel(num_attention_heads=12, ffn_dim=8960, num_layers=30).eval()  # 1.3B
        text_encoder = UMT5EncoderModel(
            UMT5Config(
                vocab_size=256384,
                d_model=4096,
                d_kv=64,
                d_ff=10240,
                num_layers=24,
                num_heads=64,
                feed_forward_proj="gated-gelu",
            )
        ).eval()  # UMT5-XXL shape
    with torch.device(device):
        vae = AutoencoderKLWan().eval()  # Wan 2.1 VAE, float32
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000, flow_shift=3.0
    )
    pipeline = WanPipeline(
        tokenizer=baseline_ltx.build_tokenizer(max_len=512),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=scheduler,
        transformer=transformer,
    )
    return pipeline, wan_profile("random-weights/Wan2.1-T2V-1.3B", pipeline)


def make_backend(case: str, args: argparse.Namespace, device: torch.device) -> Any:
    from generator.pipelines import speed
    from generator.pipelines.ltx import LTXBackend
    from generator.pipelines.wan import WanBackend

    if case == "wan":
        pipeline, profile = build_wan(args.tiny, device)
        backend = WanBackend(pipeline, profile, args.prompt_cache)
    else:
        pipeline, profile = build_ltx(args.tiny, device)
        backend = LTXBackend(pipeline, profile, args.prompt_cache)
    if args.vae_tiling:
        pipeline.vae.enable_tiling()
    if args.cpu_offload:  # GENERATOR_CPU_OFFLOAD's path: one model on the GPU at a time (24 GB cards)
        pipeline.enable_model_cpu_offload(device=device)
    speed.set_attention_backend(pipeline, args.attention_backend)
    return backend


def apply_compile(backend: Any, clock: StageClock) -> dict[str, Any]:
    """GENERATOR_COMPILE's path: regional compile, then the warm-up renders at the profile's native sizes."""
    from generator.pipelines import speed

    started = time.perf_counter()
    speed.compile_blocks(backend.pipeline)
    warm = speed.warm_up(backend)
    clock.collect()
    return {"compile_warmup_s": round(time.perf_counter() - started, 2), "warmup_per_size_s": warm}


# --- the plain diffusers baseline, same weights, same run ---------------------------------------------------------


def plain_pipeline(backend: Any, case: str, size: tuple, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The plain diffusers pipeline on the backend's components and its call: LTXPipeline (LTXConditionPipeline with
    the same conditioning for an extension), WanPipeline for Wan."""
    from diffusers import LTXConditionPipeline, LTXPipeline
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    width, height, frames, context, _ = size
    call: dict[str, Any] = dict(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        width=width,
        height=height,
        num_frames=frames,
        guidance_scale=args.guidance,
        num_inference_steps=args.steps,
    )
    if case == "wan":
        pipe = type(backend.pipeline)(**backend.pipeline.components)
    elif context:
        pipe = LTXConditionPipeline(**backend.pipeline.components)
        video = torch.rand(context, 3, height, width, device=backend.device)
        call["conditions"] = [LTXVideoCondition(video=video, frame_index=0, strength=1.0)]
    else:
        components = dict(backend.pipeline.components)
        if backend.shifting_config is not None:  # the scheduler as shipped: LTXPipeline shifts it itself
            components["scheduler"] = type(components["scheduler"]).from_config(backend.shifting_config)
        pipe = LTXPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe, call


def time_calls(pipe: Any, call: dict[str, Any], repeats: int, cuda: bool, *, denoise: bool = True) -> dict[str, Any]:
    """baseline_ltx.py's measurement: a warm-up call (2 steps), then the median full call to numpy and the median
    denoise-only call (latents out)."""
    device_type = "cuda" if cuda else "cpu"

    def timed(output_type: str) -> float:
        sync(cuda)
        start = time.perf_counter()
        pipe(**call, output_type=output_type, generator=torch.Generator(device_type).manual_seed(0))
        sync(cuda)
        return time.perf_counter() - start

    with torch.no_grad():
        pipe(**{**call, "num_inference_steps": 2}, output_type="latent")  # warm-up
        full = [timed("np") for _ in range(repeats)]
        result = {"full_call_s_median": median(full)}
        if denoise:
            result["denoise_only_s_median"] = median([timed("latent") for _ in range(repeats)])
    return result


def baseline_times(backend: Any, case: str, size: tuple, args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    """baseline_ltx.py's measurement on the same weights, the plain pipeline (`plain_pipeline`). Run before any
    compilation, so it is the eager pipeline."""
    pipe, call = plain_pipeline(backend, case, size, args)
    return {
        "what": f"plain diffusers {type(pipe).__name__}, eager, same weights",
        **time_calls(pipe, call, args.repeats, cuda),
    }


def peer_times(backend: Any, case: str, size: tuple, args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    """The best peer recipe on the same weights (issue 22): the plain pipeline accelerated as ParaAttention documents
    it for diffusers pipelines, its first-block cache (`--peer-threshold`) and `torch.compile` of the whole
    transformer (`--peer-compile-mode`). para-attn 0.3.38 has adapters for Wan (used here when installed) but none
    for LTX-Video; there diffusers' FirstBlockCache, diffusers' port of the same algorithm, stands in. Approximate,
    like Hanul's own FirstBlockCache: compare with `compiled_fp8_first_block_cache_*`. ParaAttention's cache patches
    the pipeline's class and the transformer for good: a Wan sweep runs it last."""
    from generator.pipelines import speed

    pipe, call = plain_pipeline(backend, case, size, args)
    transformer = pipe.transformer
    timing_hook = transformer.__dict__.pop("forward", None)  # the bench's CUDA events stay out of the peer's graph
    threshold = args.peer_threshold
    how = None
    undo_para_attn = None
    if case == "wan":
        try:
            from para_attn.first_block_cache.diffusers_adapters import apply_cache_on_pipe
        except ImportError:
            pass
        else:
            undo_para_attn = _para_attn_undo(pipe)
            apply_cache_on_pipe(pipe, residual_diff_threshold=threshold)
            how = "para_attn.first_block_cache.apply_cache_on_pipe"
    if how is None:
        from diffusers.hooks import FirstBlockCacheConfig

        transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
        how = "diffusers FirstBlockCacheConfig (para-attn has no adapter for this model, or is not installed)"
    torch._dynamo.reset()
    pipe.transformer = torch.compile(
        transformer, mode=None if args.peer_compile_mode == "default" else args.peer_compile_mode
    )
    cudnn_first = speed.cudnn_attention_preferred()  # the peer runs on torch's own kernel order
    speed.prefer_cudnn_attention(False)
    started = time.perf_counter()
    try:
        result = time_calls(pipe, call, args.repeats, cuda, denoise=False)
    finally:
        speed.prefer_cudnn_attention(cudnn_first)
        pipe.transformer = transformer
        if getattr(transformer, "is_cache_enabled", False):
            transformer.disable_cache()
        if undo_para_attn is not None:
            undo_para_attn()
        if timing_hook is not None:
            transformer.forward = timing_hook
        torch._dynamo.reset()
    return {
        "what": f"plain diffusers {type(pipe).__name__} + first-block cache {threshold:g} + torch.compile of the whole "
        f"transformer (mode {args.peer_compile_mode}), ParaAttention's recipe; cache: {how}",
        "compile_and_calls_s": round(time.perf_counter() - started, 2),
        **result,
    }


def _para_attn_undo(pipe: Any) -> Callable[[], None]:
    """What undoes para-attn's `apply_cache_on_pipe`: it replaces the pipeline class's `__call__` (every instance's)
    and sets the transformer's `forward` on the instance, each marked `_is_cached`."""
    cls, transformer = type(pipe), pipe.transformer
    call = cls.__dict__["__call__"]

    def undo() -> None:
        cls.__call__ = call
        for owner in (cls, transformer):
            if "_is_cached" in vars(owner):
                delattr(owner, "_is_cached")
        vars(transformer).pop("forward", None)

    return undo


# --- direct cases: render_video + encode_mp4 ----------------------------------------------------------------------


def spec_for(
    backend: Any, size: tuple, args: argparse.Namespace, seed: int, parent_tail: np.ndarray | None, prompt: str = PROMPT
) -> Any:
    from generator.render import VideoSpec

    width, height, frames, context, _ = size
    return VideoSpec(
        prompt=prompt,
        negative_prompt=NEGATIVE,
        width=width,
        height=height,
        total_frames=frames - context,
        fps=backend.profile.fps,
        steps=args.steps,
        guidance_scale=args.guidance,
        seed=seed,
        parent_tail=parent_tail,
    )


CAP = 10 * 1024 * 1024  # Discord's default upload cap
# swscale True: the encoder converts with libswscale, as before issue 22; parts: GENERATOR_MP4_PARTS (media/parts.py).
FEED: dict[str, Any] = {"swscale": False, "parts": 1}


def one_clip(backend: Any, spec: Any, clock: StageClock, workdir: Path, parent: Path | None) -> dict[str, float]:
    """One request as the worker does it: render (render_video) with the MP4 encoded along (an `Mp4Writer` on a
    CPU thread fed each segment as it is stitched, RGB → YUV on the render's GPU), then what is left after the
    render: the writer's last frames and flush (a new video), or the new part appended to the parent's stream
    (`encode_extension`); over the cap, `encode_mp4`'s smaller attempts. Stage times from the hooks."""
    from concurrent.futures import ThreadPoolExecutor

    from generator.media import joining, parts, writing
    from generator.render import render_video
    from generator.yuv import conversion_device

    cuda = clock.cuda
    path = workdir / "clip.mp4"
    convert_on = None if FEED["swscale"] else conversion_device(backend)
    writer = parts.mp4_writer(
        path if parent is None else workdir / "part.mp4",
        spec.fps,
        parts=FEED["parts"],
        total_frames=spec.total_frames,
        follows=parent,
        convert_on=convert_on,
    )
    sync(cuda)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        along = writing.EncodeAlong(pool, writer)
        try:
            rendered = render_video(backend, spec, on_frames=along.add)
            sync(cuda)
            rendered_at = time.perf_counter()
            along.end()
            along.encoded.result()
            encoded = writer.finish(sys.maxsize if parent is not None else CAP)
            if parent is not None:
                encoded = joining.encode_extension(parent, rendered.frames, spec.fps, path, CAP, part=writer.path)
            elif encoded is None:  # over the cap (random-weight noise): the smaller attempts
                crf_size = writer.size_bytes
                encoded = writing.encode_mp4(
                    rendered.frames, spec.fps, path, CAP, crf_size=crf_size, convert_on=convert_on
                )
        finally:
            along.abort()
    data = path.read_bytes()
    finished = time.perf_counter()
    stages = clock.collect()
    known = sum(stages.get(key, 0.0) for key in ("text_encoding_s", "vae_encode_s", "vae_decode_s", "postprocess_s"))
    known += stages.get("denoising_s", 0.0) + stages.get("to_uint8_s", 0.0)
    return {
        **stages,
        "render_s": rendered_at - started,
        "stitch_s": rendered.timings.get("stitch", 0.0),
        "segments": float(rendered.segments),
        "pipeline_other_s": max(0.0, rendered_at - started - known - rendered.timings.get("stitch", 0.0)),
        "mp4_encode_s": finished - rendered_at,  # what the MP4 still took after the render
        "mp4_encoding_along_s": writer.seconds,  # the writer's own time, most of it during the render
        "mp4_bytes": float(len(data)),
        "mp4_attempts": float(encoded.attempts),  # 2+: the first encode passed the byte cap (random-weight noise)
        "end_to_end_s": finished - started,
    }


def run_direct(
    backend: Any, size: tuple, args: argparse.Namespace, clock: StageClock, *, new_prompts: bool = False
) -> dict[str, Any]:
    """First request (lazy initialisation, compilation of new shapes), then the median of `repeats` requests. With
    `new_prompts` every request has a prompt the prompt cache has not seen (so the text encoder runs each time: a
    new request, not a re-roll). The sweep compares variants by `NaturalLooking.last_frames`."""
    parent = tail = None
    cache = getattr(backend, "prompt_cache", None)
    if new_prompts and cache is not None:
        cache.clear()

    def prompt(index: int) -> str:
        return new_prompt(index) if new_prompts else PROMPT

    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        if size[3]:  # an extension continues a clip rendered first, from its lossless tail and its MP4
            from generator.media import writing
            from generator.render import render_video

            width, height, frames, _, _ = size
            first_clip = spec_for(backend, (width, height, frames, 0, 1), args, 1, None)
            first = render_video(backend, first_clip)
            parent, tail = workdir / "parent.mp4", first.tail[-size[3] :]
            writing.encode_mp4(first.frames, first_clip.fps, parent, 10 * 1024 * 1024)
            clock.collect()
            if cache is not None:  # an extension's prompt is usually new
                cache.clear()
                cache.hits = cache.misses = 0
        first_spec = spec_for(backend, size, args, 0, tail, prompt(-1))
        first_run = one_clip(backend, first_spec, clock, workdir, parent)  # lazy init, new shapes compile
        runs = [
            one_clip(backend, spec_for(backend, size, args, 0, tail, prompt(index)), clock, workdir, parent)
            for index in range(args.repeats)
        ]
        repeat_prompt = None
        if cache is not None and cache.size > 0:
            # A re-roll of the same prompt: the text encoder is skipped (the first run above filled the cache).
            repeat_prompt = {"hits": cache.hits, "misses": cache.misses}
    return {
        "first_request": {k: round(v, 4) for k, v in first_run.items()},
        "median": medians(runs),
        "prompt_cache_stats": repeat_prompt,
    }


# --- the queue case: the real service over HTTP ------------------------------------------------------------------


async def run_queue(backend: Any, size: tuple, args: argparse.Namespace, device: torch.device) -> dict:
    """One job on an idle queue (latency request → MP4 bytes), then `jobs` at once (throughput, GPU busy)."""
    import aiohttp

    from generator.service import start_generator
    from generator.settings import GeneratorSettings

    width, height, frames, _, jobs = size
    with tempfile.TemporaryDirectory() as folder:
        settings = GeneratorSettings(
            _env_file=None,
            HANUL_DATA_DIR=folder,
            DATABASE_URL=f"sqlite+aiosqlite:///{folder}/bench.db",
            GENERATOR_MODEL=backend.profile.name,
            GENERATOR_DEVICE=str(device),
            GENERATOR_API_KEY="",
            GENERATOR_HOST="127.0.0.1",
            GENERATOR_PORT=0,
            GENERATOR_WORKERS=1,
            GENERATOR_POLL_INTERVAL=0.05,
            GENERATOR_MAX_QUEUE=max(100, jobs + 5),
            GENERATOR_MAX_QUEUE_PER_USER=jobs + 5,
        )
        running = await start_generator(settings, backend_factory=lambda _: backend)
        try:
            async with aiohttp.ClientSession(running.base_url + "/") as http:
                body = {
                    "prompt": PROMPT,
                    "negative_prompt": NEGATIVE,
                    "size": f"{width}x{height}",
                    "seconds": frames / backend.profile.fps,
                    "num_inference_steps": args.steps,
                    "guidance_scale": args.guidance,
                }

                async def submit(seed: int) -> tuple[str, float]:
                    started = time.perf_counter()
                    # A new prompt each time: the text encoder runs for every job.
                    async with http.post("videos", json={**body, "prompt": new_prompt(seed), "seed": seed}) as response:
                        response.raise_for_status()
                        return (await response.json())["id"], started

                async def finished(video_id: str) -> bytes:
                    """Follow the job as the bot does: each status request held until the job changes."""
                    seen = ""  # nothing seen yet: the first answer comes at once
                    while True:
                        query = {"wait": "30", "seen": seen}
                        async with http.get(f"videos/{video_id}", params=query) as response:
                            video = await response.json()
                        if video["status"] == "completed":
                            async with http.get(f"videos/{video_id}/content") as response:
                                return await response.read()
                        if video["status"] == "failed":
                            raise RuntimeError(f"{video_id} failed: {video.get('error')}")
                        position = video.get("queue_position")
                        seen = f"{video['status']}:{video['progress']}:{'' if position is None else position}"

                worker = running.service.workers[0]
                warm_id, _ = await submit(0)  # first request: lazy initialisation, not measured
                await finished(warm_id)

                single = []
                for seed in range(1, args.repeats + 1):
                    video_id, started = await submit(seed)
                    data = await finished(video_id)
                    latency = time.perf_counter() - started
                    job = await running.service.queue.get(video_id)
                    work = job.timings.get("render_s", 0.0) + job.timings.get("encode_s", 0.0)
                    single.append(
                        {
                            "end_to_end_s": latency,
                            "render_s": job.timings.get("render_s", 0.0),
                            "mp4_encode_s": job.timings.get("encode_s", 0.0),
                            "queue_wait_s": job.timings.get("queue_wait_s", 0.0),
                            "api_queue_overhead_s": latency - work,
                            "mp4_bytes": float(len(data)),
                        }
                    )

                busy_before = worker.status.gpu_busy_seconds
                started = time.perf_counter()
                ids = [video_id for video_id, _ in await asyncio.gather(*(submit(100 + i) for i in range(jobs)))]
                for video_id in ids:  # one worker takes them in order: wait for each in turn
                    await finished(video_id)
                wall = time.perf_counter() - started
                busy = worker.status.gpu_busy_seconds - busy_before
        finally:
            await running.stop()
    return {
        "single_job": medians(single),
        "jobs": jobs,
        "queue_wall_s": round(wall, 3),
        "jobs_per_min": round(jobs * 60 / wall, 2),
        "gpu_thread_busy_fraction": round(busy / wall, 4),
        "gpu_idle_fraction": round(1 - busy / wall, 4),
    }


# --- the sweep: a GPU session's LTX measurements in one process ---------------------------------------------------

ENCODE_PRESETS = ("fast", "veryfast", "ultrafast")  # the old default, the default, the quickest
NOISE_PRESET = "veryfast"  # random-weight noise passes the byte cap and is encoded twice: once is enough to know


class StepCacheDecisions:
    """Counts FirstBlockCache's decisions (all steps, steps that ran every block) by wrapping its decision method,
    which diffusers keeps out of compiled graphs, so counting changes no graph."""

    def __init__(self) -> None:
        from diffusers.hooks.first_block_cache import FBCHeadBlockHook

        self.decided = self.computed = 0
        original = FBCHeadBlockHook._should_compute_remaining_blocks

        @torch.compiler.disable
        def counted(hook: Any, residual: torch.Tensor) -> bool:
            compute = original(hook, residual)
            self.decided += 1
            self.computed += int(compute)
            return compute

        FBCHeadBlockHook._should_compute_remaining_blocks = counted

    def take(self) -> dict[str, int]:
        counts = {"steps": self.decided, "steps_with_every_block": self.computed}
        self.decided = self.computed = 0
        return counts


def recompile(backend: Any) -> None:
    """Compile the blocks afresh after the model changed (FP8 layers, step-cache hooks): the next request of each
    shape compiles (its `first_request`), as a restarted service's warm-up would."""
    from generator.pipelines import speed

    speed.uncompile_blocks(backend.pipeline)
    torch._dynamo.reset()
    speed.compile_blocks(backend.pipeline)


def frame_difference(frames: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """How far `frames` are from `reference`, in uint8 levels."""
    if frames.shape != reference.shape:
        return {"shapes": [list(frames.shape), list(reference.shape)]}
    difference = np.abs(frames.astype(np.int16) - reference.astype(np.int16))
    squared = float(np.mean(difference.astype(np.float64) ** 2))
    return {
        "max": int(difference.max()),
        "mean": round(float(difference.mean()), 4),
        "fraction_differing": round(float((difference > 0).mean()), 6),
        "psnr_db": round(10 * np.log10(255**2 / squared), 2) if squared else None,  # None: identical
    }


class NaturalLooking:
    """A backend whose renders do all their GPU work and then hand on a moving pattern of the same shape.

    Random weights render noise, which no encoder compresses: at CRF 23 it passes the byte cap and is encoded twice
    (6-7 s on the H100 box, where a real clip takes well under one). Handing on natural-looking frames makes
    everything after the GPU (stitch, encode, the worker's overlap) cost what it would for a trained model. The
    frames really rendered stay in `last_frames`, for comparing variants."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.last_frames: np.ndarray | None = None
        self._patterns: dict[tuple[int, ...], np.ndarray] = {}

    def __getattr__(self, name: str) -> Any:  # profile, pipeline, prompt_cache, device: the inner backend's
        return getattr(self.inner, name)

    def render(self, request: Any, on_step: Any = None) -> np.ndarray:
        frames = self.inner.render(request, on_step)
        self.last_frames = frames
        return self.pattern_like(frames)

    def pattern_like(self, frames: np.ndarray) -> np.ndarray:
        """The moving pattern of `frames`' shape, made once per shape (seconds: the first request pays for it)."""
        return self.pattern_of(frames.shape)

    def pattern_of(self, shape: tuple[int, ...]) -> np.ndarray:
        from cpu_figures import moving_pattern

        shape = tuple(shape)
        if shape not in self._patterns:
            self._patterns[shape] = moving_pattern(*shape[:3])
        return self._patterns[shape]


def use_attention(backend: Any, name: str) -> None:
    """Set diffusers' attention backend on the transformer(s), `native` included (the setting skips that one)."""
    from generator.pipelines import speed

    for transformer in speed.transformers_of(backend.pipeline):
        transformer.set_attention_backend("native")
    speed.set_attention_backend(backend.pipeline, name)


def approximate_levers(
    natural: NaturalLooking,
    size: tuple,
    distilled: argparse.Namespace,
    args: argparse.Namespace,
    clock: StageClock,
    exact: dict[str, np.ndarray],
    with_ratio: Callable[[dict[str, Any], str], dict[str, Any]],
    measured: Callable[..., dict[str, Any]],
    per_clip: float,
) -> Iterator[dict[str, Any]]:
    """The sweep's step 6: GENERATOR_FP8, GENERATOR_FIRST_BLOCK_CACHE and GENERATOR_GUIDANCE_STOP through the
    generator's own functions, compiled as the service would run them, each compared with the exact compiled
    frames; then the exact model is put back, compiled and warmed up for what follows."""
    from generator.pipelines import fp8, guidance, speed

    pipeline = natural.pipeline
    replaced: list = []
    decisions = StepCacheDecisions()

    def compared(result: dict[str, Any]) -> dict[str, Any]:
        if "compiled" in exact:
            result["difference_from_compiled_exact"] = frame_difference(natural.last_frames, exact["compiled"])
        return result

    def float8() -> dict[str, Any]:
        fp8.check_fp8_support(natural.device)
        replaced.extend(fp8.quantize_transformers(pipeline))
        recompile(natural)
        result = run_direct(natural, size, args, clock, new_prompts=True)
        exact["fp8"] = natural.last_frames
        return {"fp8_layers": len(replaced), **compared(with_ratio(result, "baseline"))}

    needs_s = per_clip * (1 + args.repeats) + 20  # a new compile (~15 s), a first request and the repeats
    yield measured("compiled_fp8", float8, needs_s=needs_s)
    lever = "compiled_fp8" if replaced else "compiled"

    def torchao_float8() -> dict[str, Any]:
        """The same layers through torchao (GENERATOR_FP8_KERNELS=torchao), compiled; then back to the hand-written
        kernels for the levers stacked on FP8 below."""
        fp8.restore(replaced)
        replaced.clear()
        try:
            replaced.extend(fp8.quantize_transformers(pipeline, "torchao"))
            recompile(natural)
            result = run_direct(natural, size, args, clock, new_prompts=True)
            result["fp8_layers"] = len(replaced)
            if "fp8" in exact:
                result["difference_from_fp8_hanul"] = frame_difference(natural.last_frames, exact["fp8"])
            return compared(with_ratio(result, "baseline"))
        finally:
            fp8.restore(replaced)
            replaced.clear()
            replaced.extend(fp8.quantize_transformers(pipeline))
            recompile(natural)

    if replaced:  # issue 22 ranks torchao's kernels above the distilled FP8 line: first, while time is left
        yield measured("compiled_fp8_torchao", torchao_float8, needs_s=needs_s)
        yield measured(
            "compiled_fp8_8_steps_no_guidance",
            lambda: with_ratio(
                run_direct(natural, size, distilled, clock, new_prompts=True), "baseline_8_steps_no_guidance"
            ),
            needs_s=per_clip + 20,
        )

    def with_lever(set_up: Callable[[], None], figures: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Requests with one more lever on top of FP8 (when it ran), compiled afresh for it."""
        set_up()
        recompile(natural)
        decisions.take()
        result = run_direct(natural, size, args, clock, new_prompts=True)
        result.update(figures())
        if "fp8" in exact:
            result["difference_from_fp8"] = frame_difference(natural.last_frames, exact["fp8"])
        return compared(with_ratio(result, "baseline"))

    def first_block_cache(threshold: float) -> None:
        speed.disable_first_block_cache(pipeline)
        speed.enable_first_block_cache(pipeline, threshold)

    def guidance_stop(stop: float) -> None:
        guidance.remove_guidance_stop(pipeline)
        guidance.apply_guidance_stop(pipeline, stop)

    for threshold in args.first_block_cache:
        yield measured(
            f"{lever}_first_block_cache_{threshold:g}",
            lambda threshold=threshold: with_lever(
                lambda: first_block_cache(threshold),
                lambda: {"step_cache": {"threshold": threshold, **decisions.take(), "requests": 1 + args.repeats}},
            ),
            needs_s=needs_s,
        )
    speed.disable_first_block_cache(pipeline)
    for stop in args.guidance_stop:
        yield measured(
            f"{lever}_guidance_stop_{stop:g}",
            lambda stop=stop: with_lever(
                lambda: guidance_stop(stop), lambda: {"guided_steps": guidance.guided_steps(stop, args.steps)}
            ),
            needs_s=needs_s,
        )

    def back_to_exact() -> dict[str, Any]:
        speed.disable_first_block_cache(pipeline)
        guidance.remove_guidance_stop(pipeline)
        fp8.restore(replaced)
        replaced.clear()
        recompile(natural)
        result: dict[str, Any] = {}  # no warm-up: each variant's first request compiles what it needs
        if "compiled" in exact:  # the compiled variant's last request again: the exact model must be back
            from generator.render import render_video

            render_video(natural, spec_for(natural, size, args, 0, None, new_prompt(args.repeats - 1)))
            clock.collect()
            result["difference_from_compiled_exact"] = frame_difference(natural.last_frames, exact["compiled"])
        return result

    yield measured("back_to_exact_compiled", back_to_exact)


def variant_runner(
    case: str, args: argparse.Namespace, started: float, device: torch.device
) -> Callable[..., dict[str, Any]]:
    """A sweep's `measured(variant, body, needs_s)`: one JSON line per variant, skipped when fewer than `needs_s`
    seconds of --deadline-s are left, its error recorded instead of raised, its wall time and GPU peak added."""
    cuda = device.type == "cuda"

    def measured(variant: str, body: Callable[[], dict[str, Any]], needs_s: float = 0.0) -> dict[str, Any]:
        line: dict[str, Any] = {"case": case, "variant": variant}
        left = args.deadline_s - (time.perf_counter() - started) if args.deadline_s else float("inf")
        if left < needs_s:
            return {**line, "skipped": f"under {needs_s:.0f} s left of --deadline-s"}
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        begun = time.perf_counter()
        try:
            line.update(body())
        except Exception as error:
            line["error"] = f"{type(error).__name__}: {error}"[:600]
        line["variant_wall_s"] = round(time.perf_counter() - begun, 2)
        if cuda:
            line["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        return line

    return measured


def run_sweep(args: argparse.Namespace, device: torch.device) -> Iterator[dict[str, Any]]:
    """Every LTX measurement of a GPU session, in one process: the model is built once and the plain diffusers
    baseline is timed once, before anything is compiled. Yields one line per variant, in this order:

    1. the baseline at 20 steps with guidance 3, and at 8 steps without guidance (a distilled model's settings);
    2. our eager request → MP4 bytes with each attention backend of `--eager-backends`, compared with `native`;
    3. the MP4 encode of a moving pattern at each preset of ENCODE_PRESETS and of the rendered noise, on this
       machine's CPU;
    4. the regional compile + warm-up with the fastest eager backend, then requests, frames compared with eager;
    5. the compiled render at 8 steps without guidance: the encoder fed by libswscale, then the MP4 cut between
       each count of `--mp4-parts` encoders;
    6. the approximate levers, compiled: FP8 (20 steps, torchao's kernels, then 8 without guidance), then FP8 with
       FirstBlockCache at each threshold of `--first-block-cache`, then FP8 with guidance stopping at each
       `--guidance-stop`; frames compared with the exact compiled ones, steps counted; then the exact model again,
       compiled and warmed up;
    7. long videos at 8 steps: an extension, a `--chain-seconds` chain;
    8. the best peer (ParaAttention's recipe, 20 and 8 steps), then CUDA graphs at 8 steps;
    9. the real service (HTTP, queue, worker): one job, then `--jobs` at once;
    10. while `--deadline-s` leaves time: 1216×704, an extension, and the 24 GB path (CPU offload + VAE tiling).

    A variant that fails yields its error and the sweep goes on."""
    cuda = device.type == "cuda"
    sizes = TINY if args.tiny else REAL
    size = sizes["clip"]
    started = time.perf_counter()
    distilled = argparse.Namespace(**{**vars(args), "steps": 8 if not args.tiny else 2, "guidance": 1.0})

    measured = variant_runner("sweep", args, started, device)

    built = time.perf_counter()
    backend = make_backend("clip", args, device)
    setup = {
        **describe("sweep", size, args, device),
        "encoded_frames": "a moving pattern of the rendered shape, after the full render (random weights render noise)",
        "variant": "setup",
        "build_s": round(time.perf_counter() - built, 2),
    }
    yield setup
    baselines = {}
    for key, call_args in (("baseline", args), ("baseline_8_steps_no_guidance", distilled)):
        line = measured(key, lambda call_args=call_args: baseline_times(backend, "clip", size, call_args, cuda))
        baselines[key] = line.get("full_call_s_median")
        yield line

    clock = StageClock(device)
    instrument(backend, clock)
    natural = NaturalLooking(backend)  # every request below: the full GPU render, then a real clip's encode cost
    eager_frames: dict[str, np.ndarray] = {}
    eager_times: dict[str, float] = {}

    def with_ratio(result: dict[str, Any], baseline_key: str) -> dict[str, Any]:
        if baselines.get(baseline_key):
            result["ratio_to_baseline"] = round(baselines[baseline_key] / result["median"]["end_to_end_s"], 3)
        return result

    for name in args.eager_backends:

        def eager(name: str = name) -> dict[str, Any]:
            use_attention(backend, name)
            result = run_direct(natural, size, args, clock, new_prompts=True)
            frames = natural.last_frames
            eager_frames[name], eager_times[name] = frames, result["median"]["end_to_end_s"]
            if name != "native" and "native" in eager_frames:
                result["difference_from_native"] = frame_difference(frames, eager_frames["native"])
            return with_ratio(result, "baseline")

        yield measured(f"eager_{name}", eager)

    # The clip's shape: the eager render's frames when there is one (their noise is encoded too), else a pattern.
    rendered = eager_frames.get("native")
    clip_shape = (size[2], size[1], size[0], 3)
    if args.encode_presets:

        def encodes() -> dict[str, Any]:
            """Random weights render noise, which no encoder compresses (it passes the byte cap and is encoded
            twice): the moving pattern of cpu_figures.py stands in for a real clip's content."""
            from generator.media import previews, tails, writing

            result: dict[str, Any] = {"cpu_count": os.cpu_count(), "frames_shape": list(clip_shape)}
            contents = {"moving_pattern": (natural.pattern_of(clip_shape), tuple(args.encode_presets))}
            if rendered is not None:
                contents["rendered_noise"] = (rendered, (NOISE_PRESET,))
            with tempfile.TemporaryDirectory() as folder:
                for content, (frames, presets) in contents.items():
                    for preset in presets:
                        began = time.perf_counter()
                        encoded = writing.encode_mp4(
                            frames, 24, Path(folder) / "c.mp4", 10 * 1024 * 1024, preset=preset
                        )
                        result[f"{content}_{preset}"] = {
                            "s": round(time.perf_counter() - began, 3),
                            "bytes": encoded.size_bytes,
                            "attempts": encoded.attempts,
                        }
                # What a job writes beside its MP4 (a second CPU thread in the worker): previews, lossless tail.
                pattern = contents["moving_pattern"][0]
                began = time.perf_counter()
                previews.write_thumbnail(pattern[0], Path(folder) / "t.webp")
                previews.write_spritesheet(pattern, Path(folder) / "s.jpg")
                result["previews_s"] = round(time.perf_counter() - began, 3)
                began = time.perf_counter()
                tail = tails.save_tail(pattern[-17:], Path(folder) / "tail.mkv", 24)
                result["tail_save_s"] = round(time.perf_counter() - began, 3)
                began = time.perf_counter()
                tails.load_tail(tail)
                result["tail_load_s"] = round(time.perf_counter() - began, 3)
            return result

        yield measured("mp4_encode_presets", encodes)

    def feed() -> dict[str, Any]:
        """Where the MP4's time goes on this machine (cpu_figures.mp4_feed): libswscale vs torch on the GPU, x264
        alone, flush."""
        from cpu_figures import mp4_feed

        with tempfile.TemporaryDirectory() as folder:
            pattern = natural.pattern_of(clip_shape)
            return {"cpu_count": os.cpu_count(), **mp4_feed(pattern, Path(folder), 2, "cuda" if cuda else None)}

    yield measured("mp4_feed", feed)

    best = min(eager_times, key=eager_times.__getitem__) if eager_times else "native"

    exact: dict[str, np.ndarray] = {}  # the compiled model's frames, before any approximate lever

    def compiled() -> dict[str, Any]:
        use_attention(backend, best)
        result = {"attention_backend": best, **apply_compile(backend, clock)}
        timed = run_direct(natural, size, args, clock, new_prompts=True)
        result.update(timed)
        frames = exact["compiled"] = natural.last_frames
        if best in eager_frames:
            result["difference_from_eager_same_backend"] = frame_difference(frames, eager_frames[best])
        if "native" in eager_frames:
            result["difference_from_eager_native"] = frame_difference(frames, eager_frames["native"])
        return with_ratio(result, "baseline")

    compile_line = measured("compiled", compiled)
    yield compile_line
    per_clip = compile_line.get("median", {}).get("end_to_end_s") or eager_times.get(best) or 10.0

    def compiled_distilled() -> dict[str, Any]:
        result = with_ratio(
            run_direct(natural, size, distilled, clock, new_prompts=True), "baseline_8_steps_no_guidance"
        )
        exact["compiled_8_steps"] = natural.last_frames
        return result

    yield measured("compiled_8_steps_no_guidance", compiled_distilled)

    def swscale_feed() -> dict[str, Any]:
        """The distilled request with the encoder converting by libswscale as before (A/B of the YUV planes)."""
        FEED["swscale"] = True
        try:
            return with_ratio(
                run_direct(natural, size, distilled, clock, new_prompts=True), "baseline_8_steps_no_guidance"
            )
        finally:
            FEED["swscale"] = False

    yield measured("compiled_8_steps_no_guidance_swscale_feed", swscale_feed, needs_s=per_clip + 10)

    for count in args.mp4_parts:

        def parted(count: int = count) -> dict[str, Any]:
            """The distilled request with its MP4 cut between `count` parallel encoders (GENERATOR_MP4_PARTS)."""
            FEED["parts"] = count
            try:
                return with_ratio(
                    run_direct(natural, size, distilled, clock, new_prompts=True), "baseline_8_steps_no_guidance"
                )
            finally:
                FEED["parts"] = 1

        yield measured(f"compiled_8_steps_no_guidance_mp4_parts_{count}", parted, needs_s=per_clip + 10)

    def decoder_and_text_compiled() -> dict[str, Any]:
        """The distilled request with the VAE decoder and the text encoder compiled too (its first request compiles
        them at this size: `first_request` has the cost); `vae_decode_s` and `text_encoding_s` against
        compiled_8_steps_no_guidance's say what it saves. Frames compared with those of the same requests."""
        from generator.pipelines import speed

        parts = speed.compile_decoder_and_text_encoder(backend.pipeline)
        try:
            result = {"compiled_parts": parts, **run_direct(natural, size, distilled, clock, new_prompts=True)}
            if "compiled_8_steps" in exact:
                result["difference_from_blocks_only"] = frame_difference(natural.last_frames, exact["compiled_8_steps"])
            return with_ratio(result, "baseline_8_steps_no_guidance")
        finally:
            speed.uncompile_decoder_and_text_encoder(backend.pipeline)

    yield measured(
        "compiled_8_steps_no_guidance_decoder_text_compiled", decoder_and_text_compiled, needs_s=per_clip * 2 + 60
    )

    def peer(call_args: argparse.Namespace, baseline_key: str) -> dict[str, Any]:
        from generator.pipelines import speed

        speed.uncompile_blocks(backend.pipeline)
        try:
            result = peer_times(backend, "clip", size, call_args, cuda)
        finally:
            recompile(natural)
            clock.collect()  # the peer's VAE calls passed the bench's hooks: not the next request's
        if baselines.get(baseline_key):
            result["ratio_to_baseline"] = round(baselines[baseline_key] / result["full_call_s_median"], 3)
        return result

    yield from approximate_levers(natural, size, distilled, args, clock, exact, with_ratio, measured, per_clip)

    # Long videos at the distilled settings (issue 22: an extension <= 1.0 s, 60 s <= 15 s end to end).
    yield measured(
        "compiled_8_steps_extension",
        lambda: run_direct(natural, sizes["extension"], distilled, clock),
        needs_s=per_clip * 3 + 30,
    )
    chain_frames = args.chain_seconds * backend.profile.fps if not args.tiny else 3 * size[2]
    once = argparse.Namespace(**{**vars(distilled), "repeats": 1})
    yield measured(
        f"compiled_8_steps_{args.chain_seconds}s_chain",
        lambda: run_direct(natural, (*size[:2], chain_frames, 0, 1), once, clock, new_prompts=True),
        needs_s=per_clip * 0.8 * args.chain_seconds / 5 + 30,  # segments at 8 steps: about a third of a clip
    )

    # The best peer, on the same weights (timed on the H200 on 2026-12-04: after the levers whose decisions wait on
    # figures, so a session cut short by its deadline has those first).
    yield measured("peer_para_attn_recipe", lambda: peer(args, "baseline"), needs_s=per_clip * 4 + 60)
    yield measured(
        "peer_para_attn_recipe_8_steps_no_guidance",
        lambda: peer(distilled, "baseline_8_steps_no_guidance"),
        needs_s=per_clip * 3 + 60,
    )

    def cuda_graphs() -> dict[str, Any]:
        """The distilled path with the blocks compiled in mode reduce-overhead (CUDA graphs: the launch overhead of
        a few short steps), frames compared with the default compile's; then the default compile again."""
        from generator.pipelines import speed

        speed.uncompile_blocks(backend.pipeline)
        torch._dynamo.reset()
        try:
            speed.compile_blocks(backend.pipeline, mode="reduce-overhead")
            result = run_direct(natural, size, distilled, clock, new_prompts=True)
            if "compiled_8_steps" in exact:  # the same requests (prompts, seed) as compiled_8_steps_no_guidance
                result["difference_from_default_compile"] = frame_difference(
                    natural.last_frames, exact["compiled_8_steps"]
                )
            return with_ratio(result, "baseline_8_steps_no_guidance")
        finally:
            recompile(natural)

    yield measured("compiled_8_steps_no_guidance_cuda_graphs", cuda_graphs, needs_s=per_clip * 3 + 40)

    queue_size = (*size[:4], args.jobs)
    yield measured(
        "queue",
        lambda: asyncio.run(run_queue(natural, queue_size, args, device)),
        needs_s=per_clip * (2 + args.repeats + args.jobs) + 30,
    )
    yield measured(
        "compiled_1216x704",
        lambda: run_direct(natural, sizes["clip_hd"], args, clock, new_prompts=True),
        needs_s=per_clip * 2.5 * (1 + args.repeats) + 60,
    )
    yield measured(
        "compiled_extension",
        lambda: run_direct(natural, sizes["extension"], args, clock),
        needs_s=per_clip * (2 + args.repeats) + 60,
    )

    def offloaded() -> dict[str, Any]:
        backend.pipeline.vae.enable_tiling()
        backend.pipeline.enable_model_cpu_offload(device=device)
        once = argparse.Namespace(**{**vars(args), "repeats": 1})
        return run_direct(natural, size, once, clock, new_prompts=True)

    if cuda:  # last: offloading moves the weights off the GPU for good
        yield measured("compiled_cpu_offload_vae_tiling", offloaded, needs_s=per_clip * 6 + 30)
    yield {"case": "sweep", "variant": "end", "sweep_wall_s": round(time.perf_counter() - started, 1)}


# --- the Wan sweep: issue 22's Wan levers in one process ---------------------------------------------------------


def run_wan_sweep(args: argparse.Namespace, device: torch.device) -> Iterator[dict[str, Any]]:
    """Wan 2.1 1.3B (case `wan`'s model and size) in one process, in order of worth: the plain WanPipeline (full
    calls), ours compiled (and how many transformer calls a step makes: diffusers runs the prompt and the negative
    prompt as two passes), ours compiled with each attention backend of `--compiled-backends`, FP8 compiled with
    torchao's kernels; then the lines the H200 measured already: the peer recipe (para-attn's first-block cache +
    torch.compile, undone after), hand-written FP8, the two passes in one batch (cfg_batch.py), ours eager.
    `--deadline-s` skips what no longer fits."""
    from generator.pipelines import fp8, speed

    cuda = device.type == "cuda"
    size = (TINY if args.tiny else REAL)["wan"]
    started = time.perf_counter()

    measured = variant_runner("sweep_wan", args, started, device)

    built = time.perf_counter()
    backend = make_backend("wan", args, device)
    yield {
        **describe("sweep_wan", size, args, device),
        "variant": "setup",
        "build_s": round(time.perf_counter() - built, 2),
    }

    def plain() -> dict[str, Any]:
        pipe, call = plain_pipeline(backend, "wan", size, args)
        return {
            "what": "plain diffusers WanPipeline, eager, same weights",
            **time_calls(pipe, call, args.repeats, cuda, denoise=False),
        }

    baseline_line = measured("baseline", plain)
    baseline = baseline_line.get("full_call_s_median")
    yield baseline_line
    per_clip = baseline or 60.0
    clock = StageClock(device)
    instrument(backend, clock)
    natural = NaturalLooking(backend)
    calls: list[int] = []
    backend.pipeline.transformer.register_forward_pre_hook(lambda *_: calls.append(1))
    exact: dict[str, np.ndarray] = {}

    def ours() -> dict[str, Any]:
        calls.clear()
        result = run_direct(natural, size, args, clock, new_prompts=True)
        requests = 1 + args.repeats
        result["transformer_calls_per_step"] = round(len(calls) / (requests * args.steps), 2)
        if baseline:
            result["ratio_to_baseline"] = round(baseline / result["median"]["end_to_end_s"], 3)
        if "compiled" in exact:
            result["difference_from_compiled"] = frame_difference(natural.last_frames, exact["compiled"])
        return result

    def compiled() -> dict[str, Any]:
        speed.compile_blocks(backend.pipeline)
        result = ours()  # the first request compiles (its `first_request`)
        exact["compiled"] = natural.last_frames
        return result

    needs_s = per_clip * (1 + args.repeats) + 25  # the compile (~20 s), a first request and the repeats
    yield measured("compiled", compiled, needs_s=needs_s)

    def other_attention(name: str) -> dict[str, Any]:
        """The compiled path with another attention kernel: at 32k tokens self-attention is most of Wan's work.
        Compiled afresh each way (torch's kernel order, `cudnn_first`, is no dynamo guard); frames compared with
        `compiled`."""
        use_attention(backend, name)
        recompile(natural)
        try:
            return {"attention_backend": name, **ours()}
        finally:
            use_attention(backend, "native")
            recompile(natural)

    for name in args.compiled_backends:
        yield measured(f"compiled_{name.strip('_')}", lambda name=name: other_attention(name), needs_s=needs_s)
    replaced: list = []

    def float8(kernels: str) -> dict[str, Any]:
        fp8.restore(replaced)
        replaced.clear()
        if kernels == "hanul":
            fp8.check_fp8_support(device)
        replaced.extend(fp8.quantize_transformers(backend.pipeline, kernels))
        recompile(natural)
        return {"fp8_layers": len(replaced), **ours()}

    yield measured("compiled_fp8_torchao", lambda: float8("torchao"), needs_s=needs_s)
    # Measured on the H200 (2026-12-04, 10 steps), so after the lines whose decisions wait on figures: the peer
    # 13.72 s, hand-written FP8 13.61, one batch 13.75, eager 15.80 against compiled 13.73.

    def peer() -> dict[str, Any]:
        fp8.restore(replaced)
        replaced.clear()
        speed.uncompile_blocks(backend.pipeline)
        try:
            result = peer_times(backend, "wan", size, args, cuda)
        finally:
            recompile(natural)
            clock.collect()
        if baseline:
            result["ratio_to_baseline"] = round(baseline / result["full_call_s_median"], 3)
        return result

    yield measured("peer_para_attn_recipe", peer, needs_s=per_clip * (1 + args.repeats) + 30)
    yield measured("compiled_fp8", lambda: float8("hanul"), needs_s=needs_s)
    fp8.restore(replaced)

    def one_batch() -> dict[str, Any]:
        """Prompt and negative prompt in one transformer call per step (cfg_batch.py), compiled; frames compared
        with the two calls' (`compiled`)."""
        from generator.pipelines.cfg_batch import apply_one_batch_guidance, remove_one_batch_guidance

        hooks = apply_one_batch_guidance(backend.pipeline)
        try:
            result = ours()  # the first request compiles the blocks for a batch of two
        finally:
            remove_one_batch_guidance(backend.pipeline)
        result["batched_calls_per_step"] = round(
            sum(h.batched_calls for h in hooks) / ((1 + args.repeats) * args.steps), 2
        )
        return result

    yield measured("compiled_one_batch", one_batch, needs_s=needs_s)
    speed.uncompile_blocks(backend.pipeline)
    yield measured("eager", ours, needs_s=per_clip * (1 + args.repeats) + 10)
    yield {"case": "sweep_wan", "variant": "end", "sweep_wall_s": round(time.perf_counter() - started, 1)}


# --- main ---------------------------------------------------------------------------------------------------------


def describe(case: str, size: tuple, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The configuration a result line was measured with."""
    import diffusers

    return {
        "case": case,
        "tiny": args.tiny,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "width": size[0],
        "height": size[1],
        "frames": size[2],
        "context_frames": size[3],
        "steps": args.steps,
        "guidance": args.guidance,
        "compile": args.compile,
        "attention_backend": args.attention_backend,
        "prompt_cache": args.prompt_cache,
        "vae_tiling": args.vae_tiling,
        "cpu_offload": args.cpu_offload,
    }


def run_case(case: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    cuda = device.type == "cuda"
    size = (TINY if args.tiny else REAL)[case]
    if case == "queue":
        size = (*size[:4], args.jobs)
    if cuda:
        torch.cuda.empty_cache()
    built = time.perf_counter()
    backend = make_backend(case, args, device)
    if cuda:  # after the build: offloading moves weights off the GPU only once it is enabled
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    result = {**describe(case, size, args, device), "build_s": round(time.perf_counter() - built, 2)}
    if not args.no_baseline:
        result["baseline"] = baseline_times(backend, case, size, args, cuda)
    clock = StageClock(device)
    instrument(backend, clock)
    if args.compile:
        result.update(apply_compile(backend, clock))
    if case == "queue":
        result.update(asyncio.run(run_queue(backend, size, args, device)))
        ours = result["single_job"]["end_to_end_s"]
    else:
        result.update(run_direct(backend, size, args, clock))
        ours = result["median"]["end_to_end_s"]
    if "baseline" in result:
        result["ratio_to_baseline"] = round(result["baseline"]["full_call_s_median"] / ours, 3)
    if cuda:
        result["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    del backend
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--case",
        default="clip",
        choices=[*CASES, "all", "sweep", "sweep_wan", "ltx2"],
        help="sweep: every LTX measurement in one process; sweep_wan: Wan's levers and peer in one process; "
        "ltx2: an LTX-2 clip with sound end to end (bench/ltx2_case.py)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="default: 20 (baseline_ltx.py's), 30 for wan; tiny 2")
    parser.add_argument("--guidance", type=float, default=None, help="default: 3 (baseline_ltx.py's), 5 for wan")
    parser.add_argument("--compile", action="store_true", help="GENERATOR_COMPILE's path: compile + warm-up")
    parser.add_argument("--attention-backend", default="native", help="as GENERATOR_ATTENTION_BACKEND")
    parser.add_argument("--prompt-cache", type=int, default=32, help="as GENERATOR_PROMPT_CACHE_SIZE")
    parser.add_argument("--vae-tiling", action="store_true", help="as GENERATOR_VAE_TILING")
    parser.add_argument("--cpu-offload", action="store_true", help="as GENERATOR_CPU_OFFLOAD (CUDA only)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain diffusers timing")
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU: tests this script")
    parser.add_argument("--device", default="auto", help="auto: cuda unless --tiny")
    parser.add_argument("--jobs", type=int, default=None, help="jobs posted at once in the queue case (default 20)")
    parser.add_argument("--deadline-s", type=float, default=None, help="sweep: skip late variants past this budget")
    parser.add_argument(
        "--eager-backends",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=["native"],
        help="sweep: attention backends timed eagerly, comma-separated (H100 2026-11-25: native fastest)",
    )
    parser.add_argument(
        "--compiled-backends",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=["cudnn_first"],
        help="sweep_wan: attention settings timed on the compiled path besides native, comma-separated",
    )
    parser.add_argument(
        "--first-block-cache",
        type=lambda text: [float(value) for value in text.split(",") if value.strip()],
        default=[0.05, 0.1, 0.2],
        help="sweep: FirstBlockCache thresholds to time with FP8, comma-separated ('' for none)",
    )
    parser.add_argument(
        "--guidance-stop",
        type=lambda text: [float(value) for value in text.split(",") if value.strip()],
        default=[0.5],
        help="sweep: GENERATOR_GUIDANCE_STOP values to time with FP8, comma-separated ('' for none)",
    )
    parser.add_argument("--peer-threshold", type=float, default=0.1, help="the peer recipe's first-block cache")
    parser.add_argument(
        "--peer-compile-mode",
        default="default",
        help="torch.compile mode of the peer recipe's whole transformer (ParaAttention's docs: "
        "max-autotune-no-cudagraphs, which autotunes for minutes)",
    )
    parser.add_argument(
        "--encode-presets",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=list(ENCODE_PRESETS),
        help="sweep: x264 presets timed on a moving pattern, comma-separated ('' skips mp4_encode_presets)",
    )
    parser.add_argument(
        "--mp4-parts",
        type=lambda text: [int(value) for value in text.split(",") if value.strip()],
        default=[2, 4],
        help="sweep: GENERATOR_MP4_PARTS values timed on the 8-step request, comma-separated ('' for none)",
    )
    parser.add_argument("--chain-seconds", type=int, default=60, help="sweep: the long video chained at 8 steps")
    parser.add_argument("--out", help="append the JSON lines to this file")
    args = parser.parse_args(argv)
    if args.attention_backend.endswith("_hub"):
        parser.error("*_hub attention backends download kernels at run time")
    if args.cpu_offload and args.tiny:
        parser.error("--cpu-offload needs a CUDA device; the tiny models run on the CPU")
    return args


def defaults_for(case: str, args: argparse.Namespace) -> argparse.Namespace:
    steps = args.steps if args.steps is not None else 2 if args.tiny else 30 if case == "wan" else 20
    guidance = args.guidance if args.guidance is not None else 5.0 if case == "wan" else 3.0
    jobs = args.jobs if args.jobs is not None else (TINY if args.tiny else REAL)["queue"][4]
    return argparse.Namespace(**{**vars(args), "steps": steps, "guidance": guidance, "jobs": jobs})


def main(argv: list[str] | None = None, emit: Callable[[str], None] = print) -> list[dict[str, Any]]:
    args = parse_args(argv)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cpu" and not args.tiny:
        raise SystemExit("the real-size benchmark needs a CUDA GPU; use --tiny to check the script on a CPU")
    import logging

    logging.getLogger("diffusers").setLevel(logging.ERROR)
    if args.case == "sweep":
        lines = run_sweep(defaults_for("clip", args), device)
    elif args.case == "sweep_wan":
        lines = run_wan_sweep(defaults_for("wan", args), device)
    elif args.case == "ltx2":
        import ltx2_case

        lines = [ltx2_case.run_ltx2(args, device)]
    else:
        lines = (
            run_case(case, defaults_for(case, args), device) for case in (CASES if args.case == "all" else (args.case,))
        )
    results = []
    for result in lines:
        line = json.dumps(result)
        emit(line)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(line + "\n")
        results.append(result)
    return results


if __name__ == "__main__":
    main()
