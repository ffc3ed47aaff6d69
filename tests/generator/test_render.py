"""Whole videos: one segment or a chain of colour-matched continuations, with exact frame counts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from generator.pipelines import RenderCancelled, RenderRequest
from generator.pipelines.ltx import LTX_NATIVE_SIZES
from generator.render import (
    RenderedVideo,
    VideoSpec,
    plan_segments,
    render_video,
    segment_seed,
    valid_count_at_least,
)
from generator.stitch import colour_stats, match_colours, seam_report

# Ratio of the frame difference at a joint to the average frame-to-frame difference inside the parts. With random
# weights consecutive frames already differ a lot (~38/255), so this bound only says a seam is no worse than the
# model's own frame-to-frame change; it catches dropped, doubled or misplaced segments, not subtle seams.
SEAM_RATIO_BOUND = 1.25


def spec(**changes: object) -> VideoSpec:
    values: dict = dict(
        prompt="a cat surfing at sunset",
        width=96,
        height=64,
        total_frames=17,
        fps=8,
        steps=2,
        guidance_scale=1.0,
        seed=3,
    )
    values.update(changes)
    return VideoSpec(**values)


def single_call(backend, seed: int, num_frames: int = 17, video: np.ndarray | None = None) -> np.ndarray:
    return backend.render(
        RenderRequest(
            prompt="a cat surfing at sunset",
            width=96,
            height=64,
            num_frames=num_frames,
            seed=seed,
            num_inference_steps=2,
            guidance_scale=1.0,
            fps=8,
            video=video,
        )
    )


def test_short_video_is_one_call_trimmed_to_the_requested_frames(tiny_ltx) -> None:
    video = render_video(tiny_ltx, spec(total_frames=10))
    assert video.segments == 1 and video.frames.shape == (10, 64, 96, 3)
    assert np.array_equal(video.frames, single_call(tiny_ltx, seed=3)[:10])


def test_long_video_has_exactly_the_requested_frames(tiny_ltx) -> None:
    video = render_video(tiny_ltx, spec(total_frames=60))
    assert video.frames.shape == (60, 64, 96, 3) and video.frames.dtype == np.uint8
    assert video.segments == 7  # 17, then 8 new frames per continuation (9 conditioning + 8), the last trimmed
    assert set(video.timings) >= {"render", "stitch", "total"}


def test_seams_drop_the_rerendered_context_and_lose_no_frame(tiny_ltx) -> None:
    video = render_video(tiny_ltx, spec(total_frames=25))
    first = single_call(tiny_ltx, seed=3)
    assert np.array_equal(video.frames[:17], first), "the first segment is a plain render with the spec's seed"
    second = single_call(tiny_ltx, seed=segment_seed(3, 1), video=first[-9:])
    expected = match_colours(second[9:], colour_stats(second[:9]), colour_stats(first[-9:]))
    assert np.array_equal(video.frames[17:], expected), "frame 17 follows frame 16: nothing doubled or lost"


def test_extension_continues_from_the_parent_tail(tiny_ltx) -> None:
    parent = render_video(tiny_ltx, spec(total_frames=17))
    extension = render_video(tiny_ltx, spec(total_frames=20, seed=4, parent_tail=parent.tail))
    assert extension.frames.shape == (20, 64, 96, 3)
    assert extension.segments == 3  # 8 + 8 + 4 new frames, each after 9 conditioning frames
    whole = np.concatenate([parent.frames, extension.frames])
    assert np.array_equal(extension.tail, whole[-9:])


def test_tail_holds_the_last_conditioning_frames_or_the_whole_short_video(tiny_ltx) -> None:
    long = render_video(tiny_ltx, spec(total_frames=30))
    assert np.array_equal(long.tail, long.frames[-tiny_ltx.profile.conditioning_frames :])
    short = render_video(tiny_ltx, spec(total_frames=5))
    assert np.array_equal(short.tail, short.frames)


def test_seams_are_no_more_visible_than_the_motion_inside_segments(tiny_ltx) -> None:
    video = render_video(tiny_ltx, spec(total_frames=49))
    for joint in (17, 25, 33, 41):
        report = seam_report(video.frames[joint - 8 : joint], video.frames[joint : joint + 8])
        assert report.ratio < SEAM_RATIO_BOUND, (joint, report)
        assert report.colour_jump < 2 * report.inner_colour_change + 1, (joint, report)


def test_progress_rises_to_one_across_the_chain(tiny_ltx) -> None:
    fractions: list[float] = []
    render_video(tiny_ltx, spec(total_frames=33), on_progress=fractions.append)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len(fractions) == 3 * 2 + 1  # three segments of two steps, then done
    assert fractions[0] == pytest.approx(1 / 6)


def test_cancelling_stops_the_chain(tiny_ltx) -> None:
    calls: list[float] = []

    def on_progress(fraction: float) -> None:
        calls.append(fraction)
        if fraction > 0.4:
            raise RenderCancelled("cancelled by its owner")

    with pytest.raises(RenderCancelled):
        render_video(tiny_ltx, spec(total_frames=60), on_progress=on_progress)
    assert max(calls) < 0.5


def test_image_starts_the_video(tiny_ltx) -> None:
    image = np.full((64, 96, 3), 200, np.uint8)
    with_image = render_video(tiny_ltx, spec(total_frames=17, image=image))
    assert with_image.frames.shape == (17, 64, 96, 3)
    assert not np.array_equal(with_image.frames, render_video(tiny_ltx, spec(total_frames=17)).frames)


def test_a_spec_the_model_cannot_do_is_refused(tiny_ltx) -> None:
    tail = np.zeros((9, 64, 96, 3), np.uint8)
    with pytest.raises(ValueError, match="cannot also start from an image"):
        render_video(tiny_ltx, spec(image=tail[0], parent_tail=tail))
    with pytest.raises(ValueError, match="parent_tail"):
        render_video(tiny_ltx, spec(parent_tail=tail[:, :32]))
    text_only = dataclasses.replace(tiny_ltx.profile, supports_video=False)
    backend = type("TextOnly", (), {"profile": text_only, "render": tiny_ltx.render})()
    with pytest.raises(ValueError, match="cannot continue"):
        render_video(backend, spec(total_frames=30))


def test_segment_seeds_are_deterministic_and_distinct() -> None:
    seeds = [segment_seed(42, index) for index in range(50)]
    assert seeds[0] == 42 and len(set(seeds)) == 50
    assert seeds == [segment_seed(42, index) for index in range(50)]
    assert all(0 <= seed < 2**63 for seed in seeds)


@pytest.mark.parametrize("total", [1, 8, 121, 122, 200, 24 * 60])
def test_a_minute_of_ltx_video_is_planned_in_valid_calls(tiny_ltx, total: int) -> None:
    profile = dataclasses.replace(
        tiny_ltx.profile, max_segment_frames=121, conditioning_frames=17, native_sizes=LTX_NATIVE_SIZES
    )
    segments = plan_segments(profile, total, available_context=0)
    assert sum(segment.keep for segment in segments) == total
    for segment in segments:
        assert segment.num_frames <= 121 and (segment.num_frames - 1) % 8 == 0
        assert segment.context_frames == (0 if segment.index == 0 else 17)
        assert 0 < segment.keep <= segment.num_frames - segment.context_frames


def test_valid_counts_round_up_to_8k_plus_1() -> None:
    assert [valid_count_at_least(n, 8) for n in (1, 2, 9, 10, 17)] == [1, 9, 9, 17, 17]


def test_rendered_video_frames_are_a_view_of_new_frames_only(tiny_ltx) -> None:
    parent = np.zeros((9, 64, 96, 3), np.uint8)
    video: RenderedVideo = render_video(tiny_ltx, spec(total_frames=8, parent_tail=parent))
    assert video.frames.shape[0] == 8 and video.segments == 1


def test_a_video_of_one_call_is_that_calls_frames_not_a_copy(tiny_ltx) -> None:
    """Between a one-call clip's decode and its encode nothing copies its frames (0.05 s for 5 s at 768×512)."""
    returned: list[np.ndarray] = []

    class Keeping:
        profile = tiny_ltx.profile

        def render(self, request, on_step=None):
            returned.append(tiny_ltx.render(request, on_step))
            return returned[-1]

    shown: list[np.ndarray] = []
    video = render_video(Keeping(), spec(total_frames=10), on_frames=shown.append)
    assert np.shares_memory(video.frames, returned[0]) and np.shares_memory(shown[0], returned[0])
    assert np.array_equal(video.frames, returned[0][:10]) and not shown[0].flags.writeable
    assert np.array_equal(video.tail, returned[0][1:10]) and not np.shares_memory(video.tail, returned[0])
    # Anything before it (a parent's tail) or after it (more calls) still goes into one buffer.
    longer = render_video(Keeping(), spec(total_frames=30))
    assert longer.segments > 1 and not np.shares_memory(longer.frames, returned[1])
