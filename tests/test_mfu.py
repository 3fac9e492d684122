"""MFU per device against its own peak, and the cluster's as sum achieved / sum of peaks."""
from __future__ import annotations

import pytest

from bench import config
from bench.costs import device_times, devices
from bench.results import metrics, mfu
from tests.conftest import kept_records, read_json, run_hetbench


def _step(step: int, computes: list[float], step_ms: float, tokens: list[int]) -> list[dict]:
    return [{"step": step, "rank": r, "warmup": False, "fwd_ms": c / 3, "bwd_ms": 2 * c / 3,
             "step_ms": step_ms, "tokens": t} for r, (c, t) in enumerate(zip(computes, tokens))]


def test_mixed_fleet_cluster_mfu_is_sum_achieved_over_sum_of_peaks():
    """An H100 (989 TFLOP/s bf16) and an A100 (312), 1 GFLOP a token, 10,000 tokens each, in a
    100 ms step: 100 TFLOP/s achieved each. Cluster MFU = 200 / 1301, not 200 / (2 x 989) nor
    the mean of the two ranks' MFU."""
    ranks = [{"flops_per_token": 1e9, "peak_tflops": 989.0},
             {"flops_per_token": 1e9, "peak_tflops": 312.0}]
    steps = {s: _step(s, [40.0, 80.0], 100.0, [10_000, 10_000]) for s in range(3)}
    rows = [mfu.rank_mfu(steps, r, info) for r, info in enumerate(ranks)]
    assert rows[0]["achieved_tflops"] == pytest.approx(100.0)
    assert rows[0]["mfu"] == pytest.approx(100 / 989) and rows[1]["mfu"] == pytest.approx(100 / 312)
    assert rows[1]["mfu_compute"] == pytest.approx(125 / 312)  # 10 TFLOP in 80 ms of compute
    cluster = mfu.cluster_mfu(rows, ranks)
    assert cluster["mfu"] == pytest.approx(200 / 1301)
    assert cluster["mfu"] != pytest.approx(200 / (2 * 989))
    assert cluster["mfu_compute"] == pytest.approx((250 + 125) / 1301)


def test_an_unknown_peak_makes_mfu_null_not_a_guess():
    ranks = [{"flops_per_token": 1e9, "peak_tflops": 989.0}, {"flops_per_token": 1e9, "peak_tflops": None}]
    steps = {0: _step(0, [40.0, 80.0], 100.0, [10_000, 10_000])}
    rows = [mfu.rank_mfu(steps, r, info) for r, info in enumerate(ranks)]
    assert rows[1]["mfu"] is None and rows[1]["achieved_tflops"] == pytest.approx(100.0)
    assert mfu.cluster_mfu(rows, ranks)["mfu"] is None


def test_emulated_peak_is_the_emulated_device_s_at_the_device_model_precision():
    cfg = config.compose(["cluster=one_a100"])
    basis = device_times.rank_basis(cfg, {"catalog": None}, "A100-80GB", "bf16", "cpu")
    assert basis["peak_tflops"] == 312.0
    assert basis["flops_per_token"] == device_times.workload(cfg).flops_per_token


def test_compute_bound_emulated_rank_reaches_its_device_model_efficiency_by_construction():
    """Paced to FLOPs / (peak x efficiency), a compute-bound rank's MFU while computing is the
    device model's efficiency: the device model and MFU share one FLOP count."""
    cfg = config.compose(["experiment=remedies"])
    work = device_times.workload(cfg)
    for device, count_rank in (("A100-80GB", 3), ("H100-SXM", 0)):
        t = devices.phase_times(device, work)
        assert t.regime == "compute-bound"
        steps = {0: [{"step": 0, "rank": 0, "warmup": False, "fwd_ms": t.fwd_ms,
                      "bwd_ms": t.bwd_ms, "step_ms": t.compute_ms + t.opt_ms, "tokens": work.tokens}]}
        info = {"flops_per_token": work.flops_per_token, "peak_tflops": devices.peak_tflops(device, "bf16")}
        assert mfu.rank_mfu(steps, 0, info)["mfu_compute"] == pytest.approx(
            devices.mfu_while_computing(device, work, t))


@pytest.mark.slow
def test_emulated_run_mfu_matches_the_device_model_and_the_records(tmp_path):
    """A real paced run of the remedies workload (compute-bound GPT-2 124M on A100/H100/B200):
    each rank's measured MFU while computing is its device's modelled efficiency (pacing holds
    the device time), and the summary's numbers follow from the records and the peaks."""
    rc, run_dir, out = run_hetbench(tmp_path, "experiment=remedies", "train.steps=12",
                                    "train.warmup_steps=4", "network.inter_site.latency_ms=0")
    assert rc == 0, out
    summary, meta = read_json(run_dir / "summary.json"), read_json(run_dir / "metadata.json")
    assert summary["precision"]["compute"] == "fp32" and summary["precision"]["device_model"] == "bf16"
    work = device_times.workload(config.compose(["experiment=remedies"]))
    for row, info in zip(summary["ranks"], meta["ranks"]):
        device = info["emulated_device"]
        eff = devices.mfu_while_computing(device, work, devices.phase_times(device, work))
        assert row["mfu_compute"] == pytest.approx(eff, rel=0.05), row
        assert row["bound"] == "compute-bound"
    steps = metrics.complete_steps(kept_records(run_dir), 4)
    rows = [mfu.rank_mfu(steps, r, info) for r, info in enumerate(meta["ranks"])]
    peaks = [devices.peak_tflops(i["emulated_device"], "bf16") for i in meta["ranks"]]
    assert summary["mfu"] == pytest.approx(sum(r["achieved_tflops"] for r in rows) / sum(peaks))
    assert summary["peak_tflops"] == pytest.approx(sum(peaks))
    assert "MFU" in out
