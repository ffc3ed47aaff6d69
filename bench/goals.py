"""Issue 22's goals and the decisions it leaves to the figures, read from a GPU session's JSON lines
(bench/gpu_session.sh), so that the session ends with what to change rather than a table to interpret.

Each goal is met, missed, or not measured (its line missing, cut by the deadline, or failed); each decision names
the setting to change, or says that nothing changes and why. The thresholds are the issue's:

- the exact path: end to end ≤ render + 0.15 s (the MP4 after the render);
- the distilled path (8 steps, no guidance): a 5 s clip end to end ≤ 0.8 s, at its best setting;
- an extension at the distilled settings ≤ 1.0 s, a 60 s video (a clip and its chained extensions) ≤ 15 s;
- approximate levers at 20 steps: ≤ 2.0 s end to end and ≥ 2× the plain call of the same run;
- Wan: ≥ 1.6× the plain `WanPipeline` call at the same steps;
- the queue: GPU idle < 5 %;
- FP8: kept only if one of its kernels makes the denoise ≥ 1.25× the compiled exact path's, else removed.

Printed by `python bench/summary.py RESULTS_DIR` under its table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Lines = dict[str, dict[str, Any]]  # variant -> its JSON line

MP4_AFTER_RENDER_S = 0.15
DISTILLED_S = 0.8
EXTENSION_S = 1.0
CHAIN_S = 15.0
APPROXIMATE_S, APPROXIMATE_RATIO = 2.0, 2.0
WAN_RATIO = 1.6
GPU_IDLE = 0.05
FP8_DENOISE_RATIO = 1.25
FASTER = 0.97  # a lever whose time is not under 97 % of the other's is within one run's noise: not a win
MP4_PARTS_BYTES = 1.10  # parallel encoders may cost at most 10 % more bytes than one encoder
CARD_24_GB_FREE_GIB = 23.0  # what CUDA reports free at start on a 24 GB card without a desktop
FP8_TIER_PRESET = "ltx-13b-distilled"

DISTILLED = "compiled_8_steps_no_guidance"
APPROXIMATE = ("fp8", "first_block_cache", "guidance_stop")


@dataclass(frozen=True)
class Verdict:
    what: str
    figure: str  # the measured figure, or "" when not measured
    outcome: str  # "met", "missed", "not measured", or for a decision what to do

    def line(self) -> str:
        return f"  {self.what:<46} {self.figure:<34} {self.outcome}"


def by_variant(lines: list[dict[str, Any]]) -> Lines:
    """The lines that measured something (no error, not skipped), by variant."""
    return {
        line["variant"]: line
        for line in lines
        if line.get("variant") and not line.get("error") and not line.get("skipped")
    }


def median(lines: Lines, variant: str, key: str) -> float | None:
    value = lines.get(variant, {}).get("median", {}).get(key)
    return float(value) if value is not None else None


def end_to_end(lines: Lines, variant: str) -> float | None:
    return median(lines, variant, "end_to_end_s")


def at_most(what: str, figure: float | None, goal: float, shown: str, *, under: bool = False) -> Verdict:
    """Met when `figure` is at most `goal` (strictly under it with `under`)."""
    if figure is None:
        return Verdict(what, "", "not measured")
    return Verdict(what, shown, "met" if figure < goal or (figure == goal and not under) else "missed")


def goals(sweep: Lines, wan: Lines) -> list[Verdict]:
    verdicts = []
    e2e, render = end_to_end(sweep, "compiled"), median(sweep, "compiled", "render_s")
    after = e2e - render if e2e is not None and render is not None else None
    verdicts.append(
        at_most(
            f"exact path: MP4 after the render ≤ {MP4_AFTER_RENDER_S} s",
            after,
            MP4_AFTER_RENDER_S,
            f"{after:.2f} s (e2e {e2e:.2f})" if after is not None else "",
        )
    )
    distilled = {v: s for v in sweep if v.startswith(DISTILLED) and (s := end_to_end(sweep, v)) is not None}
    best = min(distilled, key=distilled.__getitem__) if distilled else None
    verdicts.append(
        at_most(
            f"distilled 5 s clip ≤ {DISTILLED_S} s",
            distilled.get(best) if best else None,
            DISTILLED_S,
            f"{distilled[best]:.2f} s ({best.removeprefix(DISTILLED).strip('_') or 'as is'})" if best else "",
        )
    )
    extension = end_to_end(sweep, "compiled_8_steps_extension")
    verdicts.append(
        at_most(f"distilled extension ≤ {EXTENSION_S} s", extension, EXTENSION_S, f"{extension or 0:.2f} s")
    )
    chain = next((v for v in sweep if v.startswith("compiled_8_steps_") and v.endswith("s_chain")), None)
    chained = end_to_end(sweep, chain) if chain else None
    verdicts.append(at_most(f"60 s video ≤ {CHAIN_S:.0f} s", chained, CHAIN_S, f"{chained or 0:.2f} s ({chain})"))
    verdicts.append(approximate_goal(sweep))
    verdicts.append(wan_goal(wan))
    queue = sweep.get("queue", {}).get("gpu_idle_fraction")
    verdicts.append(
        at_most(f"queue of jobs: GPU idle < {GPU_IDLE:.0%}", queue, GPU_IDLE, f"{queue or 0:.1%}", under=True)
    )
    return verdicts


def approximate_goal(sweep: Lines) -> Verdict:
    what = f"approximate levers ≤ {APPROXIMATE_S} s and ≥ {APPROXIMATE_RATIO:.0f}× plain"
    levers = {
        v: (end_to_end(sweep, v), sweep[v].get("ratio_to_baseline"))
        for v in sweep
        if any(word in v for word in APPROXIMATE) and "8_steps" not in v and end_to_end(sweep, v) is not None
    }
    if not levers:
        return Verdict(what, "", "not measured")
    best = min(levers, key=lambda v: levers[v][0])
    seconds, ratio = levers[best]
    met = seconds <= APPROXIMATE_S and ratio is not None and ratio >= APPROXIMATE_RATIO
    shown = f"{seconds:.2f} s, {ratio or 0:.2f}× ({best})"
    return Verdict(what, shown, "met" if met else "missed")


def wan_goal(wan: Lines) -> Verdict:
    what = f"Wan ≥ {WAN_RATIO}× plain WanPipeline"
    ours = {
        v: line["ratio_to_baseline"]
        for v, line in wan.items()
        if v.startswith("compiled") and line.get("ratio_to_baseline") is not None
    }
    if not ours:
        return Verdict(what, "", "not measured")
    best = max(ours, key=ours.__getitem__)
    return Verdict(what, f"{ours[best]:.2f}× ({best})", "met" if ours[best] >= WAN_RATIO else "missed")


def faster(ours: float | None, other: float | None) -> bool | None:
    """Whether `ours` beats `other` by more than one run's noise; None when either is missing."""
    if ours is None or other is None:
        return None
    return ours < other * FASTER


def decisions(sweep: Lines, wan: Lines, device: str = "") -> list[Verdict]:
    return [
        fp8_decision(sweep),
        cudnn_decision(sweep, wan, device),
        mp4_parts_decision(sweep),
        graphs_decision(sweep),
        decoder_decision(sweep),
        one_batch_decision(wan),
    ]


def fp8_decision(sweep: Lines) -> Verdict:
    what = f"FP8 (keep only at ≥ {FP8_DENOISE_RATIO}× the denoise)"
    exact = median(sweep, "compiled", "denoising_s")
    kernels = {
        name: median(sweep, variant, "denoising_s")
        for name, variant in (("hanul", "compiled_fp8"), ("torchao", "compiled_fp8_torchao"))
    }
    measured = {name: exact / seconds for name, seconds in kernels.items() if seconds and exact}
    if not measured:
        return Verdict(what, "", "not measured: no change")
    shown = ", ".join(f"{name} {ratio:.2f}×" for name, ratio in measured.items())
    best = max(measured, key=measured.__getitem__)
    if measured[best] >= FP8_DENOISE_RATIO:
        if best == "torchao":
            return Verdict(what, shown, "keep: make GENERATOR_FP8_KERNELS=torchao the default")
        if "torchao" in measured:
            return Verdict(what, shown, "keep the hand-written kernels; remove the torchao option")
        return Verdict(what, shown, "keep the hand-written kernels (torchao not measured)")
    if len(measured) < len(kernels):
        missing = next(name for name in kernels if name not in measured)
        return Verdict(what, shown, f"under the bar so far: measure {missing} before removing FP8")
    return Verdict(what, shown, "remove GENERATOR_FP8 (neither kernel reaches the bar)")


def cudnn_decision(sweep: Lines, wan: Lines, device: str) -> Verdict:
    what = "GENERATOR_ATTENTION_BACKEND=cudnn_first"
    ltx = faster(end_to_end(sweep, "eager_cudnn_first"), end_to_end(sweep, "eager_native"))
    wan_won = faster(median(wan, "compiled_cudnn_first", "denoising_s"), median(wan, "compiled", "denoising_s"))
    shown = []
    for name, ours, other in (
        ("LTX eager", end_to_end(sweep, "eager_cudnn_first"), end_to_end(sweep, "eager_native")),
        ("Wan denoise", median(wan, "compiled_cudnn_first", "denoising_s"), median(wan, "compiled", "denoising_s")),
    ):
        if ours is not None and other is not None:
            shown.append(f"{name} {other / ours:.2f}×")
    if ltx is None and wan_won is None:
        return Verdict(what, "", "not measured: no change")
    if ltx is False or wan_won is False:
        return Verdict(what, ", ".join(shown), "no change: keep it opt-in")
    if ltx is None or wan_won is None:
        return Verdict(what, ", ".join(shown), "faster where measured: measure the other model before a default")
    hopper = "H100" in device or "H200" in device or "H800" in device or "GH200" in device
    where = "on compute capability 9.x (Hopper)" + ("" if hopper else f", once measured there (this: {device})")
    return Verdict(what, ", ".join(shown), f"make it the default {where}")


def mp4_parts_decision(sweep: Lines) -> Verdict:
    what = "GENERATOR_MP4_PARTS (default 1)"
    one = median(sweep, DISTILLED, "mp4_encode_s")
    prefix = f"{DISTILLED}_mp4_parts_"
    parts = {
        int(v.removeprefix(prefix)): seconds
        for v in sweep
        if v.startswith(prefix) and (seconds := median(sweep, v, "mp4_encode_s")) is not None
    }
    if one is None or not parts:
        return Verdict(what, "", "not measured: no change")
    shown = f"1: {one:.2f} s, " + ", ".join(f"{count}: {seconds:.2f} s" for count, seconds in sorted(parts.items()))
    feed = sweep.get("mp4_feed", {})
    sizes = {
        int(key.rsplit("_", 3)[-2]): value
        for key, value in feed.items()
        if key.startswith("mp4_parts_") and key.endswith("_bytes")
    }
    acceptable = {
        count: seconds
        for count, seconds in parts.items()
        if faster(seconds, one) and (not sizes.get(1) or sizes.get(count, 0) <= sizes[1] * MP4_PARTS_BYTES)
    }
    if not acceptable:
        return Verdict(what, shown, "no change: no part count is faster at ≤ 10 % more bytes")
    best = min(acceptable, key=acceptable.__getitem__)
    cores = feed.get("cpu_count")
    return Verdict(what, shown, f"default {best}" + (f" on {cores} cores" if cores else ""))


def graphs_decision(sweep: Lines) -> Verdict:
    what = "CUDA graphs (compile mode reduce-overhead)"
    graphs, plain = end_to_end(sweep, f"{DISTILLED}_cuda_graphs"), end_to_end(sweep, DISTILLED)
    won = faster(graphs, plain)
    if won is None:
        return Verdict(what, "", "not measured: no change")
    shown = f"{graphs:.2f} s against {plain:.2f} s"
    return Verdict(what, shown, "add a setting for the distilled path" if won else "no change: it does not pay")


def decoder_decision(sweep: Lines) -> Verdict:
    what = "compile the VAE decoder and text encoder too"
    variant = f"{DISTILLED}_decoder_text_compiled"
    stages = ("vae_decode_s", "text_encoding_s")
    before = [median(sweep, DISTILLED, stage) for stage in stages]
    after = [median(sweep, variant, stage) for stage in stages]
    if None in before or None in after:
        return Verdict(what, "", "not measured: no change")
    shown = ", ".join(
        f"{stage.removesuffix('_s')} {old:.3f} → {new:.3f} s"
        for stage, old, new in zip(stages, before, after, strict=True)
    )
    if faster(sum(after), sum(before)):
        return Verdict(what, shown, "make them part of GENERATOR_COMPILE (speed.compile_decoder_and_text_encoder)")
    return Verdict(what, shown, "no change: it does not pay")


def one_batch_decision(wan: Lines) -> Verdict:
    """Whether Wan's guided step in one transformer call (`generator/pipelines/cfg_batch.py`, a bench lever so far)
    earns a setting: its compiled denoise against the two calls'."""
    what = "Wan's guidance in one batch (cfg_batch)"
    one, two = median(wan, "compiled_one_batch", "denoising_s"), median(wan, "compiled", "denoising_s")
    won = faster(one, two)
    if won is None:
        return Verdict(what, "", "not measured: no change")
    shown = f"denoise {one:.2f} s against {two:.2f} s"
    return Verdict(what, shown, "add a setting for Wan" if won else "no change: it does not pay")


def tiers_on_24_gb(tiers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The default 13B's measured tiers (no error), by tier."""
    return {
        row["tier"]: row
        for row in tiers
        if row.get("preset") == FP8_TIER_PRESET and "peak_reserved_gib" in row and not row.get("error")
    }


def fits_24_gb(row: dict[str, Any]) -> bool:
    return row["peak_reserved_gib"] <= CARD_24_GB_FREE_GIB * 0.9


def compact_tier_decision(tiers: list[dict[str, Any]]) -> Verdict:
    """Whether the default 13B fits a 24 GB card in `compact`, as the catalog's estimate (≈19 GiB) says."""
    what = "compact on a 24 GB card (13B)"
    row = tiers_on_24_gb(tiers).get("compact")
    if row is None:
        return Verdict(what, "", "not measured: no change")
    shown = f"peak {row['peak_reserved_gib']:.1f} GiB, step {row.get('second_step_s')} s"
    if fits_24_gb(row):
        return Verdict(what, shown, "fits: record the peak in the catalog")
    return Verdict(what, shown, "does not fit: raise compact's figure in the catalog (auto then picks low)")


def fp8_tier_decision(tiers: list[dict[str, Any]]) -> Verdict:
    """Whether the default 13B with GENERATOR_FP8 fits a 24 GB card balanced, as `auto` now assumes (its peak is
    counted as compact's): the tiers bench's `balanced+fp8` line against 23 GiB free less the tenth kept spare."""
    what = "GENERATOR_FP8 balanced on a 24 GB card (13B)"
    rows = tiers_on_24_gb(tiers)
    fp8_row = rows.get("balanced+fp8")
    if fp8_row is None:
        return Verdict(what, "", "not measured: no change")
    shown = f"peak {fp8_row['peak_reserved_gib']:.1f} GiB, step {fp8_row.get('second_step_s')} s"
    if "compact" in rows:
        shown += f" (compact {rows['compact']['peak_reserved_gib']:.1f}, {rows['compact'].get('second_step_s')} s)"
    if fits_24_gb(fp8_row):
        return Verdict(what, shown, "fits: auto's choice holds; record the peak in the catalog")
    return Verdict(what, shown, "does not fit: count balanced with FP8 above compact in catalog.peak_gib")


def report(lines: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The goals, then the decisions, as lines for the screen; `lines` holds the JSON lines of each sweep (and of
    the memory tiers, under `tiers`)."""
    sweep, wan = by_variant(lines.get("sweep", [])), by_variant(lines.get("wan", []))
    setup = next((line for line in lines.get("sweep", []) if line.get("variant") == "setup"), {})
    out = ["issue 22's goals:"]
    out += [verdict.line() for verdict in goals(sweep, wan)]
    out.append("decisions the figures make:")
    out += [verdict.line() for verdict in decisions(sweep, wan, setup.get("device", ""))]
    out.append(compact_tier_decision(lines.get("tiers", [])).line())
    out.append(fp8_tier_decision(lines.get("tiers", [])).line())
    return out
