"""The one collective model against NCCL's own formulas (NCCL 2.30.7 src/graph/tuning.cc) by
hand arithmetic: every constant below is tuning.cc's, written out, so a change to the model that
NCCL did not make fails here. Then the topology's uplink sharing, the tuner's overrides, and
nccl-tests' log format with the fit that inverts the model."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.collectives import compare, nccl_tests
from bench.config import compose
from bench.costs import links, nccl, topology
from bench.costs.topology import IDEAL, Link, Node

H100 = topology.NODES["H100-SXM"]  # 18 NVLink4 x 20.6 GB/s = 370.8 GB/s, NVLS
NIC400 = Link(0.0, 400.0, 0.0)  # 50 GB/s per NIC, one per GPU: 400 GB/s out of a node of 8
# NCCL's graphs (search.cc; bench.costs.nccl_graph): one node, ring/tree 6 x 60 GB/s doubled to
# 12 x 30 = 360; NVLS 8 channels, bwIntra 40, bwInter 60. Across nodes, a channel per NIC at the
# NIC's rate or the fabric's share: 8 x min(50, 370.8 / 8) = 8 x 46.35 = 370.8.
HETBENCH = str(Path(sys.executable).with_name("hetbench"))


def h100_nodes(n: int, nic: Link = NIC400) -> nccl.Comm:
    return topology.Topology(tuple(Node("a", 8, H100) for _ in range(n)), nic, IDEAL).comm()


def t(op, algo, proto, comm, nbytes):
    return nccl.algo_time_us(op, algo, proto, comm, nbytes)


# --- one node: 8 x H100 ------------------------------------------------------------------------

def test_one_node_ring_ll():
    # latency: base 6.6 + nsteps 14 x NVLink ring LL 0.6; bandwidth: min(llMaxBw Hopper-N1 141,
    # 360 x 0.5) = 141, x ranks / nsteps = 8 / 14
    expected = 6.6 + 14 * 0.6 + 65536 / (1000 * 141.0 * 8 / 14)
    assert t("all_reduce", "ring", "LL", h100_nodes(1), 65536) == pytest.approx(expected)


def test_one_node_tree_ll128():
    # latency: 14.0 + 2 x (7 x 1.25); bandwidth: min(360 x .92, 12 x 38.7), then LL128
    # min(x 7/9, 12 x 36.7), x 0.5, x treeCorrectionFactor[LL128][log2(1 MiB / 64) = 14] = .6
    bw = min(min(360 * 0.92, 12 * 38.7) * 7 / 9, 12 * 36.7) * 0.5 * 0.6
    expected = 14.0 + 2 * 7 * 1.25 + (1 << 20) / (1000 * bw)
    assert t("all_reduce", "tree", "LL128", h100_nodes(1), 1 << 20) == pytest.approx(expected)


def test_one_node_nvls_simple():
    # latency: NVLink NVLS Simple 25; bandwidth: 8 channels x min(bwIntra 40 x nvlsEfficiency
    # [Hopper] .85 x 7/8 x 2 (all-reduce pipelines two operations), bwInter 60), x ranks / nsteps
    bw = 8 * min(40 * 0.85 * 7 / 8 * 2, 60) * 8 / 14
    assert t("all_reduce", "nvls", "Simple", h100_nodes(1), 256 << 20) == \
        pytest.approx(25 + (256 << 20) / (1000 * bw))
    # and NCCL's tuner runs it for large all-reduces on an NVSwitch node (476 / 360 = 1.32x the
    # ring's busbw; published nccl-tests on HGX H200: ~1.3x)
    assert nccl.choose("all_reduce", h100_nodes(1), 256 << 20).algo == "nvls"


# --- two nodes -----------------------------------------------------------------------------------

def test_two_nodes_ring_simple_with_the_plateau():
    # nsteps 30, nInter 2(2-1) = 2; intra max(3.4, net overhead 1 x 3); inter NET ring Simple 14;
    # x1.4 (the ring plateau, multi-node, >= 64 B per channel and rank); bandwidth min(370.8, 400)
    latency = (8.4 + 28 * 3.4 + 2 * 14.0) * 1.4
    expected = latency + (64 << 20) / (1000 * 370.8 * 16 / 30)
    assert t("all_reduce", "ring", "Simple", h100_nodes(2), 64 << 20) == pytest.approx(expected)


def test_two_nodes_tree_ll():
    # latency 6.8 + 2 x ((8-1) x 0.6 + log2(2) x NET tree LL 5.0); bandwidth: llMaxBw across nodes
    # (the CPU row, N2) 39.0 caps 370.8 x .92 / 3.8; x .5; correction[LL][log2(4096/64) = 6] = .7
    expected = 6.8 + 2 * (7 * 0.6 + 1 * 5.0) + 4096 / (1000 * 39.0 * 0.5 * 0.7)
    assert t("all_reduce", "tree", "LL", h100_nodes(2), 4096) == pytest.approx(expected)


def test_two_nodes_nvls_needs_collnet():
    assert not nccl.supports("all_reduce", "nvls", "Simple", h100_nodes(2))
    assert nccl.supports("all_reduce", "nvls_tree", "Simple", h100_nodes(2))


# --- sixteen nodes (128 ranks) -------------------------------------------------------------------

def test_sixteen_nodes_tree_simple():
    # latency 8.4 + 2 x (7 x 4.0 + log2(16) x 14); bandwidth min(370.8 x .92, 8 x 36.0) x .5,
    # correction[Simple][log2(16 MiB / 64) = 18] = .7
    bw = min(370.8 * 0.92, 8 * 36.0) * 0.5 * 0.7
    expected = 8.4 + 2 * (7 * 4.0 + 4 * 14.0) + (16 << 20) / (1000 * bw)
    assert t("all_reduce", "tree", "Simple", h100_nodes(16), 16 << 20) == pytest.approx(expected)


def test_sixteen_nodes_ring_ll128():
    # nsteps 254, nInter 30: 14.0 + 224 x 1.9 + 30 x NET ring LL128 4.0;
    # bandwidth min(370.8 x .92, 8 x 36.7) x 128 / 254
    expected = 14.0 + 224 * 1.9 + 30 * 4.0 + (1 << 20) / (1000 * min(370.8 * 0.92, 8 * 36.7) * 128 / 254)
    assert t("all_reduce", "ring", "LL128", h100_nodes(16), 1 << 20) == pytest.approx(expected)


def test_sixteen_nodes_nvls_tree():
    # latency NVLink NVLS-tree 25 + 2 x log2(16) x NET NVLS-tree 20.9; bandwidth 8 channels x
    # min(bwIntra 40 x .85 x 7/8 x 2, the NIC's 50, perChMaxNVLSTreeBw 45.5) x 128 / 254
    expected = 25 + 2 * 4 * 20.9 + (256 << 20) / (1000 * 8 * 45.5 * 128 / 254)
    assert t("all_reduce", "nvls_tree", "Simple", h100_nodes(16), 256 << 20) == pytest.approx(expected)


def test_tree_latency_grows_with_log2_nodes_ring_with_nodes():
    small = [nccl.latency_us("all_reduce", a, "LL", h100_nodes(n)) for a in ("tree", "ring")
             for n in (16, 256)]
    tree16, tree256, ring16, ring256 = small
    assert tree256 - tree16 == pytest.approx(2 * 4 * 5.0)  # 4 more levels of NET tree LL 5.0
    assert ring256 - ring16 > 10 * (tree256 - tree16)


# --- the topology: nodes, NICs, shared uplinks ---------------------------------------------------

def _two_sites(order: str, uplink: Link) -> topology.Topology:
    return topology.Topology(tuple(Node(s, 8, H100) for s in order), NIC400, uplink)


def test_a_shared_uplink_divides_among_the_flows_that_cross_it():
    """Four nodes of 8 H100 on two sites, 100 Gb/s (12.5 GB/s) uplinks. A flat ring over nodes
    a,a,b,b leaves each site once: every rank's ring traffic crosses the uplink, so its bus
    bandwidth is the uplink's. Interleaved a,b,a,b, two flows leave each site at once and share
    it: half each. The hierarchical exchange's leaders cross once each, at the full uplink."""
    uplink = Link(1.0, 100.0, 0.0)
    n, ranks = 1 << 30, 32
    for order, share in (("aabb", 12.5), ("abab", 12.5 / 2)):
        comm = _two_sites(order, uplink).comm()
        assert comm.uplink_gbs == pytest.approx(share)
        transfer = t("all_reduce", "ring", "Simple", comm, 2 * n) - t("all_reduce", "ring", "Simple", comm, n)
        assert transfer == pytest.approx(n / (1000 * share * ranks / (2 * (ranks - 1))))
    leaders = _two_sites("aabb", uplink).leaders().comm()
    assert (leaders.ranks, leaders.uplink_gbs) == (2, pytest.approx(12.5))
    # so the hierarchical route moves a gigabyte across sites ~2x faster than the flat ring
    model = links.LinkModel(_two_sites("aabb", uplink), seed=0)
    assert model.route_ms("hierarchical", n) < 0.6 * model.route_ms("ring", n)


def test_crossings_pay_the_uplink_latency():
    uplink = Link(2.0, None, 0.0)
    comm = _two_sites("aabb", uplink).comm()
    # ring LL: nInter 2(4-1) = 6 hops between nodes, half of them (2 of the ring's 4) cross
    base = _two_sites("aabb", IDEAL).comm()
    extra = nccl.latency_us("all_reduce", "ring", "LL", comm) - nccl.latency_us("all_reduce", "ring", "LL", base)
    assert extra == pytest.approx(6 * 0.5 * 2000.0)
    # the tree crosses once up and once down
    extra = nccl.latency_us("all_reduce", "tree", "LL", comm) - nccl.latency_us("all_reduce", "tree", "LL", base)
    assert extra == pytest.approx(2 * 2000.0)


def test_the_ring_plateau_scales_nccls_latency_not_the_uplinks():
    """tuning.cc's x1.4 multi-node ring plateau is a property of NCCL's kernels: the uplink's
    milliseconds added on the crossings are not multiplied by it."""
    comm = _two_sites("aabb", Link(50.0, None, 0.0)).comm()
    own = nccl.latency_us("all_reduce", "ring", "Simple", _two_sites("aabb", IDEAL).comm())
    crossings = 6 * 0.5 * 50_000.0
    assert t("all_reduce", "ring", "Simple", comm, 1 << 30) - t("all_reduce", "ring", "Simple", _two_sites(
        "aabb", IDEAL).comm(), 1 << 30) == pytest.approx(crossings)
    assert t("all_reduce", "ring", "Simple", comm, 1 << 30) == pytest.approx(
        own * 1.4 + crossings + (1 << 30) / (1000 * 370.8 * 32 / 62))


def test_groups_fill_their_own_nodes():
    cfg = compose(["cluster=mixed8_two_sites", "network=campus"])
    topo = topology.build(cfg)
    assert [(n.site, n.ranks) for n in topo.nodes] == [("a", 4), ("b", 2), ("b", 2)]
    cfg = compose(["cluster=mixed8_two_sites", "cluster.groups.0.gpus_per_node=2"])
    assert [n.ranks for n in topology.build(cfg).nodes] == [2, 2, 2, 2]
    assert topology.build(compose(["cluster=tri_campus"])).nodes[2].spec.gpus == 72  # NVL72


def test_ideal_tiers_cost_nothing():
    flat = topology.flat(["a", "b", "c"], IDEAL, IDEAL)
    assert links.collective_ms("all_reduce", flat, 1 << 20) == 0.0
    assert not links.LinkModel(flat, 0).active


def test_ll128_follows_nccls_generation_rule():
    a100_h100 = topology.Topology((Node("a", 8, topology.NODES["A100-80GB"]), Node("a", 8, H100)),
                                  NIC400, IDEAL).comm()
    h100_b200 = topology.Topology((Node("a", 8, H100), Node("a", 8, topology.NODES["B200"])),
                                  NIC400, IDEAL).comm()
    assert not nccl.supports("all_reduce", "ring", "LL128", a100_h100)  # mixed, oldest Ampere
    assert nccl.supports("all_reduce", "ring", "LL128", h100_b200)  # mixed, oldest Hopper
    assert a100_h100.generation == "ampere"


def test_forced_algorithm_and_protocol():
    comm = h100_nodes(16)
    assert nccl.choose("all_reduce", comm, 8, algo="ring").algo == "ring"
    assert nccl.choose("all_reduce", comm, 1 << 30, proto="LL").proto == "LL"
    assert nccl.choose("broadcast", comm, 8, algo="tree").algo == "ring"  # broadcast: ring only
    cfg = compose(["network.nccl.algo=ring", "network.nccl.proto=Simple"])
    model = links.of_config(cfg, topology.build(cfg))
    assert (model.choice("ring", 8).algo, model.choice("ring", 8).proto) == ("ring", "Simple")


def test_bad_nccl_names_are_refused():
    from bench.config import ConfigError, validate

    with pytest.raises(ConfigError, match="network.nccl.algo"):
        validate(compose(["network.nccl.algo=collnet"]))


# --- the published 8 x A100 curve (stas00/ml-engineering, network/README.md) --------------------

A100_CURVE = {32 << 10: 1.31, 1 << 20: 18.0, 4 << 20: 72.3, 8 << 20: 109.9, 64 << 20: 171.5,
              256 << 20: 194.1, 1 << 30: 229.0, 16 << 30: 234.89}


def test_published_a100_curve_at_large_sizes():
    """NCCL's tuner model reaches the curve's bandwidth (240 GB/s = 12 NVLink3 x 20) at 1 GiB and
    beyond; below, it is optimistic (docs/network.md has every size: it misses by 20-180% at
    32 KiB-256 MiB, which benchmarks/network_model.py prints)."""
    comm = topology.Topology(topology.nodes_of([("A100", 8, "a", None)]), IDEAL, IDEAL).comm()
    for size in (1 << 30, 16 << 30):
        pick = nccl.choose("all_reduce", comm, size)
        busbw = size / pick.time_us / 1e3 * 14 / 8
        assert busbw == pytest.approx(A100_CURVE[size], rel=0.05)


# --- nccl-tests' log format and the fit ----------------------------------------------------------

def nccl_tests_log(op: str, hosts: list[str], device: str, rows: list[tuple], root=True) -> str:
    """A log as nccl-tests prints it (all_reduce_perf -g N, one line per rank)."""
    lines = [f"# Collective test starting: {op}_perf",
             "# nThread 1 nGpus 8 minBytes 8 maxBytes 1073741824 step: 2(factor) warmup iters: 5 "
             "iters: 20 agg iters: 1 validation: 1 graph: 0", "#", "# Using devices"]
    for rank, host in enumerate(hosts):
        lines.append(f"#  Rank {rank:2d} Group  0 Pid {4000 + rank:6d} on {host:>10} device "
                     f"{rank % 8:2d} [0x{rank:02x}] {device}")
    lines += ["#", "#" + " " * 60 + "out-of-place                       in-place",
              "#       size         count      type   redop    root     time   algbw   busbw "
              "#wrong     time   algbw   busbw #wrong",
              "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)  "
              "          (us)  (GB/s)  (GB/s)"]
    ranks = len(hosts)
    for size, time_us in rows:
        alg = size / time_us / 1e3
        bus = alg * 2 * (ranks - 1) / ranks
        rootcol = "      -1" if root else ""
        lines.append(f"{size:12d}  {size // 4:12d}     float     sum{rootcol}  {time_us:8.2f} "
                     f"{alg:7.2f} {bus:7.2f}      0  {time_us:8.2f} {alg:7.2f} {bus:7.2f}    N/A")
    lines += ["# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 1.0", "#"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("root", [True, False])
def test_parse_reads_nccl_tests_output(root):
    text = nccl_tests_log("all_reduce", ["node-a"] * 8, "NVIDIA A100-SXM4-80GB",
                          [(8, 21.99), (1 << 20, 101.9)], root=root)
    log = nccl_tests.parse(text)
    assert (log.op, log.ranks, dict(log.nodes)) == ("all_reduce", 8, {"node-a": 8})
    assert log.devices == ["A100-80GB"] * 8
    assert [(r["size"], r["time_us"]) for r in log.rows] == [(8, 21.99), (1 << 20, 101.9)]
    with pytest.raises(ValueError, match="--op"):
        nccl_tests.parse(text.replace("# Collective test starting: all_reduce_perf", ""))


def test_fit_recovers_an_injected_nic():
    """Two hosts of 8 H100: times made by the model with a 20 us, 200 Gb/s NIC (with 3% noise);
    the fit of the NIC tier gets both back within 5%."""
    cfg = compose(["network.intra_site.latency_ms=0.001", "network.intra_site.bandwidth_gbps=400"])
    hosts = ["h1"] * 8 + ["h2"] * 8
    log = nccl_tests.Log("all_reduce", 16, hosts, ["H100-SXM"] * 16, [])
    truth = topology.replace(compare.log_topology(log, cfg), nic=Link(0.020, 200.0, 0.0))
    rng = np.random.default_rng(1)
    log.rows = [{"size": 1 << k, "time_us": links.collective_ms("all_reduce", truth, 1 << k) * 1e3
                 * (1 + rng.uniform(-0.03, 0.03)), "busbw": 1.0} for k in range(10, 32, 2)]
    cal = compare.calibrate(log, compare.log_topology(log, cfg))
    assert cal["tier"] == "nic"
    assert cal["latency_ms"] == pytest.approx(0.020, rel=0.05)
    assert cal["bandwidth_gbps"] == pytest.approx(200.0, rel=0.05)


def test_compare_writes_a_calibration_runs_and_predictions_use(tmp_path):
    sizes = [1 << k for k in range(15, 31, 3)]
    truth = topology.Topology((Node("a", 8, topology.replace(topology.NODES["A100-80GB"], hop_us=3.0,
                                                             graph_gbs=200.0)),), IDEAL, IDEAL)
    rows = [(n, links.collective_ms("all_reduce", truth, n) * 1e3) for n in sizes]
    path = tmp_path / "all_reduce_perf.log"
    path.write_text(nccl_tests_log("all_reduce", ["dgx"] * 8, "NVIDIA A100-SXM4-80GB", rows))
    out = tmp_path / "cal.json"
    proc = subprocess.run([HETBENCH, "collectives", "--compare", str(path), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "fitted node tier" in proc.stdout
    cal = json.loads(out.read_text())
    assert (cal["hop_us"], cal["graph_gbs"]) == pytest.approx((3.0, 200.0), rel=0.05)
    cfg = compose(["cluster.groups=[{device: A100, count: 8}]", f"network.calibration={out}"])
    fitted = topology.build(cfg).nodes[0].spec
    assert (fitted.hop_us, fitted.graph_gbs) == (cal["hop_us"], cal["graph_gbs"])


def test_model_table_json(tmp_path):
    proc = subprocess.run([HETBENCH, "collectives", "--model", "experiment=scale", "--world-size",
                           "100000", "--ops", "all_reduce", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    row = doc["rows"][-1]
    assert set(row) >= {"op", "scope", "bytes", "time_us", "algbw_GBps", "busbw_GBps", "algo", "proto"}
    world = [r for r in doc["rows"] if r["scope"] == "world"]
    assert world[0]["ranks"] == 100_000 and world[0]["nodes"] > 100_000 / 72
    assert all(math.isfinite(r["time_us"]) and r["time_us"] > 0 for r in doc["rows"])


@pytest.mark.parametrize("args,needle", [
    (["--compare", "/nonexistent/all_reduce_perf.log"], "--compare"),
    (["--model", "network.calibration=/nonexistent.json"], "network.calibration"),
    (["--model", "--world-size", "1", "cluster=mixed4"], "--world-size"),
])
def test_bad_input_names_the_fix(args, needle):
    proc = subprocess.run([HETBENCH, "collectives", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
