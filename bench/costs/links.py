"""Link cost model (alpha-beta), pure: the emulator's delay injection uses it, and so will the
predictor and the collective benchmark.

Ring all-reduce as Gloo and NCCL's ring use it: W ranks in rank order, n bytes. The ring takes
2(W-1) steps (reduce-scatter, then all-gather), each sending n/W bytes to the next rank. A rank
starts a step as soon as its left neighbour's chunk has arrived (a data dependency, not a
barrier), so the latencies add up along the chain of hops a chunk takes, 2(W-1) hops around the
ring, and every hop's own link counts: intra-site hops pay the intra-site alpha, the S hops where
the ring passes from one site to the next pay the inter-site alpha. The bandwidth term is set by
the slowest link, which must carry all 2(W-1) chunks one after another:

    t(n) = 2(W-1) * ( mean_hops(alpha) + (n/W) / min_links(beta) )

mean_hops(alpha) = sum over the ring's W hops of their link's alpha / W. alpha = latency_ms,
beta = bandwidth (Gbit/s -> bytes/ms; null = unlimited). A collective that needs `rounds`
dependent all-reduces (PowerSGD: the uncompressed tensors, then P, then Q) pays the latency term
once per round: 2(W-1) * (rounds * mean_hops(alpha) + (n/W) / min_links(beta)).

Routes (how a strategy's exchange travels; bench.strategies picks one per collective):
  ring          one ring over every rank (DDP)
  site          a ring within each site only; the sites run theirs side by side, the largest
                site sets the time (local SGD and DiLoCo inner steps)
  hierarchical  a ring all-reduce within each site (reduce to the leader), a ring all-reduce among
                the S site leaders over the inter-site link, a pipelined broadcast within the site:
                  site(n) + 2(S-1) * (alpha_inter + (n/S) / beta_inter) + (s-1) * alpha_intra + n / beta_intra
                (s = largest site). The inter-site link carries 2(S-1)/S * n per leader, not
                2(W-1)/W * n. Jitter: each bucket's all-reduce gets an extra delay drawn uniformly from
[0, 2 * jitter_ms] (mean jitter_ms) of the slowest jittery link, from an RNG seeded by
(seed, step, bucket) so every rank draws the same value. All in the emulated cluster's (device)
milliseconds.

Collectives of the micro-benchmark (bench.collectives): R ranks in a ring whose hops are `hops`
(as ring_ms takes them), n bytes as nccl-tests counts them (the whole gathered or scattered
buffer for all-gather and reduce-scatter):
  all-reduce      2(R-1) * (mean_hops(alpha) + (n/R) / min_links(beta))   ring_ms
  all-gather      (R-1) * (mean_hops(alpha) + (n/R) / min_links(beta))    one pass of that ring
  reduce-scatter  (R-1) * (mean_hops(alpha) + (n/R) / min_links(beta))    one pass of that ring
  broadcast       (R-1) * mean_hops(alpha) + n / min_links(beta)          a pipelined chain
                                                                          (broadcast_ms on one link)
  send/recv       max_links(alpha + n/beta)          every rank to the next, side by side
On one link each is hops * alpha + factor * n / beta, where `factor` is nccl-tests' bus-bandwidth
factor; `collective_terms` gives (hops, factor), which is what a fit of measured times inverts.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Link:
    latency_ms: float
    bandwidth_gbps: Optional[float]
    jitter_ms: float

    def step_ms(self, chunk_bytes: float) -> float:
        """One ring step over this link: alpha + chunk / beta."""
        transfer = 0.0 if not self.bandwidth_gbps else chunk_bytes * 8 / (self.bandwidth_gbps * 1e6)
        return self.latency_ms + transfer

    @property
    def is_ideal(self) -> bool:
        return self.latency_ms == 0 and not self.bandwidth_gbps and self.jitter_ms == 0


def link_of(spec) -> Link:
    """A `network.intra_site` / `network.inter_site` config node as a Link."""
    return Link(float(spec.latency_ms), spec.bandwidth_gbps and float(spec.bandwidth_gbps),
                float(spec.jitter_ms))


def links_in_ring(sites: list[str], intra: Link, inter: Link) -> list[Link]:
    """The kinds of link a ring over these ranks crosses."""
    return [link for link, _ in ring_hops(sites, intra, inter)]


def ring_hops(sites: list[str], intra: Link, inter: Link) -> list[tuple[Link, int]]:
    """(link, hops) for each kind of link the ring over these ranks (in rank order, closing
    back to the first) crosses: a hop between two sites is inter-site, any other intra-site."""
    if len(sites) < 2:
        return []
    crossings = sum(a != b for a, b in zip(sites, sites[1:] + sites[:1]))
    hops = [(intra, len(sites) - crossings), (inter, crossings)]
    return [(link, n) for link, n in hops if n > 0]


ROUTES = ("ring", "site", "hierarchical")
OUTER_BUCKET = 1_000_000  # the jitter seed's bucket index of an outer sync: no bucket has it


def ring_ms(ranks: int, hops: list, nbytes: float, rounds: int = 1) -> float:
    """Ring all-reduce of n bytes over `ranks` ranks; `hops`: (link, number of the ring's hops
    over it) pairs (ring_hops). A bare list of Links means a ring whose every hop is each link,
    i.e. one kind of link (several kinds need their hop counts)."""
    if ranks < 2 or not hops:
        return 0.0
    pairs = [h if isinstance(h, tuple) else (h, None) for h in hops]
    if any(n is None for _, n in pairs):
        if len(pairs) > 1:
            raise ValueError("a ring over several kinds of link needs each one's hop count (ring_hops)")
        pairs = [(pairs[0][0], ranks)]
    total = sum(n for _, n in pairs)
    alpha = sum(link.latency_ms * n for link, n in pairs) / total
    transfer = max(link.step_ms(nbytes / ranks) - link.latency_ms for link, _ in pairs)
    return 2 * (ranks - 1) * (rounds * alpha + transfer)


def broadcast_ms(ranks: int, link: Link, nbytes: float) -> float:
    """Pipelined chain broadcast: (ranks-1) hops of latency, the bytes once through the link."""
    if ranks < 2:
        return 0.0
    return (ranks - 2) * link.latency_ms + link.step_ms(nbytes)


def allgather_ms(ranks: int, hops: list, nbytes: float) -> float:
    """Ring all-gather of n bytes in all (n/R from each rank): one pass of the all-reduce's ring
    (R-1 steps of n/R instead of 2(R-1)). `hops` as ring_ms takes them."""
    return ring_ms(ranks, hops, nbytes) / 2


def reduce_scatter_ms(ranks: int, hops: list, nbytes: float) -> float:
    """Ring reduce-scatter of an n-byte buffer (n/R left on each rank): the all-gather's ring,
    each step reducing the chunk it receives."""
    return allgather_ms(ranks, hops, nbytes)


def chain_broadcast_ms(ranks: int, hops: list, nbytes: float) -> float:
    """broadcast_ms along the ring's chain: R-1 hops of latency (the ring's mean hop), the
    bytes once through the slowest link."""
    if ranks < 2 or not hops:
        return 0.0
    latency = ring_ms(ranks, hops, 0.0) / 2  # (R-1) * mean_hops(alpha)
    return latency + max(link.step_ms(nbytes) - link.latency_ms for link in _kinds(hops))


def sendrecv_ms(ranks: int, hops: list, nbytes: float) -> float:
    """Every rank sends n bytes to the next and receives n from the previous, all at once: one
    message per hop, the slowest link sets the time."""
    if ranks < 2:
        return 0.0
    return max((link.step_ms(nbytes) for link in _kinds(hops)), default=0.0)


def _kinds(hops: list) -> list[Link]:
    """The links of ring_ms-style hops ((link, count) pairs or bare Links)."""
    return [h[0] if isinstance(h, tuple) else h for h in hops]


COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "sendrecv")


def collective_ms(op: str, ranks: int, hops: list, nbytes: float) -> float:
    """The alpha-beta time of one collective (COLLECTIVES) of n bytes over R ranks in a ring
    whose hops are `hops` (ring_hops; a bare list of one Link for one kind of link)."""
    if op == "all_reduce":
        return ring_ms(ranks, hops, nbytes)
    formula = {"all_gather": allgather_ms, "reduce_scatter": reduce_scatter_ms,
               "broadcast": chain_broadcast_ms, "sendrecv": sendrecv_ms}[op]
    return formula(ranks, hops, nbytes)


def collective_terms(op: str, ranks: int) -> tuple[float, float]:
    """(hops, factor) with collective_ms(op, R, [link], n) = hops * alpha + factor * n / beta:
    the linear form a least-squares fit of (bytes, time) points inverts."""
    if ranks < 2:
        return 0.0, 0.0
    return {"all_reduce": (2.0 * (ranks - 1), 2.0 * (ranks - 1) / ranks),
            "all_gather": (ranks - 1.0, (ranks - 1.0) / ranks),
            "reduce_scatter": (ranks - 1.0, (ranks - 1.0) / ranks),
            "broadcast": (ranks - 1.0, 1.0),
            "sendrecv": (1.0, 1.0)}[op]


def inter_site_bytes(route: str, nbytes: float, sites: list[str]) -> float:
    """Bytes one crossing of the inter-site link carries for an all-reduce of n bytes (per
    direction): a ring over W ranks sends 2(W-1)/W * n through every link it crosses; the
    leaders' ring of the hierarchical route 2(S-1)/S * n; a site-local ring nothing."""
    n_sites, world = len(set(sites)), len(sites)
    if n_sites < 2 or route == "site":
        return 0.0
    ranks = n_sites if route == "hierarchical" else world
    return 2 * (ranks - 1) / ranks * nbytes


class LinkModel:
    def __init__(self, sites: list[str], intra: Link, inter: Link, seed: int):
        self.world_size = len(sites)
        self.intra, self.inter = intra, inter
        self.hops = ring_hops(sites, intra, inter)
        self.links = [link for link, _ in self.hops]
        self.seed = seed
        self._largest_site = max(Counter(sites).values()) if sites else 0
        self._n_sites = len(set(sites))

    @property
    def active(self) -> bool:
        return any(not link.is_ideal for link in self.links)

    def allreduce_ms(self, nbytes: int) -> float:
        """Deterministic part: 2(W-1) * (mean_hops(alpha) + (n/W) / min_links(beta))."""
        return ring_ms(self.world_size, self.hops, nbytes)

    def route_ms(self, route: str, nbytes: float, rounds: int = 1) -> float:
        """Deterministic time of one all-reduce of n bytes along `route` (ROUTES)."""
        site_links = [self.intra] if self._largest_site > 1 else []
        site = ring_ms(self._largest_site, site_links, nbytes, rounds)
        if route == "site":
            return site
        if route == "hierarchical" and self._n_sites < 2:
            route = "ring"  # one site: the hierarchy is one plain all-reduce (SiteGroups)
        if route == "hierarchical":
            leaders = ring_ms(self._n_sites, [self.inter] if self._n_sites > 1 else [], nbytes, rounds)
            return site + leaders + broadcast_ms(self._largest_site, self.intra, nbytes)
        return ring_ms(self.world_size, self.hops, nbytes, rounds)

    def route_links(self, route: str) -> list[Link]:
        if route == "site":
            return [self.intra] if self._largest_site > 1 else []
        return self.links

    def jitter_ms(self, step: int, bucket: int, route: str = "ring") -> float:
        j = max((link.jitter_ms for link in self.route_links(route)), default=0.0)
        if j == 0:
            return 0.0
        return float(np.random.default_rng([self.seed, step, bucket]).uniform(0.0, 2.0 * j))

    def delay_ms(self, step: int, bucket: int, nbytes: float, route: str = "ring",
                 rounds: int = 1) -> float:
        return self.route_ms(route, nbytes, rounds) + self.jitter_ms(step, bucket, route)
