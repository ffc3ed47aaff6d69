"""One screen from a GPU session's JSON lines (bench/gpu_session.sh): per variant the denoise, the render, what the
MP4 still took after the render, end to end, and the ratios to the plain diffusers call and to the fastest peer
(plain or ParaAttention's recipe) at the same settings, measured in the same process. Ratios above 1: Hanul is
faster.

    python bench/summary.py RESULTS_DIR            # reads sweep.jsonl, wan.jsonl and tiers.jsonl there

Under the table: the memory tiers, then issue 22's goals (met, missed, not measured) and the decisions the figures
make (bench/goals.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from goals import report

# Peers per setting: the plain call, and the plain call with ParaAttention's recipe.
PEERS = {
    "sweep": {
        "20 steps": ("baseline", "peer_para_attn_recipe"),
        "8 steps": ("baseline_8_steps_no_guidance", "peer_para_attn_recipe_8_steps_no_guidance"),
    },
    "sweep_wan": {"wan": ("baseline", "peer_para_attn_recipe")},
}
NO_PEER = ("extension", "chain", "1216x704", "queue", "offload")  # no peer measured at these sizes or lengths


def read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue  # a line cut short by the time limit
    return lines


def setting(case: str, variant: str) -> str | None:
    if case == "sweep_wan":
        return "wan"
    if any(word in variant for word in NO_PEER):
        return None
    return "8 steps" if "8_steps" in variant else "20 steps"


def fastest_peers(case: str, lines: list[dict[str, Any]]) -> dict[str, tuple[str, float]]:
    by_variant = {line.get("variant"): line for line in lines}
    fastest = {}
    for name, variants in PEERS.get(case, {}).items():
        times = [
            (v, by_variant[v]["full_call_s_median"])
            for v in variants
            if by_variant.get(v, {}).get("full_call_s_median")
        ]
        if times:
            fastest[name] = min(times, key=lambda item: item[1])
    return fastest


def row(case: str, line: dict[str, Any], peers: dict[str, tuple[str, float]]) -> list[str] | None:
    variant = line.get("variant", "?")
    if variant in ("setup", "end"):
        return None
    note = line.get("error") or line.get("skipped") or ""
    median = line.get("median") or line.get("single_job") or {}
    cells = ["-"] * 7
    if "full_call_s_median" in line:  # a peer: the plain call, with or without ParaAttention's recipe
        cells[3] = f"{line['full_call_s_median']:.2f}"
        if line.get("denoise_only_s_median"):
            cells[0] = f"{line['denoise_only_s_median']:.2f}"
        note = note or "peer (plain diffusers call)"
    elif median:
        for index, key in enumerate(("denoising_s", "render_s", "mp4_encode_s", "end_to_end_s")):
            if key in median:
                cells[index] = f"{median[key]:.2f}"
        if "jobs_per_min" in line:
            note = f"{line['jobs_per_min']} jobs/min, GPU idle {line.get('gpu_idle_fraction', 0):.1%}"
        elif median.get("segments", 1) > 1:
            note = note or f"{median['segments']:.0f} segments, stitch {median.get('stitch_s', 0):.2f} s"
    elif variant == "mp4_feed":
        figures = {k.split("_", 2)[-1]: v for k, v in line.items() if k.startswith("feed_")}
        note = ", ".join(
            f"{k.removesuffix('_s')} {v:.3f}" for k, v in figures.items() if "writer" in k or "swscale" in k
        )
        parted = {k.rsplit("_", 2)[-2]: v for k, v in line.items() if k.startswith("mp4_parts_") and k.endswith("_s")}
        if parted:  # GENERATOR_MP4_PARTS: seconds for the whole clip at once, first (the note is cut at 70)
            note = "parts " + " ".join(f"{count}:{seconds:.2f}s" for count, seconds in parted.items()) + "; " + note
    elif variant == "mp4_encode_presets":
        note = ", ".join(f"{k} {v['s']:.2f}s" for k, v in line.items() if isinstance(v, dict) and "s" in v)
    if "ratio_to_baseline" in line:
        cells[4] = f"{line['ratio_to_baseline']:.2f}"
    peer = peers.get(setting(case, variant) or "")
    ours = median.get("end_to_end_s") or line.get("full_call_s_median")
    if peer and ours:
        cells[5] = f"{peer[1] / ours:.2f}"
    if "peak_gpu_mem_gib" in line:
        cells[6] = f"{line['peak_gpu_mem_gib']:.1f}"
    name = variant if case == "sweep" else f"wan {variant}"
    return [name[:44], *cells, str(note)[:70]]


def main(argv: list[str] | None = None) -> None:
    folder = Path((argv if argv is not None else sys.argv[1:])[0] if (argv or sys.argv[1:]) else "bench-results")
    header = ["variant", "denoise", "render", "MP4 after", "e2e/call", "x plain", "x best peer", "GiB", "note"]
    rows = [header]
    sweeps = {"sweep": read(folder / "sweep.jsonl"), "wan": read(folder / "wan.jsonl")}
    for case, lines in (("sweep", sweeps["sweep"]), ("sweep_wan", sweeps["wan"])):
        peers = fastest_peers(case, lines)
        rows += [r for line in lines if (r := row(case, line, peers)) is not None]
        for label, (variant, seconds) in peers.items():
            rows.append([f"  fastest peer, {label}", "", "", "", f"{seconds:.2f}", "", "", "", variant])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=False)) + "  " + r[-1])
    print(
        "seconds; 'MP4 after': the encode left after the render; x plain / x best peer: their time over ours "
        "(>1: faster)"
    )
    tiers = read(folder / "tiers.jsonl")
    if tiers:
        print("\nmemory tiers (GENERATOR_MEMORY), real-size presets, random weights, 2 steps:")
        for line in tiers:
            if "peak_reserved_gib" in line:
                print(
                    f"  {line['preset']:<18} {line['tier']:<12} peak {line['peak_reserved_gib']:>6.1f} GiB "
                    f"(estimate {line['estimated_peak_gib']:.1f})  step {line['second_step_s']} s  {line['size']}  "
                    f"host RAM {line.get('host_rss_placed_gib')} -> {line.get('host_rss_rendered_gib')} GiB"
                )
            else:
                print(f"  {line['preset']:<18} {line['tier']:<12} {line.get('error') or line.get('skipped')}")
    print()
    print("\n".join(report({**sweeps, "tiers": tiers})))


if __name__ == "__main__":
    main()
