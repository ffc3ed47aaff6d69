#!/usr/bin/env bash
# One GPU session's measurements in ONE call of at most TOTAL seconds (default 470: issue 22 asks for one call of
# at most 8 minutes, which leaves a session's 15 device minutes room for the machine's start and a second try; pass
# timeout_s 500), in order of worth (see docs/performance.md): the LTX sweep (one process, one model build: plain diffusers
# and ParaAttention's recipe as peers, our exact path, the MP4 feed, FP8 both kernels, SageAttention, long videos,
# CUDA graphs, the queue), then the Wan sweep (its own process: plain WanPipeline, ours compiled, ours with cuDNN
# attention first, torchao FP8, then what the H200 measured already: para-attn's recipe, FP8, one batch, eager), then the
# memory tiers (GENERATOR_MEMORY: peak GiB per preset and tier at real size), then a
# one-screen summary table. Every result line is appended to RESULTS_DIR as it is measured,
# so a run cut short keeps what it finished; the summary reads whatever is there.
#   bash bench/gpu_session.sh [RESULTS_DIR] [TOTAL_SECONDS]
# Python packages the machine lacks sit as wheels in .whl/ (git-ignored, `bash bench/gpu_wheels.sh`); they are
# installed to /tmp/site first. For a check of this script on a CPU (tests/bench/test_bench_smoke.py): WHEELS=none,
# BENCH_ARGS="--tiny ..." (appended to both sweeps' arguments, so they override).
set -uo pipefail
results=${1:-bench-results}
total=${2:-470}
wan_budget=${WAN_SECONDS:-130}  # build, plain WanPipeline, ours compiled, para-attn's recipe; 10 steps
tiers_budget=${TIERS_SECONDS:-105}  # memory tiers (bench/memory_tiers.py): real-size presets, peak GiB per tier
ltx2_budget=${LTX2_SECONDS:-55}  # an LTX-2 clip with sound (19B at random, 8 steps), MP4 with AAC: its own process
started=$SECONDS
mkdir -p "$results"
export PYTHONUNBUFFERED=1
wheels=${WHEELS:-.whl}
extra=${BENCH_ARGS:-}
if compgen -G "$wheels/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; fi
python3 - <<'PY'
import importlib.util, os, torch, diffusers, transformers, av
extras = {name: bool(importlib.util.find_spec(name)) for name in ("torchao", "para_attn", "sageattention")}
print("torch", torch.__version__, "diffusers", diffusers.__version__, "transformers", transformers.__version__,
      "av", av.__version__, "cpus", os.cpu_count(), "optional:", extras)
PY
# The JSON lines go to RESULTS_DIR; on the screen one short line each (the run's output tail is kept short), and
# the rest of the output without the libraries' known warnings.
quiet() {
    python3 -u -c '
import json, sys
for text in sys.stdin:
    if text.startswith("{"):
        line = json.loads(text)
        said = line.get("error") or line.get("skipped") or ""
        print(line.get("case"), line.get("variant"), line.get("variant_wall_s", ""), said[:160], flush=True)
    elif not any(known in text for known in ("experimental feature", "is an Enum subclass", "torchao")):
        print(text, end="", flush=True)
'
}
left=$((total - (SECONDS - started) - 15))  # 15 s: the summary, and each process's exit
ltx=$((left - wan_budget - tiers_budget - ltx2_budget))
echo "== LTX sweep: ${ltx} s"
# Left out, measured on the H200 already: the fast/ultrafast presets, FirstBlockCache, guidance stop. Eager native
# and cudnn_first (torch's SDPA trying cuDNN first): the faster one is compiled.
timeout $((ltx + 20)) python3 bench/bench_generator.py --case sweep --repeats 1 --jobs 8 --deadline-s "$((ltx - 10))" \
    --eager-backends native,cudnn_first,sage --encode-presets veryfast --first-block-cache "" --guidance-stop "" \
    --out "$results/sweep.jsonl" $extra 2>&1 | quiet
echo "== LTX-2 with sound: ${ltx2_budget} s"
timeout "$ltx2_budget" python3 bench/bench_generator.py --case ltx2 --repeats 2 --out "$results/ltx2.jsonl" \
    $extra 2>&1 | quiet
# The Wan sweep leaves the memory tiers their share (on 2026-12-04 it took 304 s and left them 17).
wan=$((total - (SECONDS - started) - 10 - tiers_budget))
echo "== Wan sweep: ${wan} s"
if [ "$wan" -gt 60 ]; then
    timeout "$wan" python3 bench/bench_generator.py --case sweep_wan --steps 10 --repeats 1 \
        --deadline-s "$((wan - 25))" --out "$results/wan.jsonl" $extra 2>&1 | quiet
fi
left=$((total - (SECONDS - started) - 10))
echo "== memory tiers: ${left} s"
if [ "$left" -gt 40 ]; then
    # Per preset the tiers without figures first: compact and balanced with GENERATOR_FP8 (new: what a 24 GB card
    # runs the 13B in), then low and balanced (measured before the text encoder streamed a layer at a time: upper
    # bounds), full (measured) last.
    timeout "$left" python3 bench/memory_tiers.py --presets "${TIERS_PRESETS:-ltx-13b-distilled,wan2.2-5b,wan2.1-1.3b}" \
        --tiers "${TIERS_ORDER:-compact,balanced+fp8,low,balanced,full}" --deadline-s "$((left - 45))" --out "$results/tiers.jsonl" \
        ${TIERS_ARGS:-} 2>&1 | quiet
fi
echo "== summary ($((SECONDS - started)) s)"  # the table, the tiers, then issue 22's goals and decisions
python3 bench/summary.py "$results"
