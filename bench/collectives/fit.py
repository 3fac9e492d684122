"""Latency (alpha) and bandwidth (beta) of each link kind, fitted to measured times.

Every collective of bench.costs.links is, on one link, t = hops * alpha + factor * n / beta
(`collective_terms`), so a row (op, R, n bytes, time t) is one linear equation in alpha and
1/beta. The fit solves them by least squares on relative residuals ((model - t) / t), so that an
8 B point and a 256 MiB point count alike, with alpha >= 0 and beta > 0 (a bandwidth term that comes out
negative, or under 0.1% of every point's time, means no limit was seen: bandwidth null).

  intra_site  from the site scope (ranks of one site, over the intra-site link)
  inter_site  from the cross scope (one rank per site, over the inter-site link)

using sendrecv where it was measured (one message over the link itself: t = alpha + n/beta),
else all_reduce, else the first op measured. On an emulated run the fit recovers the configured
link wherever the real transfer stayed inside the emulated window; points where this machine's
own transfer was slower than the model pull it towards this machine.

`load_links(collectives.json)` returns the fitted (intra, inter) Link pair, which the predictor
takes in place of the configured network."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.costs.links import Link, collective_terms

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


def fit_link(rows: list[dict]) -> dict:
    points = points_of(rows)
    alpha, slope = solve(points)
    model = np.array([h * alpha + b * slope for h, b, _ in points])
    times = np.array([t for *_, t in points])
    return {"latency_ms": alpha,
            "bandwidth_gbps": MS_PER_BYTE_AT_1GBPS / slope if slope > 0 else None,
            "points": len(points), "op": rows[0]["op"], "scope": rows[0]["scope"],
            "min_bytes": min(r["size"] for r in rows), "max_bytes": max(r["size"] for r in rows),
            "rms_relative_error": float(np.sqrt(np.mean(((model - times) / times) ** 2)))}


def fit_rows(rows: list[dict]) -> dict:
    """{link kind: fit} for the kinds whose scope was measured with two sizes or more."""
    fits = {}
    for kind, scope in SOURCES.items():
        mine = [r for r in rows if r["scope"] == scope and r["time"] > 0]
        ops = [op for op in PREFERRED_OPS if sum(r["op"] == op for r in mine) >= 2]
        if ops:
            fits[kind] = fit_link([r for r in mine if r["op"] == ops[0]])
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
