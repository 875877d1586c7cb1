#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.sh installs on a GPU machine that has torch, transformers,
# safetensors and OpenCV but no mistral_common, nbclient or ipykernel, and reaches no registry
# (Python 3.12). Run it HERE (a machine with pip and a registry), in the repository root, with
# the dev environment active: each package at the version installed here, built for CPython
# 3.12 on x86-64 Linux, into .whl/ (git ignores it). About 30 MB: with the repository, within
# the 64 MiB a device call carries. The machine's own transformers is used (no 13 MB wheel).
#
#     bash benchmarks/gpu_wheels.sh && du -sh .whl
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(
  # mistral_common and what it needs beyond the GPU machine's packages
  mistral_common pydantic pydantic_core annotated-types typing-inspection typing_extensions
  pydantic-extra-types pycountry jsonschema jsonschema-specifications referencing rpds-py
  # running notebooks: nbclient and a Python kernel
  nbclient nbformat fastjsonschema jupyter_client jupyter_core traitlets pyzmq tornado
  platformdirs python-dateutil ipykernel ipython ipython_pygments_lexers comm debugpy jedi
  parso matplotlib-inline nest-asyncio2 prompt_toolkit wcwidth pexpect ptyprocess
  stack-data executing asttokens pure_eval
)
pins=$(python - "${PACKAGES[@]}" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
missing = []
for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        missing.append(name)
if missing:
    sys.exit(f"not installed here: {' '.join(missing)} (activate the dev environment first)")
PY
)
mkdir -p .whl
# shellcheck disable=SC2086  # one pin per word
python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl $pins
echo "$(ls .whl | wc -l) wheels in .whl/, $(du -sh .whl | cut -f1)"
