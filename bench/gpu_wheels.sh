#!/usr/bin/env bash
# Wheels for a GPU machine without network (Python 3.12, x86-64 Linux) that has torch, transformers and aiohttp
# but not the rest of what the benchmark needs: downloaded into .whl/ (git-ignored), which bench/gpu_session.sh
# installs into /tmp/site on that machine. Run on a machine that reaches the package registry:
#   bash bench/gpu_wheels.sh [FOLDER]
# torchao (GENERATOR_FP8_KERNELS=torchao, 3.4 MB) and para-attn (the peer recipe, 44 KB) come along; para-attn
# 0.3.38 is a source release whose `dev` extra names a git URL, which pip 26.3+ refuses from the registry: it is
# built with a pip older than that (a throwaway venv). sageattention is left out: PyPI's 1.0.6 is older than
# diffusers' minimum (2.1.1), so diffusers would refuse it anyway. Everything stays under the 64 MiB a run carries.
set -euo pipefail
folder=${1:-.whl}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$folder" \
    diffusers==0.42.1 av==18.1.0 SQLAlchemy==2.1.9 greenlet==3.5.6 aiosqlite==0.22.1 alembic==1.20.1 Mako==1.4.3 \
    pydantic==2.14.4 pydantic_core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4 typing-inspection==0.4.5 \
    annotated-types==0.8.0 ftfy==6.3.1 wcwidth==0.9.4 importlib_metadata torchao==0.18.0
if ! compgen -G "$folder/para_attn-0.3.38-*.whl" >/dev/null; then
    venv=$(mktemp -d)
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q "pip<26.3"
    "$venv/bin/python" -m pip wheel -q --no-deps -w "$folder" para-attn==0.3.38
    rm -rf "$venv"
fi
ls "$folder"
du -sh "$folder"
