"""bench/decoder_reach.py: why a temporal-chunk decode of LTX-Video cannot be exact (docs/performance.md, round 3)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))


def test_a_latent_frame_of_a_five_second_clip_reaches_nearly_every_decoded_frame(capsys):
    import decoder_reach

    decoder_reach.main(["--latent-frames", "16"])
    line = json.loads(capsys.readouterr().out)
    assert line["output_frames"] == 121
    first, last = line["latent_8_reaches"]  # the middle latent frame
    assert first == 0 and last == 120, line  # every output frame: no chunk of the decode is the whole decode's
    assert line["latent_0_reaches"][1] > 100 and line["latent_15_reaches"][0] < 20, line


def test_a_longer_clip_shows_the_reach_is_bounded(capsys):
    """On a longer clip a latent frame's reach ends: the figure is the decoder's own, not the clip's length."""
    import decoder_reach

    decoder_reach.main(["--latent-frames", "48"])
    line = json.loads(capsys.readouterr().out)
    first, last = line["latent_24_reaches"]
    assert 0 < first and last < line["output_frames"] - 1, line
