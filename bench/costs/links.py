"""Link cost model (alpha-beta), pure: the emulator's delay injection uses it, and so will the
predictor and the collective benchmark.

Ring all-reduce as Gloo and NCCL's ring use it: W ranks, n bytes. The ring takes 2(W-1) steps
(reduce-scatter, then all-gather), each sending n/W bytes to the next rank, all ranks in
lock-step, so every step lasts as long as the slowest link in the ring:

    t(n) = 2(W-1) * max_links( alpha + (n/W) / beta )

alpha = latency_ms, beta = bandwidth (Gbit/s -> bytes/ms; null = unlimited). The ring crosses
the inter-site link whenever there are two sites, and intra-site links whenever a site has two
ranks. Jitter: each bucket's all-reduce gets an extra delay drawn uniformly from
[0, 2 * jitter_ms] (mean jitter_ms) of the slowest jittery link, from an RNG seeded by
(seed, step, bucket) so every rank draws the same value. All in the emulated cluster's (device)
milliseconds.
"""
from __future__ import annotations

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


class LinkModel:
    def __init__(self, sites: list[str], intra: Link, inter: Link, seed: int):
        self.world_size = len(sites)
        self.links = links_in_ring(sites, intra, inter)
        self.seed = seed

    @property
    def active(self) -> bool:
        return any(not link.is_ideal for link in self.links)

    def allreduce_ms(self, nbytes: int) -> float:
        """Deterministic part: 2(W-1) * max_links(alpha + (n/W)/beta)."""
        w = self.world_size
        if w < 2 or not self.links:
            return 0.0
        return 2 * (w - 1) * max(link.step_ms(nbytes / w) for link in self.links)

    def jitter_ms(self, step: int, bucket: int) -> float:
        j = max((link.jitter_ms for link in self.links), default=0.0)
        if j == 0:
            return 0.0
        return float(np.random.default_rng([self.seed, step, bucket]).uniform(0.0, 2.0 * j))

    def delay_ms(self, step: int, bucket: int, nbytes: int) -> float:
        return self.allreduce_ms(nbytes) + self.jitter_ms(step, bucket)
