"""`hetbench predict --from` against a real emulated run: the prediction from the run's own
config against what its ranks measured (device time)."""
from __future__ import annotations

import json
import subprocess

import pytest
from conftest import HETBENCH, read_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(default_run):
    """The default cluster and links (mixed4 over campus), the default batch, 60 steps: the
    session's shared run (conftest.default_run)."""
    return default_run[0]


def _predict(*args):
    proc = subprocess.run([HETBENCH, "predict", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_prediction_of_the_default_run_is_within_10_percent(run_dir):
    doc = json.loads(_predict("--from", str(run_dir), "--json"))
    measured = read_json(run_dir / "summary.json")
    assert doc["caveat"] is None
    predicted = doc["prediction"]["step_ms"]["p50"]
    assert predicted == pytest.approx(measured["step_ms"]["p50"], rel=0.10)
    step = next(r for r in doc["rows"] if r["key"] == "step_ms.p50")
    assert step["measured"] == measured["step_ms"]["p50"] and step["predicted"] == predicted


def test_side_by_side_table_and_measured_noise(run_dir):
    text = _predict("--from", str(run_dir), f"predict.noise_from={run_dir}")
    assert "measured" in text and "predicted" in text and "step p50 (ms)" in text
    doc = json.loads(_predict("--from", str(run_dir), f"predict.noise_from={run_dir}", "--json"))
    cost = doc["prediction"]["straggler_cost"]
    assert cost["noise"]["empirical"]["samples"] == 4 * 50  # every measured step of every rank
    # Paced compute holds each emulated device's time, so the measured spread costs little;
    # the prediction with it stays as close to the measurement as without it.
    assert 0 <= cost["excess_ms"] < 0.05 * cost["without_noise_ms"]
    measured = read_json(run_dir / "summary.json")["step_ms"]["p50"]
    assert doc["prediction"]["step_ms"]["p50"] == pytest.approx(measured, rel=0.10)
