"""End-to-end runs with real torchrun + Gloo ranks, through the `hetbench` CLI."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import kept_records, read_json, read_records, run_hetbench

from bench.results import metrics

pytestmark = pytest.mark.slow

TWO_RANKS = ["cluster=h100x2", "network=rack", "train.steps=40", "train.warmup_steps=5",
             "train.log_every=10", "train.micro_batch=4", "train.seq_len=64"]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    rc, run_dir, output = run_hetbench(out, *TWO_RANKS)
    assert rc == 0, output
    return run_dir


@pytest.fixture(scope="module")
def slow_fault_run(tmp_path_factory):
    """4 homogeneous ranks; rank 1 does 60 ms of extra compute before backward on every step."""
    out = tmp_path_factory.mktemp("runs")
    rc, run_dir, output = run_hetbench(
        out, "cluster=h100x4", "network=rack", "train.steps=24", "train.warmup_steps=6",
        "faults=[{kind:slow,rank:1,start_step:0,ms:60}]")
    assert rc == 0, output
    return run_dir


def test_run_directory_holds_every_contract_file(clean_run):
    for name in ("config.yaml", "metadata.json", "summary.json", "ranks/rank_00000.jsonl",
                 "ranks/rank_00001.jsonl"):
        assert (clean_run / name).exists(), name
    meta = read_json(clean_run / "metadata.json")
    assert meta["status"] == "ok" and meta["world_size"] == 2 and meta["backend"] == "gloo"
    assert {"hetbench", "torch", "git_sha"} <= set(meta["versions"])
    assert "WANDB_API_KEY" not in str(meta)


def test_one_record_per_step_per_rank_with_every_key(clean_run):
    records = read_records(clean_run)
    assert sorted((r["rank"], r["step"]) for r in records) == \
        sorted((rank, step) for rank in range(2) for step in range(40))
    for rec in records:
        assert set(metrics.RECORD_KEYS) <= set(rec)
        assert rec["wait_ms"] is not None and rec["transfer_ms"] is not None
        assert rec["warmup"] == (rec["step"] < 5)


def test_phases_add_up_to_step_time(clean_run):
    records = [r for r in read_records(clean_run) if not r["warmup"]]
    errors = []
    for r in records:
        phases = r["data_ms"] + r["fwd_ms"] + r["bwd_ms"] + r["wait_ms"] + r["transfer_ms"] + r["opt_ms"]
        errors.append(abs(phases - r["step_ms"]) / r["step_ms"])
        assert r["transfer_ms"] >= -0.5, "an exchange cannot finish before the last rank is ready"
    assert np.median(errors) < 0.05


def test_clock_offsets_on_one_host_are_under_a_millisecond(clean_run):
    meta = read_json(clean_run / "metadata.json")
    assert len(meta["clock_offsets"]) == 2
    for entry in meta["clock_offsets"]:
        assert abs(entry["offset_s"]) < 1e-3 and entry["uncertainty_s"] < 1e-2


def _recompute_summary(run_dir):
    meta = read_json(run_dir / "metadata.json")
    return metrics.summarize(kept_records(run_dir), meta["ranks"], 0.75)


@pytest.mark.parametrize("fixture", ["clean_run", "slow_fault_run"])
def test_summary_agrees_with_the_records(fixture, request):
    run_dir = request.getfixturevalue(fixture)
    summary = read_json(run_dir / "summary.json")
    again = _recompute_summary(run_dir)
    assert summary["steps_measured"] == again["steps_measured"]
    for key in ("tokens_per_s", "efficiency"):
        assert summary[key] == pytest.approx(again[key], rel=1e-9)
    for key in ("p50", "p90", "p99", "mean"):
        assert summary["step_ms"][key] == pytest.approx(again["step_ms"][key], rel=1e-9)
    for key in ("balance", "network", "total"):
        assert summary["slowdown"][key] == pytest.approx(again["slowdown"][key], rel=1e-9)
    for mine, theirs in zip(summary["ranks"], again["ranks"]):
        for key in ("compute_ms_p50", "wait_ms_p50", "transfer_ms_p50", "relative_score"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-9)
        assert mine["flagged"] == theirs["flagged"]
    # and independently of bench.results.metrics: the step time is the slowest rank's step
    records = [r for r in kept_records(run_dir) if not r["warmup"]]
    per_step = {}
    for r in records:
        per_step[r["step"]] = max(per_step.get(r["step"], 0.0), r["step_ms"])
    assert summary["step_ms"]["p50"] == pytest.approx(np.median(list(per_step.values())))


def test_slow_fault_shows_as_wait_on_the_others_and_flags_the_rank(slow_fault_run):
    summary = read_json(slow_fault_run / "summary.json")
    rows = {row["rank"]: row for row in summary["ranks"]}
    for rank in (0, 2, 3):
        assert rows[rank]["wait_ms_p50"] == pytest.approx(60.0, rel=0.2), rows[rank]
    assert rows[1]["wait_ms_p50"] < 0.1 * 60.0
    assert rows[1]["flagged"] and summary["stragglers"] == [1]
    assert all(not rows[r]["flagged"] for r in (0, 2, 3))


def test_loss_falls_toward_the_entropy_floor(clean_run):
    records = read_records(clean_run)
    first = np.mean([r["loss"] for r in records if r["step"] == 0])
    summary = read_json(clean_run / "summary.json")
    floor = summary["entropy_floor"]
    assert first > floor + 2.0
    assert summary["final_loss"] < first - 0.5 * (first - floor)
