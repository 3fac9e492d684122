#!/usr/bin/env bash
# Make .venv with hetbench installed (editable), its test extra and its Hydra launchers (the
# cluster extra). Idempotent and quick when already done. TORCH_SPEC picks the torch build: the
# default is the CPU-friendly 2.13.0 wheel; on a GPU machine, install your CUDA build of torch (>=2.4) into .venv first, or set TORCH_SPEC.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "${TORCH_SPEC:-torch==2.13.0}"
fi
stamp=.venv/.hetbench-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,cluster]'
  touch "$stamp"
fi
