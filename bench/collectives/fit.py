"""Latency (alpha) and bandwidth (beta) of each link tier, fitted to measured times by
inverting the one collective model (bench.costs.links: NCCL's tuner model over the topology).

A row (op, R ranks, n bytes, time t) is modelled with the tier's link set to (alpha, beta) and
everything else as configured. The model is linear in alpha and 1/beta for a fixed algorithm and
protocol, so the fit starts from the one-link alpha-beta solution (`collective_terms`: t = hops *
alpha + factor * n / beta) and refines by Gauss-Newton on relative residuals ((model - t) / t, so
that an 8 B point and a 256 MiB point count alike), re-linearizing as NCCL's pick changes, with
alpha >= 0 and beta > 0 (a bandwidth term under 0.1% of every point's time means no limit was
seen: bandwidth null).

  intra_site  the NIC tier, from the site scope (ranks of one site)
  inter_site  the uplink tier, from the cross scope (one rank per site)

using sendrecv where it was measured, else all_reduce, else the first op measured. On an
emulated run the fit recovers the configured link wherever the real transfer stayed inside the
emulated window; points where this machine's own transfer was slower pull it towards this machine.

`load_links(collectives.json)` returns the fitted (intra, inter) Link pair, which the predictor
takes in place of the configured network."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.costs import topology
from bench.costs.links import Link, collective_ms, collective_terms

SOURCES = {"intra_site": "site", "inter_site": "cross"}
PREFERRED_OPS = ("sendrecv", "all_reduce", "all_gather", "reduce_scatter", "broadcast")
MS_PER_BYTE_AT_1GBPS = 8 / 1e6  # Link.step_ms: bytes * 8 / (Gb/s * 1e6)
UNSEEN = 1e-3  # a bandwidth term under this share of every point's time was not measured


def solve(points: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(alpha ms, ms per byte) from (hops, bytes on the link, time ms) points."""
    terms = np.array([(h, b) for h, b, _ in points], dtype=float)
    weight = 1.0 / np.array([t for *_, t in points], dtype=float)
    design, target = terms * weight[:, None], np.ones(len(points))
    alpha, slope = np.linalg.lstsq(design, target, rcond=None)[0]
    if slope * design[:, 1].max() < UNSEEN:  # no bandwidth term seen: latency alone
        return max(0.0, float(np.linalg.lstsq(design[:, :1], target, rcond=None)[0][0])), 0.0
    if alpha < 0:  # no latency seen: bandwidth alone
        return 0.0, max(0.0, float(np.linalg.lstsq(design[:, 1:], target, rcond=None)[0][0]))
    return float(alpha), float(slope)


def points_of(rows: list[dict]) -> list[tuple[float, float, float]]:
    """(hops, factor * bytes, time ms) per row, from the link model's linear form."""
    out = []
    for row in rows:
        hops, factor = collective_terms(row["op"], row["ranks"])
        out.append((hops, factor * row["size"], row["time"] / 1000.0))
    return out


TIERS = {"intra_site": "nic", "inter_site": "uplink"}


def flat_scope(scope: str, ranks: int, link: Link) -> topology.Topology:
    """The scope's group as one GPU per node: one site (site scope, the NIC tier) or a site
    per rank (cross scope, the uplink tier); the other tier ideal."""
    if scope == "cross":
        return topology.flat([str(i) for i in range(ranks)], topology.IDEAL, link)
    return topology.flat(["a"] * ranks, link, topology.IDEAL)


def model_ms(rows: list[dict], alpha: float, slope: float, build=flat_scope) -> np.ndarray:
    """Each row's modelled time (ms) with the tier's link at (alpha ms, ms per byte)."""
    link = Link(alpha, MS_PER_BYTE_AT_1GBPS / slope if slope > 0 else None, 0.0)
    return np.array([collective_ms(r["op"], build(r["scope"], r["ranks"], link), r["size"])
                     for r in rows])


def refine(rows: list[dict], alpha: float, slope: float, build=flat_scope, rounds: int = 8):
    """Gauss-Newton on relative residuals from an alpha-beta start (finite differences)."""
    times = np.array([r["time"] / 1000.0 for r in rows])
    return gauss_newton(times, lambda a, s: model_ms(rows, a, s, build), alpha, slope, rounds)


def grid_start(times: np.ndarray, model, a_grid, b_grid) -> tuple[float, float]:
    """The (a, b) of a coarse grid with the smallest relative error: a start from which
    Gauss-Newton sees the parameter's effect (a bandwidth that does not bind has none)."""
    def err(a, b):
        return float(np.sum(((model(a, b) - times) / times) ** 2))
    return min(((a, b) for a in a_grid for b in b_grid), key=lambda ab: err(*ab))


def gauss_newton(times: np.ndarray, model, a: float, b: float, rounds: int = 8):
    """Two non-negative parameters (a, b) of `model(a, b) -> times` fitted on relative
    residuals; the model is piecewise linear in both (NCCL's pick changes between pieces)."""
    for _ in range(rounds):
        base = model(a, b)
        da, db = max(a * 1e-3, 1e-6), max(b * 1e-3, 1e-12)
        ja = (model(a + da, b) - base) / da / times
        jb = (model(a, b + db) - base) / db / times if b > 0 else 0 * ja
        step = np.linalg.lstsq(np.column_stack([ja, jb]), (times - base) / times, rcond=None)[0]
        a, b = max(0.0, a + step[0]), max(0.0, b + step[1])
        if abs(step[0]) <= 1e-9 * max(a, 1e-9) and abs(step[1]) <= 1e-9 * max(b, 1e-18):
            break
    return a, b


def fit_link(rows: list[dict], build=flat_scope) -> dict:
    points = points_of(rows)
    alpha, slope = refine(rows, *solve(points), build)
    model = model_ms(rows, alpha, slope, build)
    times = np.array([r["time"] / 1000.0 for r in rows])
    if slope > 0 and np.all(model - model_ms(rows, alpha, 0.0, build) < UNSEEN * times):
        slope = 0.0  # the bandwidth term never showed: no limit seen
    return {"latency_ms": alpha,
            "bandwidth_gbps": MS_PER_BYTE_AT_1GBPS / slope if slope > 0 else None,
            "points": len(points), "op": rows[0]["op"], "scope": rows[0]["scope"],
            "min_bytes": min(r["size"] for r in rows), "max_bytes": max(r["size"] for r in rows),
            "model": "bench.costs.links (NCCL tuner model)",
            "rms_relative_error": float(np.sqrt(np.mean(((model - times) / times) ** 2)))}


def fit_rows(rows: list[dict], build=flat_scope) -> dict:
    """{link kind: fit} for the kinds whose scope was measured with two sizes or more."""
    fits = {}
    for kind, scope in SOURCES.items():
        mine = [r for r in rows if r["scope"] == scope and r["time"] > 0]
        ops = [op for op in PREFERRED_OPS if sum(r["op"] == op for r in mine) >= 2]
        if ops:
            fits[kind] = fit_link([r for r in mine if r["op"] == ops[0]], build)
    return fits


def load_links(path) -> tuple[Link, Link]:
    """The (intra_site, inter_site) links fitted in a collectives.json (jitter 0)."""
    from bench.errors import ConfigError
    from bench.results.files import read_json

    doc = read_json(Path(path))
    fits = doc.get("fit") or {}
    links = []
    for kind, scope in SOURCES.items():
        fit = fits.get(kind)
        if fit is None:
            raise ConfigError("links", str(path), f"it has no {kind} fit: run `hetbench "
                              f"collectives` with the {scope} scope (and sendrecv or all_reduce) "
                              "on a cluster with two sites of two ranks or more")
        links.append(Link(float(fit["latency_ms"]), fit["bandwidth_gbps"] and
                          float(fit["bandwidth_gbps"]), 0.0))
    return links[0], links[1]
