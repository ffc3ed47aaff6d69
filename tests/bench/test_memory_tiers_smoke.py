"""bench/memory_tiers.py runs on the CPU with the tiny models, so the GPU session does not fail on a typo."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def test_every_preset_and_tier_renders_and_reports(tmp_path):
    pytest.importorskip("ftfy")
    import memory_tiers

    out = tmp_path / "tiers.jsonl"
    rows = memory_tiers.main(["--tiny", "--presets", "ltx-13b-distilled,wan2.2-a14b", "--out", str(out)])
    assert [(row["preset"], row["tier"]) for row in rows] == [
        (preset, tier)
        for preset in ("ltx-13b-distilled", "wan2.2-a14b")
        for tier in ("full", "balanced", "compact", "low")
    ]
    assert all("error" not in row and row["render_2_steps_s"] > 0 for row in rows), rows
    assert all(row["preview_fit_s"] > 0 and row["preview_fit_rms"] is not None for row in rows), rows
    assert len(out.read_text().splitlines()) == 8


def test_the_deadline_skips_what_is_left(tmp_path):
    import memory_tiers

    rows = memory_tiers.main(["--tiny", "--presets", "ltx-2b-legacy", "--deadline-s", "0"])
    assert rows == []


def test_balanced_with_fp8_is_placed_as_load_backend_places_it(tmp_path):
    pytest.importorskip("ftfy")
    import memory_tiers

    from generator.catalog import PRESETS

    (row,) = memory_tiers.main(["--tiny", "--presets", "ltx-13b-distilled", "--tiers", "balanced+fp8"])
    assert "error" not in row and row["render_2_steps_s"] > 0, row
    assert row["estimated_peak_gib"] == PRESETS["ltx-13b-distilled"].memory.peak_gib("compact")
    (bad,) = memory_tiers.main(["--tiny", "--presets", "ltx-13b-distilled", "--tiers", "low+fp8"])
    assert "unknown tier 'low+fp8'" in bad["error"]
