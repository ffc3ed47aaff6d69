"""Benchmark of Hanul's generator at real size with random weights, through the generator's own code path.

Random weights cost exactly what trained ones cost. The pipelines are built the way bench/baseline_ltx.py builds
them (nothing is downloaded), wrapped in the generator's backend classes (LTXBackend / WanBackend with the real
profiles, the speed levers of generator/pipelines/speed.py), and rendered through generator.render.render_video
and generator.encode.encode_mp4; the queue case goes through the real service (HTTP API, queue, worker).

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


def baseline_times(backend: Any, case: str, size: tuple, args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    """baseline_ltx.py's measurement on the same weights: plain LTXPipeline (LTXConditionPipeline with the same
    conditioning for an extension; WanPipeline for Wan), warm-up, then median full call to numpy and median
    denoise-only call. Run before any compilation, so it is the eager pipeline."""
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
        pipe = backend.pipeline
    elif context:
        pipe = LTXConditionPipeline(**backend.pipeline.components)
        video = torch.rand(context, 3, height, width, device=backend.device)
        call["conditions"] = [LTXVideoCondition(video=video, frame_index=0, strength=1.0)]
    else:
        pipe = LTXPipeline(**backend.pipeline.components)
    pipe.set_progress_bar_config(disable=True)
    device_type = "cuda" if cuda else "cpu"

    def timed(output_type: str) -> float:
        sync(cuda)
        start = time.perf_counter()
        pipe(**call, output_type=output_type, generator=torch.Generator(device_type).manual_seed(0))
        sync(cuda)
        return time.perf_counter() - start

    with torch.no_grad():
        pipe(**{**call, "num_inference_steps": 2}, output_type="latent")  # warm-up
        full = [timed("np") for _ in range(args.repeats)]
        denoise = [timed("latent") for _ in range(args.repeats)]
    return {
        "what": f"plain diffusers {type(pipe).__name__}, eager, same weights",
        "full_call_s_median": median(full),
        "denoise_only_s_median": median(denoise),
    }


# --- direct cases: render_video + encode_mp4 ----------------------------------------------------------------------


def spec_for(backend: Any, size: tuple, args: argparse.Namespace, seed: int, parent_tail: np.ndarray | None) -> Any:
    from generator.render import VideoSpec

    width, height, frames, context, _ = size
    return VideoSpec(
        prompt=PROMPT,
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


def one_clip(backend: Any, spec: Any, clock: StageClock, workdir: Path, parent: np.ndarray | None) -> dict[str, float]:
    """One request: render (render_video) → MP4 bytes (encode_mp4), as the worker does it, with stage times."""
    from generator import encode
    from generator.render import render_video

    cuda = clock.cuda
    sync(cuda)
    started = time.perf_counter()
    rendered = render_video(backend, spec)
    sync(cuda)
    rendered_at = time.perf_counter()
    frames = rendered.frames if parent is None else np.concatenate([parent, rendered.frames])
    path = workdir / "clip.mp4"
    encode.encode_mp4(frames, spec.fps, path, 10 * 1024 * 1024)
    data = path.read_bytes()
    finished = time.perf_counter()
    stages = clock.collect()
    known = sum(stages.get(key, 0.0) for key in ("text_encoding_s", "vae_encode_s", "vae_decode_s", "postprocess_s"))
    known += stages.get("denoising_s", 0.0) + stages.get("to_uint8_s", 0.0)
    return {
        **stages,
        "render_s": rendered_at - started,
        "stitch_s": rendered.timings.get("stitch", 0.0),
        "pipeline_other_s": max(0.0, rendered_at - started - known - rendered.timings.get("stitch", 0.0)),
        "mp4_encode_s": finished - rendered_at,
        "mp4_bytes": float(len(data)),
        "end_to_end_s": finished - started,
    }


def run_direct(case: str, backend: Any, size: tuple, args: argparse.Namespace, clock: StageClock) -> dict:
    parent = tail = None
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        if size[3]:  # an extension continues a clip rendered first, from its lossless tail
            from generator.render import render_video

            width, height, frames, _, _ = size
            first = render_video(backend, spec_for(backend, (width, height, frames, 0, 1), args, 1, None))
            parent, tail = first.frames, first.tail[-size[3] :]
            clock.collect()
            if getattr(backend, "prompt_cache", None) is not None:  # an extension's prompt is usually new
                backend.prompt_cache.clear()
                backend.prompt_cache.hits = backend.prompt_cache.misses = 0
        spec = spec_for(backend, size, args, 0, tail)
        first_run = one_clip(backend, spec, clock, workdir, parent)  # warm-up: lazy init, compile on new shapes
        runs = [one_clip(backend, spec, clock, workdir, parent) for _ in range(args.repeats)]
        repeat_prompt = None
        cache = getattr(backend, "prompt_cache", None)
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
                    async with http.post("videos", json={**body, "seed": seed}) as response:
                        response.raise_for_status()
                        return (await response.json())["id"], started

                async def finished(video_id: str) -> bytes:
                    while True:
                        async with http.get(f"videos/{video_id}") as response:
                            status = (await response.json())["status"]
                        if status == "completed":
                            async with http.get(f"videos/{video_id}/content") as response:
                                return await response.read()
                        if status == "failed":
                            raise RuntimeError(f"{video_id} failed")
                        await asyncio.sleep(0.005)

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


# --- main ---------------------------------------------------------------------------------------------------------


def run_case(case: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    import diffusers

    cuda = device.type == "cuda"
    size = (TINY if args.tiny else REAL)[case]
    if cuda:
        torch.cuda.empty_cache()
    built = time.perf_counter()
    backend = make_backend(case, args, device)
    if cuda:  # after the build: offloading moves weights off the GPU only once it is enabled
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    result: dict[str, Any] = {
        "case": case,
        "tiny": args.tiny,
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
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
        "build_s": round(time.perf_counter() - built, 2),
    }
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
        result.update(run_direct(case, backend, size, args, clock))
        ours = result["median"]["end_to_end_s"]
    if "baseline" in result:
        result["ratio_to_baseline"] = round(result["baseline"]["full_call_s_median"] / ours, 3)
    if cuda:
        result["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    del backend
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="clip", choices=[*CASES, "all"])
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
    return argparse.Namespace(**{**vars(args), "steps": steps, "guidance": guidance})


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
    results = []
    for case in CASES if args.case == "all" else (args.case,):
        result = run_case(case, defaults_for(case, args), device)
        line = json.dumps(result)
        emit(line)
        if args.out:
            with open(args.out, "a") as handle:
                handle.write(line + "\n")
        results.append(result)
    return results


if __name__ == "__main__":
    main()
