"""`hetbench collectives` with real ranks: on 4 emulated ranks over two sites (mixed4, a 5 ms,
1 Gb/s inter-site link, an ideal intra-site one), the times and bus bandwidths match the alpha-beta
model (bench.costs.links) wherever the link dominates, the JSON has nccl-tests' columns, and
the fit recovers the configured link; without emulation the same command times the machine."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import HETBENCH, read_json

pytestmark = pytest.mark.slow

ALPHA_MS, BETA_GBPS = 5.0, 1.0
LINK = [f"network.inter_site.latency_ms={ALPHA_MS}", f"network.inter_site.bandwidth_gbps={BETA_GBPS}",
        "network.inter_site.jitter_ms=0", "network.intra_site.latency_ms=0",
        "network.intra_site.bandwidth_gbps=null"]
NCCL_TESTS = ["size", "count", "type", "redop", "root", "time", "algbw", "busbw"]


def collectives(out_root: Path, *args: str, timeout: float = 120) -> tuple[int, Path, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([HETBENCH, "collectives", f"out_root={out_root}", "logger=none",
                           "cluster=mixed4", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    dirs = sorted(p for p in Path(out_root).iterdir() if p.is_dir()) if out_root.exists() else []
    return proc.returncode, (dirs[-1] if dirs else None), proc.stdout + proc.stderr


def modelled_us(op: str, scope: str, nbytes: int) -> float:
    """The one collective model (bench.costs.links) over the row's group: the world, or the
    two site leaders (ranks 0 and 2), each keeping its node (the H100 pair shares one)."""
    from bench.config import compose
    from bench.costs import links, topology

    topo = topology.build(compose(["cluster=mixed4", *LINK]))
    group = topo if scope == "world" else topo.subset([0, 2])
    return links.collective_ms(op, group, nbytes) * 1000.0


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """One emulated run, and a second only if this machine could not keep up with the first (a
    third of its rows over 10% slower than the link: a 2-core machine that something else woke
    up on). The tests then hold the second run to the same bounds."""
    for attempt in range(2):
        rc, run_dir, output = collectives(tmp_path_factory.mktemp("emulated"), *LINK,
                                          "--ops", "sendrecv,all_reduce,all_gather",
                                          "--scopes", "cross,world", "--min-bytes", "1K",
                                          "--max-bytes", "2M",
                                          "--iters", "10", "--warmup", "2")
        assert rc == 0, output
        doc = read_json(run_dir / "collectives.json")
        late = [r for r in doc["rows"] if r["time"] > 1.10 * r["model_time"]]
        if len(late) <= len(doc["rows"]) / 3:
            break
        print(f"collectives: attempt {attempt + 1}: {len(late)} of {len(doc['rows'])} rows "
              "over 10% slower than the link model: this machine was busy")
    return doc, run_dir, output


def test_times_and_busbw_match_the_link_model(emulated):
    doc, _, _ = emulated
    rows = doc["rows"]
    assert {(r["op"], r["scope"]) for r in rows} == {
        (op, scope) for op in ("sendrecv", "all_reduce", "all_gather") for scope in ("cross", "world")}
    within = []
    for row in rows:  # 1 KiB to 2 MiB: 5 to 60 ms on the link, Gloo moves them in ~1 ms here
        model_us = modelled_us(row["op"], row["scope"], row["size"])
        assert row["model_time"] == pytest.approx(model_us)
        assert model_us >= ALPHA_MS * 1000  # every op crosses the 5 ms uplink at least once
        factor = {"sendrecv": 1.0, "all_reduce": 2 * 3 / 4, "all_gather": 3 / 4}[row["op"]] \
            if row["ranks"] == 4 else {"sendrecv": 1.0, "all_reduce": 1.0, "all_gather": 1 / 2}[row["op"]]
        assert row["busbw"] == pytest.approx(row["size"] / (row["time"] * 1e3) * factor)
        assert row["time"] >= 0.99 * model_us, row  # the emulated link is never beaten
        if row["late_share"] == 0:  # the machine kept up with every window: the link exactly
            assert row["time"] == pytest.approx(model_us, rel=0.02), row
            assert row["busbw"] == pytest.approx(row["model_busbw"], rel=0.02), row
        if row["time"] <= 1.10 * model_us:
            within.append(row)
            assert row["busbw"] == pytest.approx(row["model_busbw"], rel=0.10), row
    # A window overrun by this machine's own work (a 2-core laptop, shared) makes a row slower
    # than the model, as it should; on a quiet machine none is, under heavy load a few are.
    late = [(r["op"], r["scope"], r["size"], round(r["time"] / r["model_time"] - 1, 3))
            for r in rows if r not in within]
    assert len(within) >= 2 / 3 * len(rows), f"this machine could not keep up: {late}"


def test_json_has_nccl_tests_columns(emulated):
    doc, run_dir, output = emulated
    assert doc["schema_version"] == 1 and doc["status"] == "ok"
    assert doc["world"]["size"] == 4 and doc["sites"] == {"a": [0, 1], "b": [2, 3]}
    assert doc["config"]["network"]["inter_site"]["latency_ms"] == ALPHA_MS
    assert doc["emulation"]["network"] == "on" and doc["emulation"]["time_scale"] == 1.0
    assert doc["columns"][3:11] == NCCL_TESTS and doc["columns"][-2:] == ["model_time", "model_busbw"]
    assert doc["units"]["time"] == "us" and doc["units"]["busbw"] == "GB/s"
    for row in doc["rows"]:
        assert set(NCCL_TESTS) <= set(row)
    assert "size(B)" in output and "busbw(GB/s)" in output and "model_time(us)" in output
    # all_gather: the size is the whole gathered buffer, the count each rank's part
    world_gather = [r for r in doc["rows"] if r["op"] == "all_gather" and r["scope"] == "world"]
    assert world_gather[0]["size"] == 1024 and world_gather[0]["count"] == 64  # per rank
    assert sorted(p.name for p in (run_dir / "plots").iterdir()) == sorted(
        f"{s}_{o}.png" for o in ("sendrecv", "all_reduce", "all_gather") for s in ("cross", "world"))


def test_fit_recovers_the_configured_link(emulated):
    fit = emulated[0]["fit"]["inter_site"]
    assert fit["op"] == "sendrecv" and fit["scope"] == "cross" and fit["points"] == 12
    assert fit["latency_ms"] == pytest.approx(ALPHA_MS, rel=0.10)
    assert fit["bandwidth_gbps"] == pytest.approx(BETA_GBPS, rel=0.10)


def test_without_emulation_it_times_this_machine(out_root):
    # every rank on a node of its own, NICs and uplink ideal: nothing is modelled, nothing emulated
    rc, run_dir, output = collectives(out_root, "network=rack", "cluster.groups.0.gpus_per_node=1",
                                      "--ops", "sendrecv",
                                      "--scopes", "site,cross", "--max-bytes", "64K",
                                      "--iters", "3", "--warmup", "1")
    assert rc == 0, output
    doc = read_json(run_dir / "collectives.json")
    assert doc["emulation"]["network"] == "off" and "model_time" not in doc["columns"]
    assert "model_time(us)" not in output
    assert all(r["time"] > 0 and "model_time" not in r for r in doc["rows"])
    assert set(doc["fit"]) == {"intra_site", "inter_site"}  # loopback Gloo, whatever it is
    assert all(f["latency_ms"] >= 0 for f in doc["fit"].values())
