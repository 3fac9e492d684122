"""Transient windows on hand-made series: found exactly, and silent on noise and spikes."""
import numpy as np
import pytest
from analysis_rundir import make_records

from bench.analysis import transients
from bench.results import metrics


def steps_of(compute, warmup=0):
    w = len(compute[0])
    return metrics.complete_steps(make_records(compute, warmup=warmup), w)


def test_a_sustained_slowdown_is_found_with_exact_edges_and_excess():
    compute = [[20.0, 20.0, 20.0] for _ in range(50)]
    for s in range(20, 32):
        compute[s][1] += 30.0
    found = transients.find(steps_of(compute, warmup=5))
    assert found == [{"rank": 1, "start_step": 20, "end_step": 32, "steps": 12, "extra_ms": 30.0}]


def test_end_step_is_exclusive_and_windows_reach_the_last_step():
    compute = [[20.0, 20.0] for _ in range(40)]
    for s in range(34, 40):
        compute[s][0] += 15.0
    found = transients.find(steps_of(compute))
    assert [(t["rank"], t["start_step"], t["end_step"]) for t in found] == [(0, 34, 40)]
    assert found[0]["extra_ms"] == pytest.approx(15.0)


def test_spikes_and_cluster_wide_slowdowns_do_not_fire():
    compute = [[20.0, 20.0, 20.0, 20.0] for _ in range(60)]
    compute[10][2] += 200.0                      # one-step spike
    compute[30][3] += 100.0                      # two-step spike
    compute[31][3] += 100.0
    for s in range(40, 52):                      # the whole host slows down
        compute[s] = [c * 1.6 for c in compute[s]]
    assert transients.find(steps_of(compute)) == []


def test_clean_noise_does_not_fire():
    rng = np.random.default_rng(0)
    base = np.array([30.0, 30.0, 45.0, 60.0])
    compute = (base * rng.lognormal(0.0, 0.12, size=(200, 4))).tolist()
    assert transients.find(steps_of(compute, warmup=20)) == []


def test_a_slowdown_under_the_relative_threshold_does_not_fire():
    compute = [[40.0, 40.0] for _ in range(40)]
    for s in range(10, 25):
        compute[s][1] += 0.2 * 40.0              # 20% slower: under REL_THRESHOLD (25%)
    assert transients.find(steps_of(compute)) == []


def test_nearby_windows_merge():
    flags = np.zeros(30, dtype=bool)
    flags[5:10] = True
    flags[12:15] = True                          # gap of 2 steps: merged
    flags[20:23] = True                          # gap of 5: separate
    assert transients.windows(flags) == [(5, 15), (20, 23)]
