#!/usr/bin/env bash
# Install hetbench at its declared dependency floors (constraints/min.txt) into a venv of its own,
# .venv-min, and run the fast suite there: a floor in pyproject.toml is a claim, and this checks it.
# PYTHON picks the interpreter (default python3); VENV the venv's folder. Extra arguments go to
# pytest. The first run downloads torch at its floor with its CUDA libraries (~3 GB from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-min}
CONSTRAINTS=constraints/min.txt
start=$SECONDS
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
install() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS" "$@"; }
install torch  # first and alone: the biggest download, and a failure here names torch
install -e '.[dev,cluster,parquet]'
"$VENV/bin/python" -m pip check
"$VENV/bin/python" scripts/min_versions.py "$CONSTRAINTS"
echo "install: $((SECONDS - start)) s"
status=0
"$VENV/bin/python" -m pytest -q -m "not slow" "$@" || status=$?
echo "test-min: $((SECONDS - start)) s in all, pytest exit $status"
exit "$status"
