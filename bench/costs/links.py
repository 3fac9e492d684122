"""Link cost model (alpha-beta), pure: the emulator's delay injection uses it, and so will the
predictor and the collective benchmark.

Ring all-reduce as Gloo and NCCL's ring use it: W ranks, n bytes. The ring takes 2(W-1) steps
(reduce-scatter, then all-gather), each sending n/W bytes to the next rank, all ranks in
lock-step, so every step lasts as long as the slowest link in the ring:

    t(n) = 2(W-1) * max_links( alpha + (n/W) / beta )

alpha = latency_ms, beta = bandwidth (Gbit/s -> bytes/ms; null = unlimited). The ring crosses
the inter-site link whenever there are two sites, and intra-site links whenever a site has two
ranks. A collective that needs `rounds` dependent all-reduces (PowerSGD: the uncompressed
tensors, then P, then Q) pays the latency term once per round:
2(W-1) * max_links(rounds * alpha + (n/W) / beta).

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


def links_in_ring(sites: list[str], intra: Link, inter: Link) -> list[Link]:
    """The kinds of link a ring over these ranks crosses."""
    counts = {s: sites.count(s) for s in set(sites)}
    used = []
    if any(c > 1 for c in counts.values()):
        used.append(intra)
    if len(counts) > 1:
        used.append(inter)
    return used


ROUTES = ("ring", "site", "hierarchical")


def ring_ms(ranks: int, links: list[Link], nbytes: float, rounds: int = 1) -> float:
    """Ring all-reduce of n bytes over `ranks` ranks whose ring crosses `links`."""
    if ranks < 2 or not links:
        return 0.0
    return 2 * (ranks - 1) * max((rounds - 1) * link.latency_ms + link.step_ms(nbytes / ranks)
                                 for link in links)


def broadcast_ms(ranks: int, link: Link, nbytes: float) -> float:
    """Pipelined chain broadcast: (ranks-1) hops of latency, the bytes once through the link."""
    if ranks < 2:
        return 0.0
    return (ranks - 2) * link.latency_ms + link.step_ms(nbytes)


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
        self.links = links_in_ring(sites, intra, inter)
        self.seed = seed
        self._largest_site = max(Counter(sites).values()) if sites else 0
        self._n_sites = len(set(sites))

    @property
    def active(self) -> bool:
        return any(not link.is_ideal for link in self.links)

    def allreduce_ms(self, nbytes: int) -> float:
        """Deterministic part: 2(W-1) * max_links(alpha + (n/W)/beta)."""
        return ring_ms(self.world_size, self.links, nbytes)

    def route_ms(self, route: str, nbytes: float, rounds: int = 1) -> float:
        """Deterministic time of one all-reduce of n bytes along `route` (ROUTES)."""
        site_links = [self.intra] if self._largest_site > 1 else []
        site = ring_ms(self._largest_site, site_links, nbytes, rounds)
        if route == "site":
            return site
        if route == "hierarchical":
            leaders = ring_ms(self._n_sites, [self.inter] if self._n_sites > 1 else [], nbytes, rounds)
            return site + leaders + broadcast_ms(self._largest_site, self.intra, nbytes)
        return ring_ms(self.world_size, self.links, nbytes, rounds)

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
