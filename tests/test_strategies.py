"""Strategies with real ranks: bytes on the inter-site link measured in the hook against each
strategy's expected factor, the hierarchical route's injected delay against its own formula,
the outer sync of diloco, and the balanced split's gradient against the uniform split's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import read_json, read_records, run_hetbench
from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import _should_compress

from bench import config
from bench.costs import cluster, device_times, links, topology
from bench.rank.model import build_model

# Two sites (mixed4), no jitter, a fast run: buckets are bytes-exact and delays deterministic.
BASE = ["train.steps=16", "train.warmup_steps=12", "train.log_every=4",
        "network.inter_site.jitter_ms=0", "network.inter_site.latency_ms=1.0",
        "strategy.powersgd_start_step=4"]


def _link_model(*extra: str):
    """The link model the run of these overrides charges (its nodes, NICs and uplinks)."""
    cfg = config.compose([*BASE, *extra])
    return links.of_config(cfg, topology.build(cfg))


def _grad_bytes(seq_len: int = 32) -> int:
    cfg = config.compose([f"train.seq_len={seq_len}"])
    model = build_model(cfg.model, cluster.vocab_size(cfg), seq_len)
    return sum(p.numel() for p in model.parameters()) * 4


def _powersgd_numel(rank: int = 4) -> int:
    """Elements torch's hook sends per step: its own compression test on every gradient."""
    cfg = config.compose(["train.seq_len=32"])
    model = build_model(cfg.model, cluster.vocab_size(cfg), 32)
    total = 0
    for p in model.parameters():
        n, m = p.reshape(p.shape[0], -1).shape
        ok, raw, small = _should_compress(n, m, min(n, m, rank), 2.0)
        total += small if ok else raw
    return total


def _measured(run_dir) -> list[dict]:
    return [r for r in read_records(run_dir) if r["rank"] == 0 and not r["warmup"]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    # plain ddp: the session's default run (conftest.default_run), on the same mixed4 sites
    for name in ("ddp_bf16", "powersgd", "hierarchical"):
        rc, run_dir, output = run_hetbench(tmp_path_factory.mktemp(name), *BASE, f"strategy={name}")
        assert rc == 0, output
        out[name] = run_dir
    return out


@pytest.mark.slow
def test_compression_cuts_inter_site_bytes_by_the_expected_factor(runs, default_run):
    n = _grad_bytes()
    ring = 2 * 3 / 4  # a ring over W=4 ranks carries 2(W-1)/W of the bucket over each link
    ddp = _measured(default_run[0])  # seq_len 64: a larger position embedding
    assert [r["inter_site_bytes"] for r in ddp] == pytest.approx([ring * _grad_bytes(64)] * len(ddp))
    bf16 = _measured(runs["ddp_bf16"])
    assert [r["inter_site_bytes"] for r in bf16] == pytest.approx([ring * n / 2] * len(bf16))
    summary = read_json(runs["ddp_bf16"] / "summary.json")  # mean over measured steps
    assert summary["inter_site_bytes_per_step"] == pytest.approx(ring * n / 2)
    psgd = _measured(runs["powersgd"])  # measured steps are past powersgd_start_step
    assert [r["inter_site_bytes"] for r in psgd] == pytest.approx([ring * _powersgd_numel() * 4] * len(psgd))
    # three dependent all-reduces (uncompressed, P, Q): the latency three times
    model = _link_model()
    for rec in psgd:
        assert rec["injected_ms"] == pytest.approx(
            sum(model.route_ms("ring", b, rounds=3) for b in rec["bucket_bytes"]))
    summary = read_json(runs["powersgd"] / "summary.json")
    assert summary["strategy"]["name"] == "powersgd"
    # torch's own counters: 12 compressed steps (4..15), one bucket each
    assert summary["strategy"]["powersgd_numel_after"] == 12 * _powersgd_numel()
    assert n / (_powersgd_numel() * 4) > 4  # the tiny model's matrices compress well at rank 4


@pytest.mark.slow
def test_hierarchical_delay_per_bucket_matches_its_formula(runs):
    model = _link_model()
    for rec in _measured(runs["hierarchical"]):
        expected = sum(model.route_ms("hierarchical", b) for b in rec["bucket_bytes"])
        assert rec["injected_ms"] == pytest.approx(expected, rel=1e-6)
        # Leaders' ring of S=2 sites: the bucket once per direction, not 2(W-1)/W = 1.5 times.
        assert rec["inter_site_bytes"] == pytest.approx(sum(rec["bucket_bytes"]))
        assert expected < sum(model.route_ms("ring", b) for b in rec["bucket_bytes"])


@pytest.mark.slow
def test_diloco_syncs_across_sites_every_h_steps(out_root):
    rc, run_dir, output = run_hetbench(out_root, *BASE, "strategy=diloco", "strategy.sync_every=2")
    assert rc == 0, output
    n = _grad_bytes()
    model = _link_model()
    for rec in _measured(run_dir):
        synced = (rec["step"] + 1) % 2 == 0
        # inner steps stay on site (the H100 pair's NVLink only: nothing crosses the uplink)
        assert rec["inter_site_bytes"] == pytest.approx(n if synced else 0.0)
        inner = model.route_ms("site", n)
        assert rec["injected_ms"] == pytest.approx(model.route_ms("hierarchical", n) + inner
                                                   if synced else inner)
        if not synced:
            assert rec["outer_ms"] == 0.0
    # The sync starts when the last rank's optimizer ends; that rank waits exactly the wire.
    by_step = {}
    for rec in read_records(run_dir):
        by_step.setdefault(rec["step"], []).append(rec)
    for step, recs in by_step.items():
        if (step + 1) % 2 == 0 and not recs[0]["warmup"]:
            outer_wire = recs[0]["injected_ms"] - model.route_ms("site", n)  # less the inner step's
            assert min(r["outer_ms"] for r in recs) == pytest.approx(outer_wire, rel=1e-6)
    losses = [r["loss"] for r in read_records(run_dir)]
    assert np.isfinite(losses).all() and np.mean(losses[-8:]) < np.mean(losses[:8])


@pytest.mark.slow
def test_ideal_tokens_per_s_is_the_sum_of_device_speeds(default_run):
    run_dir = default_run[0]
    summary = read_json(run_dir / "summary.json")
    meta = read_json(run_dir / "metadata.json")
    tokens = {r["rank"]: r["tokens"] for r in read_records(run_dir)}
    ideal = sum(tokens[info["rank"]] / (info["device_times"]["compute_ms"]
                                         + info["device_times"]["opt_ms"]) * 1000.0
                for info in meta["ranks"])
    assert summary["ideal_tokens_per_s"] == pytest.approx(ideal)
    assert summary["ideal_share"] == pytest.approx(summary["tokens_per_s"] / ideal)


@pytest.mark.slow
@pytest.mark.heavy  # two 4-rank trainings: ~30 s
def test_balanced_trains_the_uniform_split_s_model(tmp_path):
    """Same sequences, cut differently, losses weighted: the loss curve of ddp, to float
    rounding. Unpaced and unemulated (the math does not depend on either)."""
    plain = ["experiment=remedies", "train.micro_batch=8", "train.seq_len=16",  # not FAST's
             "emulation.compute=off", "emulation.network=off",
             "train.steps=20", "train.warmup_steps=2", "train.log_every=10"]
    curves = {}
    for name in ("ddp", "balanced"):
        rc, run_dir, output = run_hetbench(tmp_path / name, *plain, f"strategy={name}")
        assert rc == 0, output
        recs = read_records(run_dir)
        curves[name] = [np.average([r["loss"] for r in recs if r["step"] == s],
                                   weights=[r["tokens"] for r in recs if r["step"] == s])
                        for s in range(20)]
        batches = {r["rank"]: r["tokens"] for r in recs}
        if name == "balanced":
            cfg = config.compose(["experiment=remedies", "strategy=balanced"])
            split = device_times.micro_batches(cfg)
            # unpaced, a rank counts the tokens it really trained (not the workload's)
            assert [batches[r] for r in range(4)] == [b * cfg.train.seq_len for b in split]
    assert curves["balanced"] == pytest.approx(curves["ddp"], rel=2e-3)


def test_balanced_loss_weights_give_the_uniform_gradient():
    """Rank r's mean loss over b_r sequences, weighted b_r W / B and averaged over W ranks (what
    DDP does), has the gradient of the mean over all B sequences."""
    torch.manual_seed(0)
    cfg = config.compose(["train.seq_len=16"])
    model = build_model(cfg.model, cluster.vocab_size(cfg), 16).double()
    x = torch.randint(0, cluster.vocab_size(cfg), (12, 17))
    split, world = [1, 3, 3, 5], 4

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    uniform = grads(model(x[:, :-1], x[:, 1:]))
    total, start = 0.0, 0
    for b in split:
        part = x[start:start + b]
        total = total + model(part[:, :-1], part[:, 1:]) * (b * world / 12) / world
        start += b
    assert torch.allclose(grads(total), uniform, rtol=1e-9, atol=1e-12)


def test_balanced_strategy_gives_each_rank_its_split():
    cfg = config.compose(["experiment=remedies", "strategy=balanced"])
    batches = device_times.micro_batches(cfg)
    assert batches != [cfg.train.micro_batch] * 4 and sum(batches) == 4 * cfg.train.micro_batch
