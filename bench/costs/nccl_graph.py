"""The channels NCCL's graph search finds (NCCL 2.30.7 src/graph/search.cc), condensed: what
tuning.cc multiplies by (`graphs[a]->nChannels`, `bwIntra`, `bwInter`).

Ring and tree graphs: inside one node, the highest speed of the generation's speedArrayIntra at
which one channel fits in the GPU's NVLink (or PCI) bandwidth, with as many channels as fit;
across nodes, a channel per NIC at the NIC's rate, or the node fabric's share if lower. (NCCL
rounds that rate down to a speedArrayInter step, e.g. 50 -> 45 GB/s for 400 Gb/s NICs on Hopper;
hetbench keeps the NIC's own rate, so that a fit of a NIC's bandwidth sees the time move.) Then ncclTopoDupChannels doubles the channels at half the speed
when the speed is >= 25 GB/s (not on compute capability > 8.0 below 50 GB/s with > 4 channels).
E.g. 8 x H100: 6 x 60 -> 12 x 30 GB/s; 8 x A100: 6 x 40 -> 12 x 20; H100 nodes with one
400 Gb/s NIC per GPU: 8 x 46.35 (NCCL: 8 x 45).

NVLS graph: a channel per local GPU (at most NCCL_MAX_NVLS_ARITY); bwIntra the highest speed with
(channels + 1) x speed within the GPU's NVLink bandwidth; bwInter, on one node, raised in the
search's pass 2 up the speed array while below 2 x bwIntra; across nodes, the NIC's rate.
E.g. 8 x H100: 8 channels, bwIntra 40, bwInter 60.

Not searched: the real system's PCI tree, NUMA and NIC placement (a node is one fabric here)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from bench.costs.nccl_tables import (
    MAX_GRAPH_CHANNELS,
    MAX_NVLS_ARITY,
    SPEED_INTER,
    SPEED_INTRA,
)


@dataclass(frozen=True)
class Graph:
    channels: int
    bw_intra: float  # GB/s per channel
    bw_inter: float


def _first(speeds, fits) -> float:
    """The highest speed that fits, else the lowest (the search always ends with one)."""
    return next((s for s in speeds if fits(s)), speeds[-1])


def _dup(channels: int, bw: float, cc_min: int) -> tuple[int, float]:
    """ncclTopoDupChannels."""
    if bw < 25.0 or (cc_min > 80 and bw < 50.0 and channels > 4):
        return channels, bw
    dup = min(channels * 2, MAX_GRAPH_CHANNELS)
    return dup, bw / math.ceil(dup / channels)


def ring(generation: str, cc_min: int, intra_gbs: Optional[float], nodes: int, nics: int,
         nic_gbs: Optional[float], measured_gbs: Optional[float] = None) -> Optional[Graph]:
    """The ring/tree graph; None where nothing limits it (ideal NICs, no shared node).
    measured_gbs: a calibration's fitted bus bandwidth inside a node, which replaces the
    search's channels x speed (keeping its channel count)."""
    if nodes > 1 and nic_gbs is not None:  # the NIC's own rate, not quantized (see above)
        channels = max(1, nics)
        speed = nic_gbs if intra_gbs is None else min(nic_gbs, intra_gbs / channels)
    elif intra_gbs is not None:
        speed = _first(SPEED_INTRA[generation], lambda s: s <= intra_gbs)
        channels = max(1, min(int(intra_gbs // speed), MAX_GRAPH_CHANNELS))
    else:
        return None
    channels, speed = _dup(channels, speed, cc_min)
    if measured_gbs is not None and not (nodes > 1 and nic_gbs is not None):
        speed = measured_gbs / channels
    return Graph(channels, speed, speed)


def nvls(generation: str, intra_gbs: float, local_ranks: int, nodes: int, nics: int,
         nic_gbs: Optional[float]) -> Graph:
    channels = min(local_ranks, MAX_NVLS_ARITY)
    if nodes > 1:
        channels = min(channels, max(1, nics))
    speeds = SPEED_INTRA[generation]
    bw_intra = _first(speeds, lambda s: (channels + 1) * s <= intra_gbs)
    if nodes > 1:
        bw_inter = SPEED_INTER[generation][0] if nic_gbs is None else nic_gbs
    else:  # pass 2: up the array while below 2 x bwIntra
        i = speeds.index(bw_intra)
        while i > 0 and speeds[i] < 2 * bw_intra:
            i -= 1
        bw_inter = speeds[i]
    return Graph(channels, bw_intra, bw_inter)
