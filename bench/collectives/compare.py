"""`hetbench collectives --compare LOG`: an nccl-tests log (or a measured `hetbench
collectives` run's collectives.json) against the one collective model, size by size, and a
fitted correction of the tier the log exercised:

  node  one host: the ring's bus bandwidth inside the node (GB/s, in place of NCCL's graph
        search's channels x speed) and an extra latency per intra-node hop (us, on top of
        NCCL's own hardware latency)
  nic   several hosts: the NIC's latency (ms) and bandwidth per NIC (Gb/s), network.intra_site

`--out FILE` writes the correction as a calibration that `network.calibration=FILE` applies to
every later run and prediction (bench.costs.topology.apply_calibration)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.collectives import fit, nccl_tests, spec
from bench.costs import links, nccl, topology
from bench.costs.topology import Link, Node, Topology
from bench.results import files


def log_topology(log: nccl_tests.Log, cfg) -> Topology:
    """The log's own cluster: a node per host (its first rank's device), one site."""
    firsts: dict = {}
    for host, device in zip(log.hosts, log.devices):
        firsts.setdefault(host, device)
    override = cfg.network.get("node")
    nodes = tuple(Node("a", log.nodes[h], topology.node_spec(d, override)) for h, d in firsts.items())
    return Topology(nodes, topology.link_of(cfg.network.intra_site), topology.IDEAL)


def tier_model(log: nccl_tests.Log, topo: Topology, tier: str):
    """model(a, b) -> times (ms) of the log's sizes with the tier's two parameters."""
    sizes = [r["size"] for r in log.rows]

    def model(a: float, b: float) -> np.ndarray:
        if tier == "node":  # a: extra hop latency (us); b: 1 / the ring's bus GB/s
            nodes = tuple(Node(n.site, n.ranks, replace(n.spec, hop_us=a, graph_gbs=1 / b))
                          for n in topo.nodes)
            t = replace(topo, nodes=nodes)
        else:  # a: NIC latency (ms); b: 1 / Gb/s
            t = replace(topo, nic=Link(a, 1 / b, 0.0))
        return np.array([links.collective_ms(log.op, t, n) for n in sizes])
    return model


def calibrate(log: nccl_tests.Log, topo: Topology) -> dict:
    tier = "node" if len(topo.nodes) == 1 else "nic"
    times = np.array([r["time_us"] for r in log.rows]) / 1000.0
    model = tier_model(log, topo, tier)
    gbs = np.geomspace(1.0, 4000.0, 25)  # GB/s per GPU (node) or Gb/s per NIC
    if tier == "node":  # extra hop latency, us
        start = fit.grid_start(times, model, [0.0, 1.0, 3.0, 10.0, 30.0], 1 / gbs)
    else:  # NIC latency, ms
        start = fit.grid_start(times, model, [0.0, 0.002, 0.01, 0.05, 0.2, 1.0, 5.0], 1 / gbs)
    a, b = fit.gauss_newton(times, model, *start, rounds=12)
    fitted = model(a, b)
    out = {"kind": "hetbench.network_calibration", "tier": tier, "op": log.op,
           "ranks": log.ranks, "nodes": len(topo.nodes), "points": len(times),
           "device": next((d for d in log.devices if d), None),
           "rms_relative_error": float(np.sqrt(np.mean(((fitted - times) / times) ** 2)))}
    if tier == "node":
        out.update(hop_us=a, graph_gbs=1 / b)
    else:
        out.update(latency_ms=a, bandwidth_gbps=1 / b)
    return out


def compare_rows(log: nccl_tests.Log, topo: Topology, calibrated: Topology | None = None) -> list[dict]:
    rows = []
    for r in log.rows:
        pick = links.collective(log.op, topo, r["size"])
        factor = spec.bus_factor(log.op, log.ranks)
        busbw = r["size"] / pick.time_us / 1e3 * factor
        row = {"bytes": r["size"], "measured_us": r["time_us"], "model_us": pick.time_us,
               "measured_busbw": r["busbw"], "model_busbw": busbw, "algo": pick.algo,
               "proto": pick.proto, "busbw_error": busbw / r["busbw"] - 1 if r["busbw"] else None}
        if calibrated is not None:
            row["calibrated_us"] = links.collective_ms(log.op, calibrated, r["size"]) * 1000
        rows.append(row)
    return rows


def load_log(path: str, op: str | None) -> nccl_tests.Log:
    """An nccl-tests log, or a measured `hetbench collectives` JSON (its world scope)."""
    if str(path).endswith(".json"):
        doc = files.read_json(Path(path))
        mine = [r for r in doc.get("rows", []) if r["scope"] == "world" and r["op"] == (op or "all_reduce")]
        ranks = mine[0]["ranks"] if mine else 0
        return nccl_tests.Log(op or "all_reduce", ranks, [f"rank{i}" for i in range(ranks)],
                              [None] * ranks, [{"size": r["size"], "time_us": r["time"],
                                                "busbw": r["busbw"]} for r in mine])
    return nccl_tests.read(path, op)


def main(cfg, path: str, op: str | None, out: str | None, as_json: bool) -> int:
    log = load_log(path, op)
    topo = log_topology(log, cfg)
    cal = calibrate(log, topo)
    rows = compare_rows(log, topo, topology.apply_calibration(topo, cal))
    if out:
        files.write_json_atomic(Path(out), dict(cal, source=str(path)))
    if as_json:
        print(json.dumps({"model": f"NCCL {nccl.NCCL_VERSION} tuner model", "op": log.op,
                          "ranks": log.ranks, "nodes": len(topo.nodes), "rows": rows,
                          "calibration": cal}))
        return 0
    print(f"# {path}: {log.op}, {log.ranks} ranks on {len(topo.nodes)} node(s); "
          f"model: NCCL {nccl.NCCL_VERSION} tuner model")
    print(f"# {'size(B)':>12} {'measured(us)':>12} {'model(us)':>10} {'meas busbw':>10} "
          f"{'model busbw':>11} {'error':>7} {'algo':>6} {'proto':>6} {'calibrated(us)':>14}")
    for r in rows:
        err = f"{100 * r['busbw_error']:+.0f}%" if r["busbw_error"] is not None else "-"
        print(f"  {r['bytes']:>12} {r['measured_us']:>12.1f} {r['model_us']:>10.1f} "
              f"{r['measured_busbw']:>10.2f} {r['model_busbw']:>11.2f} {err:>7} {r['algo']:>6} "
              f"{r['proto']:>6} {r['calibrated_us']:>14.1f}")
    fitted = ", ".join(f"{k} {cal[k]:.4g}" for k in ("hop_us", "graph_gbs", "latency_ms",
                                                     "bandwidth_gbps") if k in cal)
    print(f"# fitted {cal['tier']} tier: {fitted} (rms relative error {cal['rms_relative_error']:.1%})"
          + (f"; written to {out} (network.calibration={out})" if out else ""))
    return 0
