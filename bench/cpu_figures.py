"""CPU-side figures that need no GPU: MP4 encode of a real-size clip at three x264 presets, the previews and lossless
tail written beside it, a long video's MP4 after its render (whole, or encoded along), an extension's stitch,
the uint8 conversion of a real-size decoded
video, and the prompt cache's hit vs miss on the tiny model. Prints one JSON line.

    python bench/cpu_figures.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch


def moving_pattern(frames: int, height: int, width: int) -> np.ndarray:
    """A smooth pattern that moves a little each frame, with mild noise: closer to video than pure noise."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(0)
    out = np.empty((frames, height, width, 3), np.uint8)
    for index in range(frames):
        phase = index * 0.08
        red = 127 + 100 * np.sin(cols / 37 + phase)
        green = 127 + 100 * np.sin(rows / 23 - phase)
        blue = 127 + 100 * np.sin((rows + cols) / 51 + 2 * phase)
        picture = np.stack([red, green, blue], -1) + rng.normal(0, 4, (height, width, 3))
        out[index] = picture.clip(0, 255).astype(np.uint8)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return round(float(10 * np.log10(255**2 / max(error, 1e-12))), 2)


def extension_chain(height: int, width: int, folder: Path, links: int = 6) -> dict[str, float]:
    """A clip extended `links` times by 40 frames each, as Hanul does it (the parent's MP4 continued as it is) and as
    it did before (the parent decoded and the whole video encoded again): the first clip's quality at the end of the
    chain (PSNR against the frames rendered), and the last link's encode time."""
    from generator.media import joining, reading, writing

    video = moving_pattern(41 + 40 * links, height, width)
    first = video[:41]
    parts = [video[41 + 40 * i : 81 + 40 * i] for i in range(links)]
    appended = reencoded = writing.encode_mp4(first, 24, folder / "chain-0.mp4", 10 * 2**20).path
    for index, part in enumerate(parts, 1):
        started = time.perf_counter()
        appended = joining.encode_extension(appended, part, 24, folder / f"appended-{index}.mp4", 10 * 2**20).path
        append_s = time.perf_counter() - started
        started = time.perf_counter()
        whole = np.concatenate([reading.decode_video(reencoded)[0], part])
        reencoded = writing.encode_mp4(whole, 24, folder / f"reencoded-{index}.mp4", 10 * 2**20).path
        reencode_s = time.perf_counter() - started

    def opening(path: Path) -> np.ndarray:
        picked = reading.frames_at(path, range(len(first)))
        return np.stack([picked[index] for index in range(len(first))])

    once = psnr(reading.decode_video(folder / "chain-0.mp4")[0], first)
    return {
        f"extension_chain_{links}_first_clip_psnr_encoded_once_db": once,
        f"extension_chain_{links}_first_clip_psnr_appended_db": psnr(opening(appended), first),
        f"extension_chain_{links}_first_clip_psnr_reencoded_db": psnr(opening(reencoded), first),
        f"extension_chain_{links}_last_link_append_s": round(append_s, 4),
        f"extension_chain_{links}_last_link_reencode_s": round(reencode_s, 4),
    }


def capped_chain(height: int, width: int, folder: Path, cap: int = 4_000_000, links: int = 6) -> dict[str, object]:
    """A clip extended `links` times by 40 frames of busier content (noise of ±24 levels from the third link on),
    under a byte cap that the chain passes at its fourth link, through `encode_extension` as the worker does it: how
    each link was written (`crf`, or its bitrate in kbit/s; `=` where the first clip kept its own bits, `~` where
    it was encoded again), the first clip's and the whole video's PSNR at the end, and the time of all links."""
    from generator.media import joining, reading, writing

    rng = np.random.default_rng(5)
    video = moving_pattern(41 + 40 * links, height, width)
    noise = rng.integers(-24, 25, video[121:].shape)
    video[121:] = np.clip(video[121:].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    first = video[:41]
    current = writing.encode_mp4(first, 24, folder / "capped-0.mp4", cap).path
    encoded_once = reading.decode_video(current)[0]
    written, seconds = [], 0.0
    for index in range(links):
        started = time.perf_counter()
        part = video[41 + 40 * index : 81 + 40 * index]
        out = joining.encode_extension(current, part, 24, folder / f"capped-{index + 1}.mp4", cap)
        seconds += time.perf_counter() - started
        kept = np.array_equal(reading.decode_video(out.path)[0][:41], encoded_once)
        written.append(("crf" if out.bitrate is None else f"{out.bitrate // 1000}k") + ("=" if kept else "~"))
        current = out.path
    decoded = reading.decode_video(current)[0]
    return {
        f"capped_chain_{links}_links": written,
        f"capped_chain_{links}_first_clip_psnr_db": psnr(decoded[:41], first),
        f"capped_chain_{links}_whole_psnr_db": psnr(decoded, video),
        f"capped_chain_{links}_encode_s": round(seconds, 2),
    }


def spritesheet_of_a_long_parent(height: int, width: int, folder: Path, repeats: int) -> dict[str, float]:
    """An extension's spritesheet picks frames spread over its parent: here a 55 s chain (121 frames, then ten parts
    of 120 appended, each opening with a keyframe). Decoded in order up to the last picked frame (before
    2026-11-30) or each from the keyframe before it (`frames_at` now)."""
    from generator.media import joining, previews, reading, writing

    path = folder / "long-parent.mp4"
    writing.encode_mp4(moving_pattern(121, height, width), 24, path, 10**8)
    for _ in range(10):
        joining.append_to_mp4(path, moving_pattern(120, height, width), 24, folder / "next.mp4", 10**8)
        (folder / "next.mp4").replace(path)
    frames = reading.frame_count(path)
    picked = [index for index in previews.spritesheet_indices(frames + 120) if index < frames]
    name = f"spritesheet_frames_of_{width}x{height}x{frames}_parent"
    return {
        f"{name}_in_order_s": timed(lambda: reading._frames_in_order(path, picked), repeats),
        f"{name}_seeking_s": timed(lambda: reading._frames_by_seeking(path, picked), repeats),
    }


def encode_along(frames: np.ndarray, fps: int, folder: Path, part: int, repeats: int) -> dict[str, float]:
    """A long (chained) video's MP4 after its render: encoded whole then (before 2026-11-30), or encoded along the
    render one segment at a time, which leaves only the last segment and the flush (now). Segments give `part`
    new frames each, as LTX-Video's 121-frame calls after 17 context frames do."""
    from generator.media import writing

    starts = list(range(0, len(frames), part))
    whole = timed(lambda: writing.encode_mp4(frames, fps, folder / "whole.mp4", 10 * 2**20), repeats)
    after = []
    for _ in range(repeats):
        writer = writing.Mp4Writer(folder / "along.mp4", fps)
        for start in starts[:-1]:  # written while later segments render
            writer.write(frames[start : start + part])
        tick = time.perf_counter()
        writer.write(frames[starts[-1] :])
        assert writer.finish(10 * 2**20) is not None
        after.append(time.perf_counter() - tick)
    key = f"{frames.shape[2]}x{frames.shape[1]}x{len(frames)}"
    return {
        f"mp4_after_render_{key}_whole_s": whole,
        f"mp4_after_render_{key}_encoded_along_s": round(statistics.median(after), 4),
    }


def mp4_feed(frames: np.ndarray, folder: Path, repeats: int, device: str | None = None) -> dict[str, float]:
    """Where an MP4 encode's time goes (issue 22: on the H200's 16 cores the x264 preset hardly mattered): the
    RGB → YUV conversion alone (libswscale frame by frame, as `Mp4Writer` fed x264; torch on the CPU and on
    `device`, uploads and the planes' copy back included), wrapping planes into frames, x264 + muxing alone (frames
    prepared beforehand), the flush and +faststart close, and a whole `Mp4Writer` encode fed each way."""
    import av
    import av.video.reformatter

    from generator.media import writing
    from generator.yuv import yuv420_planes

    height, width = frames.shape[1:3]
    key = f"{width}x{height}x{len(frames)}"
    result: dict[str, float] = {}
    swscale = lambda: [  # noqa: E731  (a new libswscale context per frame: how Mp4Writer fed x264 before)
        av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(interpolation="AREA", format="yuv420p")
        for frame in frames
    ]
    result[f"feed_{key}_swscale_context_per_frame_s"] = timed(swscale, repeats)
    reformatter = av.video.reformatter.VideoReformatter()
    shared = lambda: [  # noqa: E731  (one context for all: how writing.encode_frames converts now)
        reformatter.reformat(av.VideoFrame.from_ndarray(frame, format="rgb24"), interpolation="AREA", format="yuv420p")
        for frame in frames
    ]
    result[f"feed_{key}_swscale_shared_context_s"] = timed(shared, repeats)
    result[f"feed_{key}_yuv_torch_cpu_s"] = timed(lambda: yuv420_planes(frames), repeats)
    if device is not None:
        yuv420_planes(frames[:2], device)  # the device's first use (context, kernels) is not the conversion
        result[f"feed_{key}_yuv_torch_{device.split(':')[0]}_s"] = timed(lambda: yuv420_planes(frames, device), repeats)
    planes = yuv420_planes(frames)
    wrap = lambda: [av.VideoFrame.from_ndarray(plane, format="yuv420p") for plane in planes]  # noqa: E731
    result[f"feed_{key}_wrap_planes_s"] = timed(wrap, repeats)

    def x264_only() -> float:
        prepared = wrap()
        started = time.perf_counter()
        with writing.mp4_container(folder / "x264.mp4") as container:
            stream = writing._x264_stream(container, 24, width, height, writing.PRESET, crf=writing.CRF)
            for index, frame in enumerate(prepared):
                frame.pts = index
                for packet in stream.encode(frame):
                    container.mux(packet)
            flushed = time.perf_counter()
            writing._flush(container, stream)
        result[f"feed_{key}_flush_close_s"] = round(time.perf_counter() - flushed, 4)
        return time.perf_counter() - started

    result[f"feed_{key}_x264_and_mux_only_s"] = round(statistics.median(x264_only() for _ in range(repeats)), 4)
    ways = {"swscale": None, "planes_cpu": "cpu"}
    if device is not None:
        ways[f"planes_{device.split(':')[0]}"] = device
    for name, convert_on in ways.items():

        def written(convert_on=convert_on) -> None:
            writer = writing.Mp4Writer(folder / "feed.mp4", 24, convert_on=convert_on)
            writer.write(frames)
            assert writer.finish(10 * 2**30) is not None

        result[f"feed_{key}_mp4_writer_{name}_s"] = timed(written, repeats)
    result.update(mp4_parts(frames, folder, repeats))
    return result


MP4_PARTS = (1, 2, 3, 5)  # GENERATOR_MP4_PARTS values timed


def mp4_parts(frames: np.ndarray, folder: Path, repeats: int, counts: tuple[int, ...] = MP4_PARTS) -> dict[str, float]:
    """The whole clip handed to the writer at once (a one-segment render's frames after its decode), encoded by one
    x264 or cut into parts on parallel encoders (media/parts.py): wall time from the frames to the finished MP4,
    its bytes, and its quality (PSNR of the decoded MP4 against the frames)."""
    from generator.media import parts, reading

    key = f"{frames.shape[2]}x{frames.shape[1]}x{len(frames)}"
    result: dict[str, float] = {}
    for count in counts:
        path = folder / f"parts_{count}.mp4"

        def written(count: int = count, path: Path = path) -> None:
            writer = parts.mp4_writer(path, 24, parts=count)
            writer.write(frames)
            assert writer.finish(10 * 2**30) is not None

        result[f"mp4_parts_{key}_{count}_s"] = timed(written, repeats)
        result[f"mp4_parts_{key}_{count}_bytes"] = path.stat().st_size
        result[f"mp4_parts_{key}_{count}_psnr_db"] = psnr(reading.decode_video(path)[0], frames)
    return result


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-feed", action="store_true", help="only the MP4 feed's profile (mp4_feed)")
    args = parser.parse_args()
    if args.only_feed:
        with tempfile.TemporaryDirectory() as folder:
            figures = {
                "cpu_count": os.cpu_count(),
                **mp4_feed(moving_pattern(121, 512, 768), Path(folder), args.repeats),
            }
        print(json.dumps(figures))
        return

    from generator.media import previews, tails, writing
    from generator.pipelines._common import tensor_to_frames
    from generator.pipelines.base import RenderRequest
    from generator.pipelines.ltx import LTXBackend
    from generator.pipelines.tiny import TINY_LTX_PROFILE, build_tiny_ltx_pipeline
    from generator.stitch import colour_stats, match_colours

    result: dict[str, object] = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    frames = moving_pattern(121, 512, 768)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        for preset in ("fast", "veryfast", "ultrafast"):
            encode_once = lambda preset=preset: writing.encode_mp4(frames, 24, path, 10 * 2**20, preset=preset)  # noqa: E731
            result[f"mp4_encode_768x512x121_{preset}_s"] = timed(encode_once, args.repeats)
            result[f"mp4_{preset}_bytes"] = path.stat().st_size
        result.update(mp4_feed(frames, Path(folder), args.repeats))
        # What a job writes beside its MP4 (on a second CPU thread, in the worker): previews and the lossless tail.
        previews = lambda: (  # noqa: E731
            previews.write_thumbnail(frames[0], Path(folder) / "thumbnail.webp"),
            previews.write_spritesheet(frames, Path(folder) / "spritesheet.jpg"),
        )
        result["previews_768x512x121_s"] = timed(previews, args.repeats)
        tail_path = Path(folder) / "tail.mkv"
        result["tail_save_768x512x17_s"] = timed(lambda: tails.save_tail(frames[-17:], tail_path, 24), args.repeats)
        result["tail_bytes"] = tail_path.stat().st_size
        result["tail_raw_bytes"] = frames[-17:].nbytes
        result["tail_load_768x512x17_s"] = timed(lambda: tails.load_tail(tail_path), args.repeats)
        result.update(extension_chain(512, 768, Path(folder)))
        result.update(capped_chain(512, 768, Path(folder)))
        result.update(spritesheet_of_a_long_parent(512, 768, Path(folder), args.repeats))
        # 20 s at 24 fps: one 121-frame call, then continuations of 104 new frames each.
        long = np.concatenate([frames, frames[1:], frames[1:], frames[1:]])[:481]
        result.update(encode_along(long, 24, Path(folder), 104, args.repeats))
        # An extension of 5 s (120 new frames after 17 context frames: segments of 104 and 16): its new part.
        result.update(encode_along(long[:120], 24, Path(folder), 104, args.repeats))
    # An extension's stitch: colour statistics of 17 context frames twice, then 104 new frames colour-matched.
    new, context = frames[17:], frames[:17]
    result["stitch_768x512_104_after_17_s"] = timed(
        lambda: match_colours(new, colour_stats(new[:17]), colour_stats(context)), args.repeats
    )
    video = torch.rand(121, 3, 512, 768)
    result["to_uint8_768x512x121_cpu_s"] = timed(lambda: tensor_to_frames(video), args.repeats)

    pipeline = build_tiny_ltx_pipeline()
    cached, plain = LTXBackend(pipeline, TINY_LTX_PROFILE, 8), LTXBackend(pipeline, TINY_LTX_PROFILE, 0)
    request = RenderRequest(
        prompt="a cat surfing", width=96, height=64, num_frames=17, seed=0, num_inference_steps=2, guidance_scale=3.0
    )
    with torch.inference_mode():

        def miss() -> None:
            cached.prompt_cache.clear()
            cached.prompt_arguments(request)

        result["tiny_text_encoding_miss_s"] = timed(miss, args.repeats * 10)
        result["tiny_text_encoding_hit_s"] = timed(lambda: cached.prompt_arguments(request), args.repeats * 10)
    plain.render(request)  # warm-up
    result["tiny_render_uncached_s"] = timed(lambda: plain.render(request), args.repeats)
    result["tiny_render_cached_s"] = timed(lambda: cached.render(request), args.repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
