"""The collective benchmark's arithmetic: nccl-tests' byte counts and bus factors, the link
model's collective formulas against hand arithmetic, the table and JSON columns, and the fit
recovering a known link from synthetic points."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from bench import cli
from bench.collectives import fit, load_links, options, scopes, spec, table
from bench.config import ConfigError
from bench.costs import topology
from bench.costs.links import Link, collective_terms
from bench.costs.links import collective_ms as _model


def collective_ms(op, ranks, links, size):
    """The one model over a flat group: one GPU per node, across sites on `links[0]`."""
    return _model(op, fit.flat_scope("cross", ranks, links[0]), size)

# 5 ms and 1 Gb/s: 1e9 bits/s = 125,000 bytes per ms.
SLOW = Link(5.0, 1.0, 0.0)
FAST = Link(0.5, 10.0, 0.0)
MB = 1_000_000  # 8 ms over SLOW, 0.8 ms over FAST


def test_bus_factors_are_nccl_tests():
    assert spec.bus_factor("all_reduce", 4) == pytest.approx(2 * 3 / 4)
    assert spec.bus_factor("all_gather", 4) == pytest.approx(3 / 4)
    assert spec.bus_factor("reduce_scatter", 8) == pytest.approx(7 / 8)
    assert spec.bus_factor("broadcast", 4) == 1.0
    assert spec.bus_factor("sendrecv", 2) == 1.0


@pytest.mark.parametrize("op", spec.OPS)
def test_linear_terms_bound_the_model_on_one_slow_link(op):
    """On a slow link NCCL's own hardware latencies (us) vanish next to the link's ms: the
    one-link alpha-beta form (the fit's starting point) is the model to within a few %."""
    for ranks in (2, 4):
        hops, factor = collective_terms(op, ranks)
        by_terms = hops * SLOW.latency_ms + factor * MB * 8 / (SLOW.bandwidth_gbps * 1e6)
        assert collective_ms(op, ranks, [SLOW], MB) == pytest.approx(by_terms, rel=0.35)
        assert factor == pytest.approx(spec.bus_factor(op, ranks))


def test_layout_counts_as_nccl_tests():
    assert spec.layout("all_reduce", 1024, 4) == (256, 1024)
    assert spec.layout("all_gather", 1024, 4) == (64, 1024)  # count per rank, size total
    assert spec.layout("reduce_scatter", 1000, 4) == (62, 992)  # floored: what really moved
    assert spec.layout("all_gather", 8, 4) == (0, 0)  # no element per rank: skipped
    assert spec.layout("sendrecv", 8, 2) == (2, 8)


def test_sizes_and_iterations():
    assert spec.sizes(8, 64) == [8, 16, 32, 64]
    assert len(spec.sizes(8, 256 << 20)) == 26
    assert spec.iterations(1 << 20, 20, 5, 2) == (5, 20)
    assert spec.iterations(4 << 20, 20, 5, 2) == (2, 5)
    assert spec.iterations(256 << 20, 20, 5, 2) == (1, 2)
    assert spec.iterations(256 << 20, 20, 5, 20) == (1, 20)  # --min-iters 20: fixed iterations
    assert [spec.parse_size(t) for t in ("8", "1K", "64KB", "256M", "1G")] == \
        [8, 1024, 65536, 256 << 20, 1 << 30]
    with pytest.raises(ValueError):
        spec.parse_size("lots")


def test_header_has_nccl_tests_columns_with_units():
    head = table.header(emulated=True).split()
    plain = ["size(B)", "count(elements)", "type", "redop", "root", "time(us)", "algbw(GB/s)",
             "busbw(GB/s)"]
    assert head[head.index("size(B)"):head.index("busbw(GB/s)") + 1] == plain
    assert head[-2:] == ["model_time(us)", "model_busbw(GB/s)"]
    assert "model_time(us)" not in table.header(emulated=False)


def test_row_bandwidths():
    row = table.make_row("all_reduce", "world", 4, 1 << 20, 1000.0, 20, 5, model_ms=2.0)
    assert row["algbw"] == pytest.approx((1 << 20) / 1e-3 / 1e9)  # 1.048576 GB/s
    assert row["busbw"] == pytest.approx(row["algbw"] * 1.5)
    assert row["model_busbw"] == pytest.approx(row["busbw"] / 2)  # twice the time
    gather = table.make_row("all_gather", "world", 4, 1 << 20, 1000.0, 20, 5, model_ms=None)
    assert (gather["size"], gather["count"]) == (1 << 20, (1 << 20) // 16)
    assert gather["busbw"] == pytest.approx(gather["algbw"] * 0.75)
    assert "model_time" not in gather
    keys = {key for key, *_ in table.COLUMNS + table.MODEL_COLUMNS}
    assert {"size", "count", "type", "redop", "root", "time", "algbw", "busbw"} <= keys
    line = table.format_row(row, emulated=True)
    assert len(line.split()) == len(table.header(emulated=True).split()) - 1  # '#' + op header


def _rows(link: Link, noise: float = 0.0, seed: int = 0, scope: str = "cross") -> list[dict]:
    """Rows a perfect link would give (times from the model), in the scope."""
    rng = np.random.default_rng(seed)
    rows = []
    for op, ranks in (("sendrecv", 2), ("all_reduce", 2)):
        for size in spec.sizes(8, 4 << 20):
            t = _model(op, fit.flat_scope(scope, ranks, link), size) * (1 + rng.uniform(-noise, noise))
            rows.append({"op": op, "scope": scope, "ranks": ranks, "size": size,
                         "time": t * 1000.0})
    return rows


def test_fit_recovers_a_known_link():
    got = fit.fit_rows(_rows(SLOW))["inter_site"]
    assert got["op"] == "sendrecv" and got["points"] == 20
    assert got["latency_ms"] == pytest.approx(5.0, rel=1e-4)
    assert got["bandwidth_gbps"] == pytest.approx(1.0, rel=1e-4)
    noisy = fit.fit_rows(_rows(SLOW, noise=0.03))["inter_site"]
    assert noisy["latency_ms"] == pytest.approx(5.0, rel=0.1)
    assert noisy["bandwidth_gbps"] == pytest.approx(1.0, rel=0.1)


def test_fit_inverts_all_reduce_when_no_sendrecv():
    rows = [r for r in _rows(FAST) if r["op"] == "all_reduce"]
    for r in rows:
        r["ranks"] = 4
        r["time"] = collective_ms("all_reduce", 4, [FAST], r["size"]) * 1000.0
    got = fit.fit_rows(rows)["inter_site"]
    assert got["op"] == "all_reduce"
    assert (got["latency_ms"], got["bandwidth_gbps"]) == pytest.approx((0.5, 10.0), rel=1e-3)


def test_fit_without_a_bandwidth_limit():
    got = fit.fit_rows(_rows(Link(2.0, None, 0.0)))["inter_site"]
    assert got["latency_ms"] == pytest.approx(2.0, rel=1e-4)
    assert got["bandwidth_gbps"] is None


def test_load_links_gives_the_fitted_pair(tmp_path):
    rows = _rows(SLOW) + _rows(FAST, scope="site")
    path = tmp_path / "collectives.json"
    path.write_text(json.dumps({"fit": fit.fit_rows(rows)}))
    intra, inter = load_links(path)
    assert (intra.latency_ms, intra.bandwidth_gbps) == pytest.approx((0.5, 10.0), rel=1e-3)
    assert (inter.latency_ms, inter.bandwidth_gbps) == pytest.approx((5.0, 1.0), rel=1e-3)
    path.write_text(json.dumps({"fit": {"intra_site": fit.fit_rows(rows)["intra_site"]}}))
    with pytest.raises(ConfigError, match="inter_site"):
        load_links(path)


def test_scopes_of_two_sites():
    sites = ["a", "a", "b", "b"]
    assert scopes.scope_groups("world", sites) == [[0, 1, 2, 3]]
    assert scopes.scope_groups("site", sites) == [[0, 1], [2, 3]]
    assert scopes.scope_groups("cross", sites) == [[0, 2]]
    assert scopes.scope_groups("cross", ["a", "a"]) == []  # one site: nothing crosses
    assert scopes.scope_groups("site", ["a", "b", "b"]) == [[1, 2]]  # a lone rank sits out
    topo = topology.flat(sites, FAST, SLOW)
    site = scopes.describe("site", topo, rank=3, emulate=True)
    assert (site.mine, site.ranks, site.emulate) == ([2, 3], 2, True)
    assert site.links == [FAST]
    cross = scopes.describe("cross", topo, rank=1, emulate=True)
    assert not cross.takes_part and cross.links == [SLOW]
    # one message out through the NIC (0.5 ms, twice for Simple: NCCL's flush) and over the
    # uplink (5 ms), 8 ms for 1 MB at 1 Gb/s, + NCCL's network hop (14 us)
    assert cross.model_ms("sendrecv", MB) == pytest.approx(5 + 2 * 0.5 + 8 + 0.014)
    ideal = scopes.describe("site", topology.flat(sites, Link(0.0, None, 0.0), SLOW), rank=0,
                            emulate=True)
    assert not ideal.emulate  # an ideal link is this machine's own transport


def _args(**kw) -> argparse.Namespace:
    parser = options.parser()
    return parser.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kw.items()])


def test_bad_options_name_the_option():
    with pytest.raises(ConfigError, match="--ops"):
        options.plan_from_args(_args(ops="all_reduce,alltoall"))
    with pytest.raises(ConfigError, match="--min-bytes"):
        options.plan_from_args(_args(min_bytes="2"))
    with pytest.raises(ConfigError, match="--max-bytes"):
        options.plan_from_args(_args(min_bytes="1M", max_bytes="1K"))
    with pytest.raises(ConfigError, match="--iters"):
        options.plan_from_args(_args(iters=0))
    plan = options.plan_from_args(_args(ops="sendrecv", max_bytes="64K"))
    again = options.plan_from_args(options.parser().parse_args(options.plan_argv(plan)))
    assert again == plan  # the workers parse the driver's plan back unchanged


def test_cli_bad_input_exits_2_before_starting(capsys):
    assert cli.main(["collectives", "--scopes", "rack"]) == 2
    assert "--scopes='rack'" in capsys.readouterr().err
    assert cli.main(["collectives", "network.inter_site.bandwidth_gbps=-1"]) == 2
    assert "network.inter_site.bandwidth_gbps" in capsys.readouterr().err


def test_emulated_when_any_scope_crosses_a_real_link():
    ideal = Link(0.0, None, 0.0)
    interleaved = topology.flat(["a", "b", "a", "b"], FAST, ideal)
    site = scopes.describe("site", interleaved, rank=0, emulate=True)
    assert scopes.any_emulated([site], interleaved)
    # every inter-node hop leaves through a NIC, a crossing too (then the uplink adds its own)
    world = scopes.describe("world", interleaved, rank=0, emulate=True)
    assert scopes.any_emulated([world], interleaved)
    nothing = topology.flat(["a", "b", "a", "b"], ideal, ideal)
    world = scopes.describe("world", nothing, rank=0, emulate=True)
    assert not scopes.any_emulated([world], nothing)
