#!/usr/bin/env bash
# The real-GPU checks (docs/gpu.md): the `gpu` tests, hetbench against a plain loop, MFU, the
# effect of train.compile, the overhead ratio, the attribution of a gap, and the device model
# against a grid timed on this GPU ($OUT/device_grid.json). One GPU, about 12 minutes; PASS/FAIL
# lines, and every figure in $OUT/gpu_check.json (default runs/gpu_check/).
#   scripts/gpu_check.sh [--only plain mfu compile overhead tests attribution device_grid]
# PYTHON picks the interpreter whose torch has CUDA (default: .venv's if it sees a GPU, else
# python3); hetbench is installed into it (editable, no dependencies) if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    PY=.venv/bin/python
  else
    PY=python3
  fi
fi
if ! "$PY" -c "import bench" 2>/dev/null; then
  "$PY" -m pip install -q --no-deps --no-build-isolation -e .
fi
exec "$PY" scripts/gpu_check.py "$@"
