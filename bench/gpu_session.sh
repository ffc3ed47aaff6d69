#!/usr/bin/env bash
# One GPU session's measurements in ONE call of at most TOTAL seconds (default 450: under the 8 minutes a call may
# take), in order of worth (see docs/performance.md): the LTX sweep (one process, one model build: plain diffusers
# and ParaAttention's recipe as peers, our exact path, the MP4 feed, FP8 both kernels, SageAttention, long videos,
# CUDA graphs, the queue), then the Wan sweep (its own process: plain WanPipeline, ours compiled, para-attn's
# recipe, FP8), then a one-screen summary table. Every result line is appended to RESULTS_DIR as it is measured,
# so a run cut short keeps what it finished; the summary reads whatever is there.
#   bash bench/gpu_session.sh [RESULTS_DIR] [TOTAL_SECONDS]
# Python packages the machine lacks sit as wheels in .whl/ (git-ignored, `bash bench/gpu_wheels.sh`); they are
# installed to /tmp/site first. For a check of this script on a CPU (tests/bench/test_bench_smoke.py): WHEELS=none,
# BENCH_ARGS="--tiny ..." (appended to both sweeps' arguments, so they override).
set -uo pipefail
results=${1:-bench-results}
total=${2:-450}
wan_budget=${WAN_SECONDS:-150}  # build, plain WanPipeline, ours compiled, para-attn's recipe, one batch; 10 steps
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
quiet() { grep -v -e "experimental feature" -e "is an Enum subclass" -e "Failed to load .*torchao" -e "Unable to import .torchao."; }
left=$((total - (SECONDS - started) - 15))  # 15 s: the summary, and each process's exit
ltx=$((left - wan_budget))
echo "== LTX sweep: ${ltx} s"
timeout $((ltx + 20)) python3 bench/bench_generator.py --case sweep --repeats 2 --jobs 8 --deadline-s "$((ltx - 10))" \
    --eager-backends native,sage --first-block-cache "" --guidance-stop "" \
    --out "$results/sweep.jsonl" $extra 2>&1 | quiet
left=$((total - (SECONDS - started) - 10))
echo "== Wan sweep: ${left} s"
if [ "$left" -gt 60 ]; then
    timeout "$left" python3 bench/bench_generator.py --case sweep_wan --steps 10 --repeats 1 \
        --deadline-s "$((left - 25))" --out "$results/wan.jsonl" $extra 2>&1 | quiet
fi
echo "== summary ($((SECONDS - started)) s)"
python3 bench/summary.py "$results"
