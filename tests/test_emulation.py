"""Emulation against ground truth: pacing targets, the documented link formula, seeded jitter,
and unchanged math. Real torchrun + Gloo ranks through the `hetbench` CLI."""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from conftest import read_json, read_records, run_hetbench
from omegaconf import OmegaConf

from bench.costs import links, topology

pytestmark = pytest.mark.slow


def _groups(*specs: tuple[int, str, float]) -> str:
    items = ",".join(f"{{device:H100,count:{n},site:{site},speed:{speed}}}" for n, site, speed in specs)
    return f"cluster.groups=[{items}]"


def test_compute_follows_the_speed_ratios(out_root):
    rc, run_dir, output = run_hetbench(
        out_root, _groups((1, "a", 4.0), (1, "a", 2.0), (1, "a", 1.0)), "network=rack",
        "train.steps=24", "train.warmup_steps=6", "emulation.reference_scale=1.5")
    assert rc == 0, output
    rows = read_json(run_dir / "summary.json")["ranks"]
    base = rows[0]["compute_ms_p50"]
    assert rows[1]["compute_ms_p50"] / base == pytest.approx(2.0, rel=0.10)
    assert rows[2]["compute_ms_p50"] / base == pytest.approx(4.0, rel=0.10)
    assert [round(r["expected_score"], 3) for r in rows] == [1.0, 0.5, 0.25]
    pacing = read_json(run_dir / "summary.json")["emulation"]["pacing"]
    for row, ratio in zip(pacing, (1.0, 2.0, 4.0)):
        assert row["target_compute_ms"] == pytest.approx(pacing[0]["target_compute_ms"] * ratio)
        assert row["compute_ms_p50"] == pytest.approx(row["target_compute_ms"], rel=0.10)


def test_overrunning_the_pacing_target_is_counted_and_warned_with_the_fix(out_root):
    """A time scale far below what this machine needs cannot be met: the run must say so."""
    rc, run_dir, output = run_hetbench(
        out_root, "cluster.groups=[{device:H100,count:2,site:a,floor_ms:1}]", "network=rack",
        "train.steps=16", "train.warmup_steps=4", "emulation.time_scale=1")
    assert rc == 0, output
    pacing = read_json(run_dir / "summary.json")["emulation"]["pacing"]
    assert all(row["excess"] > 1.0 and row["steps_overrun_share"] > 0.9 for row in pacing)
    assert "over its pacing target" in output and "emulation.reference_scale" in output


def _modelled(run_dir):
    """The run's own network model, built from its config.yaml by bench.costs (not by
    bench.emulate): NCCL's tuner model, whose arithmetic tests/test_nccl_model.py checks by
    hand. Here the check is that the emulator injects exactly that, bucket by bucket."""
    cfg = OmegaConf.load(run_dir / "config.yaml")
    return links.of_config(cfg, topology.build(cfg))


def _expected_injected(rec: dict, model, jitter_ms: float, seed: int) -> float:
    """Per bucket: the model's all-reduce time plus U(0, 2 x jitter) drawn from the documented
    seed (seed, step, bucket)."""
    total = 0.0
    for bucket, nbytes in enumerate(rec["bucket_bytes"]):
        jitter = np.random.default_rng([seed, rec["step"], bucket]).uniform(0, 2 * jitter_ms)
        total += model.route_ms("ring", nbytes) + (jitter if jitter_ms else 0.0)
    return total


@pytest.fixture(scope="module")
def linked_run(tmp_path_factory):
    """3 ranks over two sites joined by a 3 ms, 1 Gb/s link with 1 ms jitter; small buckets."""
    out = tmp_path_factory.mktemp("runs")
    rc, run_dir, output = run_hetbench(
        out, _groups((2, "a", 1.0), (1, "b", 1.0)), "network.inter_site.latency_ms=3",
        "network.inter_site.bandwidth_gbps=1", "network.inter_site.jitter_ms=1",
        "strategy.bucket_cap_mb=1", "train.steps=24", "train.warmup_steps=4")
    assert rc == 0, output
    return run_dir


def test_injected_delay_equals_the_documented_formula(linked_run):
    records, model = read_records(linked_run), _modelled(linked_run)
    assert any(len(r["bucket_bytes"]) > 1 for r in records), "want several buckets per step"
    for rec in records:
        assert rec["injected_ms"] == pytest.approx(_expected_injected(rec, model, 1.0, 0),
                                                   rel=1e-9, abs=1e-9)


def test_jitter_is_identical_across_ranks(linked_run):
    by_step = defaultdict(set)
    for rec in read_records(linked_run):
        by_step[rec["step"]].add(round(rec["injected_ms"], 9))
    assert all(len(values) == 1 for values in by_step.values())
    assert len({next(iter(v)) for v in by_step.values()}) > 1, "jitter should vary by step"


def test_injected_delay_is_really_waited_for(linked_run):
    """The delay is applied after the real transfer: the exchange left exposed after the last
    rank is ready is at least the delay injected for the last bucket."""
    records = [r for r in read_records(linked_run) if not r["warmup"]]
    model = _modelled(linked_run)
    slack = [r["transfer_ms"] - _last_bucket_delay(r, model) for r in records]
    assert np.median(slack) >= -0.5


def _last_bucket_delay(rec: dict, model) -> float:
    nbytes = rec["bucket_bytes"][-1]
    bucket = len(rec["bucket_bytes"]) - 1
    jitter = np.random.default_rng([0, rec["step"], bucket]).uniform(0, 2.0)
    return model.route_ms("ring", nbytes) + jitter


def test_same_seed_gives_the_same_losses_with_emulation_on_and_off(out_root):
    common = ["cluster=one_a100", "cluster.groups.0.count=1", "train.steps=12", "train.warmup_steps=2"]
    rc_off, off_dir, out_off = run_hetbench(out_root / "off", *common, "network=rack",
                                            "emulation.compute=off")
    rc_on, on_dir, out_on = run_hetbench(out_root / "on", *common, "network=continents",
                                         "network.inter_site.latency_ms=5",
                                         "cluster.groups.1.site=b")
    assert rc_off == 0 and rc_on == 0, out_off + out_on
    on, off = read_records(on_dir), read_records(off_dir)
    assert any(r["pad_ms"] > 0 for r in on) and any(r["injected_ms"] > 0 for r in on)
    assert all(r["pad_ms"] == 0 and r["injected_ms"] == 0 for r in off)
    key = lambda r: (r["rank"], r["step"])  # noqa: E731
    assert [r["loss"] for r in sorted(on, key=key)] == [r["loss"] for r in sorted(off, key=key)]


def test_without_pacing_the_link_delays_after_the_real_transfer(out_root):
    """What a real GPU run does (no emulated timeline): wall-clock time, the wire's delay starts
    when the real transfer completes, so the exposed exchange is at least the formula."""
    rc, run_dir, output = run_hetbench(
        out_root, _groups((1, "a", 1.0), (1, "b", 1.0)), "emulation.compute=off",
        "network.inter_site.latency_ms=5", "network.inter_site.jitter_ms=0", "train.steps=16",
        "train.warmup_steps=4")
    assert rc == 0, output
    summary = read_json(run_dir / "summary.json")
    assert summary["time_base"] == "wall" and summary["time_scale"] == 1.0
    records, model = [r for r in read_records(run_dir) if not r["warmup"]], _modelled(run_dir)
    for rec in records:
        assert rec["injected_ms"] == pytest.approx(_expected_injected(rec, model, 0.0, 0))
    assert np.median([r["transfer_ms"] - r["injected_ms"] for r in records]) >= 0.0
