"""The one collective cost model: what a collective of n bytes costs on the configured topology.
The emulator's delay injection, the predictor, the strategies' routes and `hetbench collectives`
all charge through this module; the time of one collective is NCCL's tuner model over the
ranks' nodes, NICs and uplinks (bench.costs.nccl over bench.costs.topology), in device ms.

Routes (how a strategy's exchange travels; bench.strategies picks one per collective):
  ring          one NCCL all-reduce over every rank (DDP). Despite the name, NCCL's tuner picks
                the algorithm (ring, tree, NVLS) and protocol per size; network.nccl.algo/proto
                force them, as NCCL_ALGO / NCCL_PROTO do.
  site          an all-reduce within each site only, side by side; the slowest site sets the
                time (local SGD and DiLoCo inner steps)
  hierarchical  an all-reduce within each site, an all-reduce among the S site leaders over the
                uplinks, a broadcast within each site:  max_site(AR) + AR(leaders) + max_site(BC)

A collective that needs `rounds` dependent all-reduces (PowerSGD: the uncompressed tensors, then
P, then Q) pays the latency once per round (NCCL's latency * count). Jitter: each bucket's
exchange gets an extra delay drawn uniformly from [0, 2 * jitter_ms] of the jitteriest tier the
route crosses, from an RNG seeded by (seed, step, bucket), so every rank draws the same value.

`collective_terms` is the alpha-beta form of one link (t = hops * alpha + factor * n / beta) that a
fit of measured (bytes, time) points on one link inverts (bench.collectives.fit).
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from bench.costs import nccl
from bench.costs.topology import IDEAL, Link, Topology, flat, link_of  # noqa: F401 (re-exported)

ROUTES = ("ring", "site", "hierarchical")
COLLECTIVES = nccl.OPS
OUTER_BUCKET = 1_000_000  # the jitter seed's bucket index of an outer sync: no bucket has it


def collective(op: str, topo: Topology, nbytes: float, rounds: int = 1,
               algo: Optional[str] = None, proto: Optional[str] = None) -> nccl.Choice:
    """NCCL's choice and time (us) for one collective over every rank of `topo`."""
    return nccl.choose(op, topo.comm(), nbytes, algo, proto, rounds)


def collective_ms(op: str, topo: Topology, nbytes: float, rounds: int = 1,
                  algo: Optional[str] = None, proto: Optional[str] = None) -> float:
    return collective(op, topo, nbytes, rounds, algo, proto).time_us / 1000.0


def collective_terms(op: str, ranks: int) -> tuple[float, float]:
    """(hops, factor): on one link, t = hops * alpha + factor * n / beta (nccl-tests' bus factor)."""
    if ranks < 2:
        return 0.0, 0.0
    return {"all_reduce": (2.0 * (ranks - 1), 2.0 * (ranks - 1) / ranks),
            "all_gather": (ranks - 1.0, (ranks - 1.0) / ranks),
            "reduce_scatter": (ranks - 1.0, (ranks - 1.0) / ranks),
            "broadcast": (1.0, 1.0),  # NCCL: a pipelined chain exposes one hop's latency
            "sendrecv": (1.0, 1.0)}[op]


def inter_site_bytes(route: str, nbytes: float, sites: list[str]) -> float:
    """Bytes one crossing of the uplink carries for an all-reduce of n bytes (per direction): a
    ring over W ranks sends 2(W-1)/W * n through every edge it crosses; the leaders' ring of the
    hierarchical route 2(S-1)/S * n; a site-local exchange nothing."""
    n_sites, world = len(set(sites)), len(sites)
    if n_sites < 2 or route == "site":
        return 0.0
    ranks = n_sites if route == "hierarchical" else world
    return 2 * (ranks - 1) / ranks * nbytes


class LinkModel:
    """Route times over one topology (the comms of every scope are condensed once)."""

    def __init__(self, topo: Topology, seed: int, algo: Optional[str] = None,
                 proto: Optional[str] = None):
        self.topo, self.seed = topo, seed
        self.algo, self.proto = algo, proto
        self.world_size = topo.world_size
        self._world = topo.comm()
        self._sites = [t.comm() for t in topo.by_site().values()]
        self._leaders = topo.leaders().comm()
        self._site_tiers = [topo.nic] if any(len(t.nodes) > 1 for t in topo.by_site().values()) else []
        self._tiers = topo.tiers()  # asked per bucket (jitter): condensed once
        self._route_ms: dict = {}
        self._jitter: dict = {}

    @classmethod
    def flat(cls, sites: list[str], intra: Link, inter: Link, seed: int = 0) -> "LinkModel":
        """One GPU per node, in this order (the emulated laptop's usual picture)."""
        return cls(flat(sites, intra, inter), seed)

    @property
    def links(self) -> list[Link]:
        return self._tiers

    @property
    def active(self) -> bool:
        return self.route_ms("ring", 1.0) > 0 or any(not link.is_ideal for link in self.links)

    def choice(self, route: str, nbytes: float, op: str = "all_reduce") -> nccl.Choice:
        """NCCL's pick for the route's deciding collective: the world's (ring), the leaders'
        across sites (hierarchical), the largest site's (site)."""
        comm = {"ring": self._world, "hierarchical": self._leaders}.get(
            route, max(self._sites, key=lambda c: c.ranks))
        if comm.ranks < 2:  # one site: the hierarchy is the world's all-reduce
            comm = self._world
        return nccl.choose(op, comm, nbytes, self.algo, self.proto)

    def allreduce_ms(self, nbytes: float) -> float:
        return self.route_ms("ring", nbytes)

    def route_ms(self, route: str, nbytes: float, rounds: int = 1) -> float:
        """Deterministic time of one all-reduce of n bytes along `route` (ROUTES), in ms (kept:
        buckets repeat their sizes, and a search over strategies asks for them again)."""
        key = (route, float(nbytes), rounds)
        if key not in self._route_ms:
            self._route_ms[key] = self._route_time(route, nbytes, rounds)
        return self._route_ms[key]

    def _route_time(self, route: str, nbytes: float, rounds: int) -> float:
        def t(op, comm):
            return nccl.choose(op, comm, nbytes, self.algo, self.proto, rounds).time_us / 1000.0

        site = max((t("all_reduce", c) for c in self._sites), default=0.0)
        if route == "site":
            return site
        if route == "hierarchical" and self._leaders.ranks > 1:
            return site + t("all_reduce", self._leaders) + \
                max((t("broadcast", c) for c in self._sites), default=0.0)
        return t("all_reduce", self._world)

    def route_links(self, route: str) -> list[Link]:
        return self._site_tiers if route == "site" else self.links

    def jitter_ms(self, step: int, bucket: int, route: str = "ring") -> float:
        if route not in self._jitter:  # asked per bucket and step: the route's links are fixed
            self._jitter[route] = max((link.jitter_ms for link in self.route_links(route)),
                                      default=0.0)
        j = self._jitter[route]
        if j == 0:
            return 0.0
        return 2.0 * j * _unit_draw(self.seed, step, bucket)

    def delay_ms(self, step: int, bucket: int, nbytes: float, route: str = "ring",
                 rounds: int = 1) -> float:
        return self.route_ms(route, nbytes, rounds) + self.jitter_ms(step, bucket, route)

    def describe(self) -> dict:
        c = self._world
        graph = nccl.ring_graph(c)
        return {"model": f"NCCL {nccl.NCCL_VERSION} tuner model (bench.costs.nccl)",
                "ranks": c.ranks, "nodes": c.nodes, "generation": c.generation,
                "channels": graph.channels if graph else None,
                "channel_gbs": graph.bw_intra if graph else None, "nic_gbs": c.nic_gbs,
                "uplink_share_gbs": c.uplink_gbs, "nvls": c.nvls,
                "forced_algo": self.algo or "auto", "forced_proto": self.proto or "auto"}


def of_config(cfg, topo: Topology) -> LinkModel:
    """The configured route model (network.nccl.algo / proto: auto lets the tuner pick)."""
    opts = cfg.network.get("nccl") or {}
    algo, proto = opts.get("algo", "auto"), opts.get("proto", "auto")
    return LinkModel(topo, int(cfg.train.seed), None if algo in (None, "auto") else algo,
                     None if proto in (None, "auto") else proto)


@functools.lru_cache(maxsize=65536)
def _unit_draw(seed: int, step: int, bucket: int) -> float:
    """The jitter's uniform draw in [0, 1) for (seed, step, bucket): the emulator's ranks and the
    predictor's timelines draw the same one, and a search over strategies asks for it often
    (uniform(0, 2j) is exactly 2j times this draw)."""
    return float(np.random.default_rng([seed, step, bucket]).uniform(0.0, 1.0))
