"""NCCL's own cost model of a collective, as its default tuner computes it (NCCL 2.30.7,
src/graph/tuning.cc: ncclTopoTuneModel and ncclTopoGetAlgoTime), with one extension: the
sites' uplinks (bench.costs.topology), which NCCL cannot see.

For each (collective, algorithm, protocol) NCCL holds a latency (us) and a bus bandwidth (GB/s),
and charges `time = latency * count + bytes / (1000 * bandwidth)`; its default tuner runs the
cheapest enabled pair. The latency structure, per algorithm (nsteps = 2(ranks-1) for all-reduce,
ranks-1 for all-gather and reduce-scatter, ranks for broadcast):
  ring   base + (nsteps - nInter) * intraLat + nInter * interLat, nInter = 2(nodes-1) for
         all-reduce, nodes-1 otherwise (broadcast: base + one hop, its channels pipelined)
  tree   base + 2 * ((ranks/nodes - 1) * intraLat + log2(nodes) * interLat)   (all-reduce only)
  nvls   intraLat (+ interLat across nodes)                                    (Hopper and later)
  nvls_tree  base + intraLat + 2 * log2(nodes) * interLat                     (multi-node NVLS)
and the bandwidth: channels * per-channel graph bandwidth, cut per protocol (LL: half, capped at
llMaxBw; LL128: 0.92 of it, capped per channel) and converted to algorithm bandwidth (ring and
NVLS: ranks / nsteps; tree: 0.5). All constants below are tuning.cc's, unchanged.

The uplink extension: a ring or tree whose inter-node hops cross between sites pays the uplink's
latency on those hops (the ring's share of its inter-node hops that are crossings; the tree's
log2(sites) levels) and its bandwidth is capped by the uplink shared among every flow crossing
it at once (Comm.inter_gbs is the per-rank figure after that share: bench.costs.topology).

Left out (docs/network.md): CollNet/SHARP, PAT (1 GPU per node only), per-size channel and
thread reduction (enqueue.cc; it matters below ~1 MB), adaptive routing, congestion beyond the
shared uplinks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

NCCL_VERSION = "2.30.7"
OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "sendrecv")
ALGOS = ("tree", "ring", "nvls", "nvls_tree")
PROTOS = ("LL", "LL128", "Simple")
GENERATIONS = ("volta", "ampere", "hopper", "blackwell")  # tuning.cc's compCap index

# tuning.cc ncclTunerConstantsDefaults.baseLatencies, us, per protocol (LL, LL128, Simple).
BASE_LAT = {"tree": (6.8, 14.0, 8.4), "ring": (6.6, 14.0, 8.4), "nvls": (0, 0, 0),
            "nvls_tree": (0, 0, 0)}
# ...hwLatencies: per hardware path (NVLink, PCI, network), algorithm and protocol, us.
HW_LAT = {
    "nvlink": {"tree": (0.6, 1.25, 4.0), "ring": (0.6, 1.9, 3.4), "nvls": (0, 0, 25),
               "nvls_tree": (0, 0, 25)},
    "pci": {"tree": (1.0, 1.9, 4.0), "ring": (1.0, 2.5, 5.7), "nvls": (0, 0, 0),
            "nvls_tree": (0, 0, 0)},
    "net": {"tree": (5.0, 8.5, 14), "ring": (2.7, 4.0, 14.0), "nvls": (0, 0, 18),
            "nvls_tree": (0, 0, 20.9)},
}
# ...llMaxBws [compCap for one node | Intel CPU across nodes][nodes 1, 2, >2], GB/s.
LL_MAX_BW = {"volta": (39.0, 39.0, 20.4), "ampere": (87.7, 22.5, 19.0),
             "hopper": (141.0, 45.0, 35.0), "blackwell": (282.0, 90.0, 70.0)}
LL_MAX_BW_NET = (39.0, 39.0, 20.4)  # multi-node: indexed by CPU (Intel row), not by GPU
PER_CH_RING_LL128 = {"volta": (20.0,) * 3, "ampere": (20.0,) * 3, "hopper": (36.7,) * 3,
                     "blackwell": (40.0,) * 3}
PER_CH_TREE_LL128 = {"volta": (20.0,) * 3, "ampere": (20.0,) * 3, "hopper": (36.7, 36.7, 29.0),
                     "blackwell": (55.6, 31.67, 20.0)}
PER_CH_TREE = {"volta": (26.5, 18.5, 10.0), "ampere": (24.0, 23.6, 17.8),
               "hopper": (38.7, 41.4, 36.0), "blackwell": (70.0, 42.8, 24.0)}
PER_CH_NVLS_TREE = {"volta": (26.5, 18.5, 10.0), "ampere": (24.0, 23.6, 17.8),
                    "hopper": (0.0, 57.7, 45.5), "blackwell": (0.0, 96.0, 80.0)}
NVLS_EFFICIENCY = {"volta": 0.0, "ampere": 0.0, "hopper": 0.85, "blackwell": 0.74}
NET_OVERHEAD_US = 1.0  # getNetOverhead: x86 Intel (AMD: 2.0); x3 for Simple
# ncclTopoGetAlgoTime: tree all-reduce bandwidth correction by log2(bytes / 64), per protocol.
TREE_CORRECTION = (
    (1.0, 1.0, 1.0, 1.0, .9, .8, .7, .7, .7, .7, .6, .5, .4, .4, .5, .6, .7, .8, .9, 1.0, 1.0, 1.0, 1.0, 1.0),
    (1.0, 1.0, 1.0, 1.0, 1.0, .9, .8, .8, .8, .7, .6, .6, .6, .6, .6, .6, .8, .9, .9, .9, .9, 1.0, 1.0, 1.0),
    (.9, .9, .9, .9, .9, .9, .9, .8, .7, .6, .6, .5, .5, .5, .5, .6, .7, .8, .7, .7, .8, .9, .9, .9),
)
RING_PLATEAU = {"pre_ampere": 1.9, "ampere_on": 1.4}  # multi-node ring Simple all-reduce latency


@dataclass(frozen=True)
class Comm:
    """What NCCL's tuner knows of a communicator, and the uplinks it does not.

    intra_gbs / inter_gbs: per-rank bus bandwidth of the node's fabric and of the way out of the
    node (channels x per-channel graph bandwidth, GB/s; None: unlimited); net_lat_us: the
    network's own per-message latency (NCCL's graph latencyInter); crossing_share: the share of
    the inter-node hops that cross between sites, site_levels: log2 of the sites a tree spans,
    uplink_lat_us: what one crossing adds."""
    ranks: int
    nodes: int
    generation: str = "hopper"
    intra_hw: str = "nvlink"  # nvlink | pci
    intra_gbs: Optional[float] = 370.8
    inter_gbs: Optional[float] = None
    channels: int = 32
    nvls: bool = False
    same_generation: bool = True
    net_lat_us: float = 0.0
    intra_extra_us: float = 0.0  # a calibration's correction to the intra-node hop latency
    crossing_share: float = 0.0
    site_levels: int = 0
    uplink_lat_us: float = 0.0
    net_ideal: bool = False  # the NICs are left out (network=rack): no NET latency or overhead

    @property
    def ideal(self) -> bool:
        """Nothing to charge: no shared node, ideal NICs, no uplink."""
        return (self.intra_gbs is None and self.net_ideal and self.inter_gbs is None
                and self.uplink_lat_us == 0)

    @property
    def ppn(self) -> float:
        return self.ranks / self.nodes


@dataclass(frozen=True)
class Choice:
    time_us: float
    algo: str
    proto: str


def _log2i(n: float) -> int:
    return int(math.floor(math.log2(n))) if n >= 1 else -1


def nsteps(op: str, ranks: int) -> int:
    return {"all_reduce": 2 * (ranks - 1), "all_gather": ranks - 1,
            "reduce_scatter": ranks - 1}.get(op, ranks)


def supports(op: str, algo: str, proto: str, c: Comm) -> bool:
    """Which (algorithm, protocol) NCCL's default tuner may run for this op and communicator."""
    if op in ("broadcast", "sendrecv") and algo != "ring":
        return False
    if op in ("all_gather", "reduce_scatter") and algo not in ("ring", "nvls"):
        return False
    if algo.startswith("nvls") and (proto != "Simple" or not c.nvls or c.channels < 2):
        return False
    if algo == "nvls" and c.nodes > 1:  # NVLS across nodes needs CollNet (SHARP): not built
        return False
    if algo == "nvls" and op in ("all_gather", "reduce_scatter") and c.nodes > 1:
        return False
    if algo == "nvls_tree" and c.nodes == 1:
        return False
    if proto == "LL128":  # off on PCIe paths and on mixed generations before Hopper
        oldest = GENERATIONS.index(c.generation)
        if c.intra_hw != "nvlink" or not (c.same_generation or oldest >= GENERATIONS.index("hopper")):
            return False
    return True


def _graph_bw(c: Comm) -> Optional[float]:
    """Per-rank graph bandwidth (all channels): the node's, and across nodes the way out's."""
    if c.nodes == 1 or c.inter_gbs is None:
        return c.intra_gbs
    return c.inter_gbs if c.intra_gbs is None else min(c.intra_gbs, c.inter_gbs)


def bandwidth(op: str, algo: str, proto: str, c: Comm) -> Optional[float]:
    """Algorithm bandwidth in GB/s (bytes / us / 1000); None: unlimited (an ideal fabric)."""
    graph = _graph_bw(c)
    if graph is None:
        return None
    n2, gen, ch = min(c.nodes, 3) - 1, c.generation, c.channels
    bus = graph
    if algo.startswith("nvls"):
        intra = (c.intra_gbs or graph) * NVLS_EFFICIENCY[gen] * (ch - 1) / ch
        intra *= 2.0 if op == "all_reduce" else (c.ppn - 1) / c.ppn
        inter = (c.inter_gbs or intra) * (2 if c.nodes <= 2 and algo == "nvls_tree" else 1)
        caps = [intra, inter] if c.nodes > 1 else [intra]
        if algo == "nvls_tree":
            caps.append(PER_CH_NVLS_TREE[gen][n2] * ch)
        bus = min(caps)
    ll_max = (LL_MAX_BW[gen] if c.nodes == 1 else LL_MAX_BW_NET)[n2]
    if algo == "ring" and proto == "LL":
        bus = min(ll_max, bus * 0.5)
    if algo == "ring" and proto == "LL128":
        bus = min(bus * 0.92, ch * PER_CH_RING_LL128[gen][n2])
    if algo == "tree" and op == "all_reduce":
        bus = min(bus * 0.92, ch * PER_CH_TREE[gen][n2])
    if algo == "tree" and proto == "LL":
        bus = min(bus / 3.8, ll_max)
    if algo == "tree" and proto == "LL128":
        bus = min(bus * (7.0 / 9.0 if c.nodes == 1 else 120.0 / 128.0), ch * PER_CH_TREE_LL128[gen][n2])
    if op == "sendrecv":
        return bus
    if algo in ("ring", "nvls", "nvls_tree"):
        return bus * c.ranks / nsteps(op, c.ranks)
    return bus * 0.5


def latency_us(op: str, algo: str, proto: str, c: Comm) -> float:
    """NCCL's latency for one call, plus the uplink crossings' own latency."""
    p = PROTOS.index(proto)
    intra = HW_LAT[c.intra_hw][algo][p] + c.intra_extra_us
    inter = 0.0 if c.net_ideal else HW_LAT["net"]["tree" if c.ppn == 1 else algo][p] + c.net_lat_us
    if proto == "Simple":
        inter += c.net_lat_us  # tuning.cc: "the flush extra latency"
    if op == "sendrecv":
        return (inter if c.nodes > 1 else intra) + c.uplink_lat_us * (c.crossing_share > 0)
    base = BASE_LAT[algo][p]
    if algo == "ring":
        return base + _ring_hops_us(op, proto, c, intra, inter)
    if algo == "tree":
        return base + 2 * ((c.ranks // c.nodes - 1) * intra + _log2i(c.nodes) * inter
                           + c.site_levels * c.uplink_lat_us)
    if algo == "nvls":
        return intra + (inter if c.nodes > 1 else 0.0)
    return base + intra + 2 * (_log2i(c.nodes) * inter + c.site_levels * c.uplink_lat_us)


def _ring_hops_us(op: str, proto: str, c: Comm, intra: float, inter: float) -> float:
    steps = nsteps(op, c.ranks)
    if op == "broadcast":  # pipelined chain: one hop's latency (sameChannels)
        hop = inter if c.nodes > 1 else intra
        return hop + c.uplink_lat_us * (c.crossing_share > 0)
    overhead = 0.0 if c.nodes == 1 or c.net_ideal else NET_OVERHEAD_US * (3 if proto == "Simple" else 1)
    intra = max(intra, overhead)
    n_inter = 0 if c.nodes == 1 else (2 if op == "all_reduce" else 1) * (c.nodes - 1)
    crossings = n_inter * c.crossing_share
    return (steps - n_inter) * intra + n_inter * inter + crossings * c.uplink_lat_us


def algo_time_us(op: str, algo: str, proto: str, c: Comm, nbytes: float, count: int = 1) -> float:
    """ncclTopoGetAlgoTime: latency * count + bytes / (1000 * bandwidth)."""
    bw = bandwidth(op, algo, proto, c)
    lat = latency_us(op, algo, proto, c)
    log_size = _log2i(int(nbytes) >> 6) if nbytes >= 64 else -1
    if bw is not None and algo == "tree" and op == "all_reduce" and 0 <= log_size < 23:
        bw *= TREE_CORRECTION[PROTOS.index(proto)][log_size]
    if (algo == "ring" and proto == "Simple" and c.nodes > 1 and op == "all_reduce"
            and nbytes / (c.channels * c.ranks) >= 64):  # NCCL's own latency only, not the uplinks'
        own = latency_us(op, algo, proto, replace(c, uplink_lat_us=0.0))
        lat = (lat - own) + own * RING_PLATEAU["pre_ampere" if c.generation == "volta" else "ampere_on"]
    transfer = 0.0 if bw is None or bw <= 0 else nbytes / (1000.0 * bw)
    return lat * count + transfer


def choose(op: str, c: Comm, nbytes: float, algo: Optional[str] = None,
           proto: Optional[str] = None, count: int = 1) -> Choice:
    """What NCCL's default tuner runs (the cheapest enabled pair), or the forced algorithm
    and/or protocol (NCCL_ALGO / NCCL_PROTO). A forced algorithm this op cannot use leaves the
    op to the tuner (as NCCL_ALGO="allreduce:tree" would); so does a protocol."""
    if c.ranks < 2 or c.ideal:
        return Choice(0.0, "none", "none")
    for a, p in ((algo, proto), (None, proto), (None, None)):
        pairs = [(x, y) for x in ALGOS for y in PROTOS
                 if a in (None, x) and p in (None, y) and supports(op, x, y, c)]
        if pairs:
            break
    times = [(algo_time_us(op, x, y, c, nbytes, count), x, y) for x, y in pairs]
    t, x, y = min(times)
    return Choice(t, x, y)
