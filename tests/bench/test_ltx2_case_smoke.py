"""bench_generator.py --case ltx2 runs on the CPU with the tiny sound model, so the GPU session does not fail on a
typo: a clip with sound rendered, its MP4 written with the sound muxed in."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def test_the_ltx2_case_renders_a_clip_with_sound_and_reports_it(tmp_path):
    import bench_generator

    out = tmp_path / "ltx2.jsonl"
    argv = ["--tiny", "--case", "ltx2", "--repeats", "1", "--out", str(out)]
    (line,) = bench_generator.main(argv, emit=lambda _: None)
    assert "error" not in line, line
    assert line["case"] == "ltx2" and line["size"] == "96x64x17" and line["steps"] == 2
    assert line["sound_rate"] == 16_000 and line["sound_samples"] == 17 * 16_000 // 8
    assert line["median"]["render_s"] > 0 and line["median"]["bytes"] > 0
    assert len(out.read_text().splitlines()) == 1
