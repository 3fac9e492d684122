"""`hetbench collectives --model`: the nccl-tests-style table the one collective model
(bench.costs.links) predicts for the configured topology at any world size, without starting a
rank. Per row: op, scope, bytes, time_us, algbw_GBps, busbw_GBps and the algorithm and protocol
NCCL's tuner would pick. The model is closed-form, so 100,000 ranks take well under a second."""
from __future__ import annotations

import json

from bench.collectives import spec
from bench.costs import cluster, nccl, topology
from bench.costs.topology import Topology


def scope_topology(scope: str, topo: Topology) -> Topology | None:
    """The scope's (largest) group: everyone, the largest site, or one rank per site."""
    if scope == "world":
        return topo
    if scope == "site":
        sites = topo.by_site().values()
        return max(sites, key=lambda t: t.world_size) if sites else None
    return topo.leaders()


def rows(cfg, plan: spec.Plan, world_size: int | None = None) -> list[dict]:
    topo = topology.build(cfg, cluster.scaled_counts(cfg, world_size) if world_size else None)
    opts = cfg.network.get("nccl") or {}
    algo = None if opts.get("algo", "auto") == "auto" else opts.get("algo")
    proto = None if opts.get("proto", "auto") == "auto" else opts.get("proto")
    out = []
    for scope in plan.scopes:
        group = scope_topology(scope, topo)
        if group is None or group.world_size < 2:
            continue
        comm = group.comm()  # condensed once: rows reuse it
        for op in plan.ops:
            for size in plan.sizes():
                out.append(_row(op, scope, comm, size, algo, proto))
    return out


def _row(op: str, scope: str, comm: nccl.Comm, size: int, algo, proto) -> dict:
    pick = nccl.choose(op, comm, size, algo, proto)
    algbw = size / pick.time_us / 1e3 if pick.time_us > 0 else float("inf")
    return {"op": op, "scope": scope, "ranks": comm.ranks, "nodes": comm.nodes, "bytes": size,
            "time_us": pick.time_us, "algbw_GBps": algbw,
            "busbw_GBps": algbw * spec.bus_factor(op, comm.ranks),
            "algo": pick.algo, "proto": pick.proto}


def format_table(table: list[dict]) -> str:
    head = (f"# {'op':>14} {'scope':>6} {'ranks':>7} {'nodes':>6} {'size(B)':>12} {'time(us)':>11} "
            f"{'algbw(GB/s)':>11} {'busbw(GB/s)':>11} {'algo':>9} {'proto':>6}")
    lines = [head]
    for r in table:
        lines.append(f"  {r['op']:>14} {r['scope']:>6} {r['ranks']:>7} {r['nodes']:>6} "
                     f"{r['bytes']:>12} {r['time_us']:>11.2f} {r['algbw_GBps']:>11.2f} "
                     f"{r['busbw_GBps']:>11.2f} {r['algo']:>9} {r['proto']:>6}")
    return "\n".join(lines)


def main(cfg, plan: spec.Plan, world_size: int | None, as_json: bool) -> int:
    table = rows(cfg, plan, world_size)
    if as_json:
        print(json.dumps({"model": f"NCCL {nccl.NCCL_VERSION} tuner model (bench.costs.nccl)",
                          "cluster": cfg.cluster.name, "network": cfg.network.name,
                          "world_size": world_size or cluster.world_size(cfg), "rows": table}))
    else:
        print(f"# hetbench collectives --model: NCCL {nccl.NCCL_VERSION} tuner model, "
              f"{cfg.cluster.name} over {cfg.network.name}")
        print(format_table(table))
    return 0
