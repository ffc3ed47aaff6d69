"""Issue 17's memory and time attacks, measured on a real server process from outside (bench/hostile_uploads.py):
the resident memory before, at its peak and once idle, and how long the answer and /healthz took."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "hostile_uploads.py"


def measure(*args: str) -> dict:
    result = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux's /proc memory figures")
def test_concurrent_uploads_of_a_tiny_huge_png_keep_the_server_small():
    """Before: 12 uploads of a 4.9 KB 1-bit 6300×6300 PNG grew the server by gigabytes, and most stayed."""
    figures = measure("image", "--uploads", "12")
    assert figures["statuses"] == ["200"]
    assert figures["rss_peak_mb"] - figures["rss_before_mb"] < 500, figures
    assert figures["rss_idle_after_mb"] - figures["rss_before_mb"] < 250, figures


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux's /proc memory figures")
def test_extending_a_small_mp4_of_many_1080p_frames_keeps_the_server_small():
    """Before: 22.8 KB of 300 black 1080p frames took the server from 0.5 to 4.1 GB while the worker stacked them."""
    figures = measure("mp4")
    assert figures["statuses"] == ["200"] and figures["answer"] == "queued", figures
    assert figures["rss_peak_mb"] - figures["rss_before_mb"] < 400, figures


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="reads Linux's /proc memory figures")
def test_a_64_mb_form_of_a_million_parts_is_refused_at_once_and_health_keeps_answering():
    """Before: read to the end in 122 s (and a job made of it), /healthz taking 13 s meanwhile."""
    figures = measure("multipart")
    assert figures["statuses"] == ["400"] and figures["answer"] == "too_many_fields", figures
    assert figures["answered_s"] < 10, figures
    assert figures["healthz_slowest_s"] < 2, figures
