#!/usr/bin/env bash
# One GPU session's measurements, in order of worth, for a machine with a time limit (see docs/performance.md):
# the reference baseline script, then the sweep (one process, one model build). Every result line is appended to
# RESULTS_DIR as it is measured, so a run cut short keeps what it finished.
#   bash bench/gpu_session.sh [RESULTS_DIR] [SWEEP_SECONDS]
# Python packages the machine lacks can sit as wheels in .whl/ (git-ignored); they are installed to /tmp/site.
set -uo pipefail
results=${1:-bench-results}
budget=${2:-400}
mkdir -p "$results"
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers, transformers, av; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__, 'cpus', __import__('os').cpu_count())"
timeout 120 python3 bench/baseline_ltx.py --repeats 2 --out "$results/baseline_ltx.json"
timeout $((budget + 30)) python3 bench/bench_generator.py --case sweep --repeats 2 --jobs 20 --deadline-s "$budget" \
    --out "$results/sweep.jsonl" 2>&1 | grep -v "experimental feature"
