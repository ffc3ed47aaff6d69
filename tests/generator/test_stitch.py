"""Colour matching at seams, and the seam metrics tests and benchmarks state their bounds in."""

from __future__ import annotations

import numpy as np
import pytest

from generator.stitch import colour_stats, match_colours, seam_report


def moving_scene(frames: int, offset: int = 0, start: int = 0) -> np.ndarray:
    """A slowly panning textured scene; `offset` tints it, as a model drifting in colour would."""
    rows, columns = np.mgrid[0:48, 0:64]
    video = np.empty((frames, 48, 64, 3), np.uint8)
    for index in range(frames):
        t = start + index
        base = 100 + 40 * np.sin((columns + 2 * t) / 7.0) + 20 * np.cos(rows / 5.0)
        video[index] = np.clip(np.stack([base + offset, base * 0.8 + offset, base * 0.6 + 30], -1), 0, 255)
    return video


def test_colour_match_removes_a_drift_at_the_seam_and_fades_out() -> None:
    before = moving_scene(12)
    rendered_context = moving_scene(4, offset=30, start=8)  # the model's re-rendering of before[-4:], tinted
    new = moving_scene(8, offset=30, start=12)
    matched = match_colours(new, colour_stats(rendered_context), colour_stats(before[-4:]))
    raw, fixed = seam_report(before, new), seam_report(before, matched)
    assert raw.colour_jump > 25
    assert fixed.colour_jump < 3
    assert fixed.ratio < 1.5 < raw.ratio
    assert np.array_equal(matched[-1], new[-1]), "full correction at the seam, none by the end"


def test_colour_match_keeps_frames_it_does_not_need_to_change() -> None:
    frames = moving_scene(6)
    stats = colour_stats(frames)
    assert np.array_equal(match_colours(frames, stats, stats), frames)


def test_colour_match_on_a_device_gives_the_same_bytes() -> None:
    rendered_context = moving_scene(4, offset=30, start=8)
    new = np.concatenate([moving_scene(20, offset=30, start=12), moving_scene(17, offset=-20, start=40)])  # 3 chunks
    source, target = colour_stats(rendered_context), colour_stats(moving_scene(4, start=8))
    on_host = match_colours(new, source, target)
    assert np.array_equal(match_colours(new, source, target, device="cpu"), on_host)
    view = new[::2]  # a strided view, as the render hands on
    assert np.array_equal(match_colours(view, source, target, device="cpu"), match_colours(view, source, target))


def test_seam_report_compares_the_joint_with_motion_inside() -> None:
    smooth = seam_report(moving_scene(8), moving_scene(8, start=8))
    assert smooth.ratio == pytest.approx(1.0, abs=0.1)
    assert smooth.colour_jump < 2 * smooth.inner_colour_change
    cut = seam_report(moving_scene(8), moving_scene(8, start=40))
    assert cut.ratio > 3


def test_seam_report_needs_matching_sizes_and_two_frames() -> None:
    with pytest.raises(ValueError, match="sizes differ"):
        seam_report(moving_scene(4), moving_scene(4)[:, :10])
    with pytest.raises(ValueError, match="two frames"):
        seam_report(moving_scene(1), moving_scene(4))


def test_a_failing_device_lookup_falls_back_to_the_host(monkeypatch) -> None:
    import generator.stitch

    def out_of_memory(*args):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(generator.stitch, "_apply_luts_on", out_of_memory)
    new, context = moving_scene(5, offset=30), moving_scene(4)
    source, target = colour_stats(new[:4]), colour_stats(context)
    assert np.array_equal(match_colours(new, source, target, device="cuda"), match_colours(new, source, target))
