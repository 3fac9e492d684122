"""The predictor's parts against ground truth: DDP's own buckets, torch's PowerSGD rule, the
model's parameters, order statistics in closed form and by sampling, hand-computed timelines,
and bench.results.metrics' formulas on the same steps."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from bench import config as config_mod
from bench.costs import balance, buckets, cluster, device_times, devices, roofline
from bench.costs.links import Link, LinkModel
from bench.predict import exchange as exchange_mod
from bench.predict import fleet as fleet_mod
from bench.predict import links_of, predict
from bench.predict.noise import Noise, expected_max
from bench.predict.summary import step_values
from bench.predict.timeline import Timeline
from bench.rank.model import GPT
from bench.results import metrics
from bench.strategies.exchange import powersgd_numel

HETBENCH = str(Path(sys.executable).parent / "hetbench")


@pytest.fixture(scope="module")
def one_rank_group(tmp_path_factory):
    store = tmp_path_factory.mktemp("pg") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("n_layer,n_embd,cap_mb", [(4, 128, 0.25), (4, 128, 0.05), (8, 256, 1.0),
                                                   (4, 128, 25.0)])
def test_buckets_are_ddps_own(one_rank_group, n_layer, n_embd, cap_mb):
    """The buckets DDP hands to the comm hook after its rebuild, captured from a real DDP."""
    torch.manual_seed(0)
    model = GPT(256, 64, n_layer, 4, n_embd)
    ddp = DDP(model, bucket_cap_mb=cap_mb)
    seen = []

    def hook(state, bucket):
        seen.append(bucket.buffer().numel())
        fut = torch.futures.Future()
        fut.set_result(bucket.buffer())
        return fut

    ddp.register_comm_hook(None, hook)
    for _ in range(3):  # the first iteration uses one bucket; DDP rebuilds after it
        seen.clear()
        x = torch.randint(0, 256, (2, 64))
        ddp(x, x).backward()
    shapes = buckets.gpt_param_shapes(256, 64, n_layer, n_embd)
    assert [b.numel for b in buckets.ddp_buckets(shapes, cap_mb * 1024 * 1024)] == seen


def test_param_shapes_are_the_models():
    model = GPT(50304, 1024, 3, 4, 96)
    assert buckets.gpt_param_shapes(50304, 1024, 3, 96) == [tuple(p.shape) for p in model.parameters()]


def test_powersgd_count_is_torchs_rule():
    model = GPT(512, 128, 3, 4, 256)
    shapes = [tuple(p.shape) for p in model.parameters()]
    for rank in (1, 4, 32):
        assert buckets.powersgd_sent(shapes, rank) == powersgd_numel(model.parameters(), rank)


def test_expected_max_of_two_normals_is_closed_form():
    """E[max(X1, X2)] = mu + sigma / sqrt(pi) for two iid normals."""
    noise = Noise(jitter_pct=5.0)
    got = expected_max(np.zeros(1), np.ones(1), np.array([2]), noise, np.ones(1))
    assert got == pytest.approx(1 + 0.05 / math.sqrt(math.pi), rel=1e-4)


def test_expected_max_matches_sampling_over_classes():
    rng = np.random.default_rng(0)
    start, span, count = np.array([0.0, 3.0]), np.array([100.0, 90.0]), np.array([300, 700])
    noise = Noise(jitter_pct=2.0)
    sample = []
    for _ in range(4000):
        a = start[0] + span[0] * (1 + 0.02 * rng.standard_normal(count[0]))
        b = start[1] + span[1] * (1 + 0.02 * rng.standard_normal(count[1]))
        sample.append(max(a.max(), b.max()))
    got = expected_max(start, span, count, noise, span)
    assert got == pytest.approx(np.mean(sample), rel=2e-3)


def test_transient_stragglers_cost_their_probability_of_showing():
    """No jitter: the slowest rank is late by S exactly when one of n ranks straggles."""
    noise = Noise(straggler_rate=0.001, straggler_ms=50.0)
    compute = np.array([100.0])
    for n in (10, 1000, 100_000):
        got = expected_max(np.zeros(1), compute, np.array([n]), noise, compute)
        assert got == pytest.approx(100 + 50 * (1 - (1 - 0.001) ** n), rel=2e-3)


def test_scaled_counts_keep_proportions():
    cfg = config_mod.compose(["cluster=tri_campus"])
    assert fleet_mod.scaled_counts(cfg, 100_000) == [40_000, 30_000, 30_000]
    assert fleet_mod.scaled_counts(cfg, 7) == [3, 2, 2]
    assert sum(fleet_mod.scaled_counts(cfg, 12_345)) == 12_345
    assert fleet_mod.scaled_counts(cfg, None) == [4, 3, 3]


def test_group_split_is_the_per_rank_split():
    """Over random fleets (launch floors included), the slowest rank of the group-level split
    finishes exactly when split_batch's does, every sequence is given, rows stay in rank order."""
    rng = np.random.default_rng(3)
    for _ in range(500):
        groups = int(rng.integers(1, 5))
        counts = [int(c) for c in rng.integers(1, 6, groups)]
        times = [(lambda s, f: (lambda b: max(f, s * b)))(float(s), float(f))
                 for s, f in zip(rng.uniform(0.5, 5, groups), rng.choice([0.0, 10.0], groups))]
        per_rank_times = [times[g] for g in range(groups) for _ in range(counts[g])]
        per_rank = balance.split_batch(int(rng.integers(1, 7)) * sum(counts), per_rank_times)
        mb = sum(per_rank) // sum(counts)
        rows = balance.split_groups(mb, counts, times)
        assert sum(b * n for _, b, n in rows) == sum(per_rank)
        assert [g for g, _, _ in rows] == sorted(g for g, _, _ in rows)
        assert max(times[g](b) for g, b, _ in rows) == max(t(b) for t, b in zip(per_rank_times, per_rank))


def test_balanced_beyond_the_per_rank_limit_keeps_the_sites_in_rank_order():
    cfg = config_mod.compose(["experiment=scale", "strategy=balanced"])
    f = fleet_mod.build(cfg, 1003)
    assert f.world_size == 1003
    sites = f.sites_per_rank()
    crossings = sum(a != b for a, b in zip(sites, sites[1:] + sites[:1]))
    assert crossings == 3  # a...a b...b c...c: the ring changes site three times


def _fleet(fwd, bwd, opt, count=None, tokens=None, sites=None):
    n = len(fwd)
    return fleet_mod.Fleet(device=["H100-SXM"] * n, site=sites or ["a"] * n,
                           count=np.array(count or [1] * n),
                           fwd=np.array(fwd, float), bwd=np.array(bwd, float),
                           opt=np.array(opt, float), tokens=np.array(tokens or [100.0] * n),
                           ideal_tokens_per_s=1.0, seq_len=100, precision="bf16",
                           sources=["model"] * n)


def _plan(nbytes, shares, route="ring", outer=0.0, every=1, compressed=None, start=2):
    t = exchange_mod.Transfers(np.array(nbytes, float), np.array(shares, float), route, 1, "plain")
    return exchange_mod.Exchange("x", t, compressed, start, outer, "hierarchical", every)


def test_timeline_one_bucket_by_hand():
    """Two ranks on two sites, 10 ms and 1 Gb/s between them: the slower rank hands over at
    opt + fwd + bwd = 1 + 10 + 20; the wire takes 2(W-1) (alpha + n/W/beta)."""
    f = _fleet([10.0, 5.0], [20.0, 10.0], [1.0, 1.0], sites=["a", "b"])
    links = LinkModel.flat(["a", "b"], Link(0, None, 0), Link(10.0, 1.0, 0), seed=0)
    n = 1_000_000
    wire = links.route_ms("ring", n)  # the link model's (bench.costs.links) own figure
    steps = Timeline(f, _plan([n], [1.0]), links, Noise(), align_every=1000).run(range(5))
    last = steps[-1]
    assert last.T == pytest.approx(1 + 30 + wire)
    assert last.transfer == pytest.approx(wire)
    assert list(last.wait) == pytest.approx([0.0, 15.0])
    assert last.injected == pytest.approx(wire)


def test_timeline_buckets_overlap_backward_and_queue_on_the_wire():
    """Bucket 0 goes at half of backward and its wire (w > 5 ms) overruns backward's end, so
    bucket 1 waits for the wire: synced = 10 + 5 + w + w from the step's start."""
    f = _fleet([10.0, 10.0], [10.0, 10.0], [0.0, 0.0], sites=["a", "b"])
    links = LinkModel.flat(["a", "b"], Link(0, None, 0), Link(4.0, None, 0), seed=0)
    w = links.route_ms("ring", 1.0)
    assert w > 5.0
    steps = Timeline(f, _plan([1.0, 1.0], [0.5, 1.0]), links, Noise(), 1000).run(range(3))
    assert steps[-1].T == pytest.approx(10 + 5 + w + w)


def test_outer_sync_every_h_steps_is_charged_once():
    f = _fleet([10.0, 10.0], [20.0, 20.0], [1.0, 3.0], sites=["a", "b"])
    links = LinkModel.flat(["a", "b"], Link(0, None, 0), Link(5.0, None, 0), seed=0)
    plan = _plan([0.0], [1.0], route="site", outer=1000.0, every=4)
    steps = Timeline(f, plan, links, Noise(), 1000).run(range(8))
    sync = [s for s in steps if s.step in (3, 7)]
    outer_wire = links.route_ms("hierarchical", 1000.0)
    assert all(max(s.outer) == pytest.approx(outer_wire + 2.0) for s in sync)
    assert all(max(s.outer) == 0 for s in steps if s.step not in (3, 7))


def test_compression_starts_at_its_step_and_pays_three_rounds():
    f = _fleet([10.0, 10.0], [20.0, 20.0], [0.0, 0.0], sites=["a", "b"])
    links = LinkModel.flat(["a", "b"], Link(0, None, 0), Link(4.0, None, 0), seed=0)
    packed = exchange_mod.Transfers(np.array([1.0]), np.array([1.0]), "ring", 3, "compressed")
    steps = Timeline(f, _plan([1.0], [1.0], compressed=packed, start=4), links, Noise(),
                     1000).run(range(6))
    once, thrice = links.route_ms("ring", 1.0), links.route_ms("ring", 1.0, rounds=3)
    assert thrice > 2.9 * once  # latency-bound: three rounds pay it three times
    assert [s.injected for s in steps] == pytest.approx([once] * 4 + [thrice] * 2)


def test_window_gather_aligns_the_next_start():
    """Uneven optimizer steps (1 and 5 ms): each rank starts where its own optimizer ended, so
    the fast rank waits 4 ms for the slow one's hand-over and both steps last 35 ms. After a
    gather (every 3 steps) both start together at the slow rank's end: the fast rank's step is
    then 30 + 1 = 31 ms, since it no longer starts early."""
    f = _fleet([10.0, 10.0], [20.0, 20.0], [1.0, 5.0], sites=["a", "a"])
    links = LinkModel.flat(["a", "a"], Link(0, None, 0), Link(0, None, 0), seed=0)
    steps = Timeline(f, _plan([1.0], [1.0]), links, Noise(), align_every=3).run(range(7))
    assert [list(s.step_ms) for s in steps[1:7]] == [[35, 35], [35, 35], [31, 35], [35, 35],
                                                     [35, 35], [31, 35]]
    assert list(steps[4].wait) == pytest.approx([4.0, 0.0])


def test_one_site_hierarchical_is_a_plain_all_reduce():
    """SiteGroups does one all-reduce when there is one site: no extra broadcast charged."""
    model = LinkModel.flat(["a"] * 8, Link(0.5, 100.0, 0), Link(20.0, 10.0, 0), seed=0)
    assert model.route_ms("hierarchical", 8e6) == pytest.approx(model.route_ms("ring", 8e6))


def test_noise_counts_the_slowest_rank_in_the_balanced_ideal():
    """With jitter, T_bal subtracts the expected slowest compute (as metrics subtracts the
    realised max), so the straggler's excess counts as imbalance, not as ideal time."""
    f = _fleet([100.0], [200.0], [0.0], count=[1000])
    links = LinkModel.flat(["a"] * 1000, Link(0, None, 0), Link(0, None, 0), seed=0)
    step = Timeline(f, _plan([1.0], [1.0]), links, Noise(jitter_pct=2.0), 1000).run(range(3))[-1]
    slowest = expected_max(np.zeros(1), np.array([300.0]), np.array([1000]), Noise(jitter_pct=2.0),
                           np.array([300.0]))
    assert step.slowest_compute == pytest.approx(slowest)
    assert slowest > 300 * (1 + 0.02 * 3)  # the slowest of 1000 is past 3 sigma
    v = step_values(step, f)
    assert v["T"] / v["T_bal"] == pytest.approx(slowest / 300.0, rel=1e-6)


def test_summary_formulas_are_bench_metrics():
    """The class-weighted step values equal bench.results.metrics.step_values on per-rank records."""
    f = _fleet([10.0, 6.0], [20.0, 12.0], [1.0, 1.0], count=[3, 2], tokens=[100.0, 160.0],
               sites=["a", "b"])
    links = LinkModel.flat(["a"] * 3 + ["b"] * 2, Link(0.1, None, 0), Link(5.0, 10.0, 0), seed=0)
    step = Timeline(f, _plan([2e6], [1.0]), links, Noise(), 1000).run(range(3))[-1]
    records = []
    for c, n in enumerate(f.count):
        for _ in range(n):
            records.append({"step_ms": step.step_ms[c], "fwd_ms": f.fwd[c], "bwd_ms": f.bwd[c],
                            "injected_ms": step.injected, "transfer_ms": step.transfer,
                            "outer_ms": step.outer[c], "tokens": f.tokens[c]})
    mine, theirs = step_values(step, f), metrics.step_values(records)
    for key in ("T", "T_bal", "T_ideal", "exposed", "efficiency", "tokens"):
        assert mine[key] == pytest.approx(theirs[key], rel=1e-12), key


def test_prediction_matches_a_hand_calculation_of_the_default():
    """The default cluster with the tiny model timed as itself: launch-bound on every device;
    campus link, one bucket."""
    cfg = config_mod.compose(["logger=none", "experiment=none"])
    result = predict(cfg)
    # The tiny model's 834,304 fp32 gradients in one 25 MB bucket. Eager bf16, 4 layers: the host
    # dispatches 48 ops + 43 casts forward, 86 + 51 backward (bench.costs.kernels); the device's
    # own work is a few per cent of that, so the slowest device's compute is within 1% of the
    # host's; the 0.67 ms optimizer floor on every GPU.
    nbytes = 834_304 * 4
    cal = roofline.CALIBRATION
    host = ((48 + 86) * cal.host_us + (43 + 51) * cal.cast_us) / 1000
    work = device_times.workload(cfg)
    per_rank = [devices.phase_times(r["device"], work).compute_ms for r in cluster.rank_table(cfg)]
    compute = max(per_rank)
    assert compute == pytest.approx(host, rel=0.01)
    opt = 0.67
    # mixed4 over the campus uplink: the link model's all-reduce; jitter U(0, 0.4) per step.
    wire = links_of(cfg).route_ms("ring", nbytes)
    steps = []
    for step in range(cfg.train.warmup_steps, cfg.train.steps):
        jitter = np.random.default_rng([0, step, 0]).uniform(0, 0.4)
        steps.append(opt + compute + wire + jitter)
    assert result["bucket_bytes"] == [nbytes]
    assert result["step_ms"]["p50"] == pytest.approx(np.median(steps), rel=1e-9)
    assert result["injected_ms_p50"] == pytest.approx(np.median(steps) - opt - compute, rel=1e-9)
    assert result["efficiency"] == pytest.approx(np.mean(per_rank) / result["step_ms"]["p50"], rel=1e-6)


def test_predict_json_has_the_summary_names_at_100k_ranks():
    proc = subprocess.run([HETBENCH, "predict", "experiment=scale", "predict.world_size=100000",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["world_size"] == 100_000
    for key in ("step_ms", "efficiency", "tokens_per_s", "groups"):
        assert key in doc
    assert set(doc["slowdown"]) == {"balance", "network", "total"}
    assert sum(g["count"] for g in doc["groups"]) == 100_000
    assert doc["straggler_cost"]["excess_ms"] > 0  # 1% jitter: the slowest of 100k is late


@pytest.mark.parametrize("args,needle", [
    (["predict.world_size=0"], "predict.world_size"),
    (["predict.straggler_rate=2"], "predict.straggler_rate"),
    (["--from", "/nonexistent/run"], "--from"),
])
def test_bad_input_names_the_key(args, needle):
    proc = subprocess.run([HETBENCH, "predict", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_predict_sweep_writes_plots_and_findings(tmp_path):
    proc = subprocess.run([HETBENCH, "predict", "-m", "--out-root", str(tmp_path), "experiment=scale",
                           "strategy=ddp,diloco", "predict.world_size=1000,10000",
                           "network.inter_site.latency_ms=0.5,8"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (out,) = tmp_path.iterdir()
    assert (out / "plots" / "efficiency_vs_world.png").stat().st_size > 10_000
    assert (out / "plots" / "efficiency_vs_latency.png").stat().st_size > 10_000
    findings = (out / "findings.md").read_text()
    assert "Efficiency vs world size at 8 ms" in findings or "at 0.5 ms" in findings
    assert len(json.loads((out / "predictions.json").read_text())["points"]) == 8


def test_fitted_links_replace_the_configured_network(tmp_path):
    """A collectives.json's fitted alpha/beta (bench.collectives.load_links) drive the wire."""
    path = tmp_path / "collectives.json"
    path.write_text(json.dumps({"fit": {
        "intra_site": {"latency_ms": 0.0, "bandwidth_gbps": None, "points": 10},
        "inter_site": {"latency_ms": 7.0, "bandwidth_gbps": 10.0, "points": 10}}}))
    plain = predict(config_mod.compose(["logger=none", "experiment=none", "network=rack"]))
    fitted = predict(config_mod.compose(["logger=none", "experiment=none", "network=rack", f"predict.links_from={path}"]))
    nbytes = plain["bucket_bytes"][0]
    cfg = config_mod.compose(["logger=none", "experiment=none", "network=rack", f"predict.links_from={path}"])
    wire = links_of(cfg).route_ms("ring", nbytes) - links_of(
        config_mod.compose(["logger=none", "experiment=none", "network=rack"])).route_ms("ring", nbytes)
    assert wire > 2 * 7.0  # the fitted 7 ms uplink is crossed on the way there and back
    assert fitted["step_ms"]["p50"] - plain["step_ms"]["p50"] == pytest.approx(wire, rel=1e-6)
    proc = subprocess.run([HETBENCH, "predict", "--links", str(path), "experiment=none", "network=rack", "--json"],
                          capture_output=True, text=True, timeout=60)
    from bench.predict import (
        as_fleet_job,  # the command predicts a fleet's job: the fused stack
    )

    fleet_job = predict(as_fleet_job(cfg))
    assert json.loads(proc.stdout)["step_ms"]["p50"] == pytest.approx(fleet_job["step_ms"]["p50"])
