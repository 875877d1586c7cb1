#!/usr/bin/env bash
# The GPU check (issue 18), on a CUDA machine, from anywhere in the repository:
#   1. install the packages the machine lacks from the wheels in .whl/, made by
#      benchmarks/gpu_wheels.sh where pip reaches a registry (that machine reaches none), into
#      /tmp, not into the machine's Python;
#   2. python benchmarks/gpu_check.py: copy bandwidth, benchmarks/run.py --device cuda
#      --compile (bfloat16), decode as a share of the bandwidth, every lesson on the GPU.
# Results under $OUT (a device call's output folder) or build/gpu_check/. Extra arguments go
# to gpu_check.py (e.g. --lessons 06 07 to run two lessons only).
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/minipixtral-site .whl/*.whl
    export PYTHONPATH="/tmp/minipixtral-site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 benchmarks/gpu_check.py --out "${OUT:-build/gpu_check}" "$@"
