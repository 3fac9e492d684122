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
it at once (Comm.uplink_gbs is the per-rank figure after that share: bench.costs.topology).
The channels and per-channel speeds come from NCCL's graph search (bench.costs.nccl_graph).

Left out (docs/network.md): CollNet/SHARP, PAT (1 GPU per node only), per-size channel and
thread reduction (enqueue.cc; it matters below ~1 MB), adaptive routing, congestion beyond the
shared uplinks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

from bench.costs import nccl_graph
from bench.costs import nccl_tables as tables
from bench.costs.nccl_tables import GENERATIONS, PROTOS  # noqa: F401 (re-exported)

NCCL_VERSION = "2.30.7"
OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "sendrecv")
ALGOS = ("tree", "ring", "nvls", "nvls_tree")  # NCCL's order (ties go to the first)


@dataclass(frozen=True)
class Comm:
    """What NCCL's tuner knows of a communicator, and the uplinks it does not.

    intra_gbs: the GPUs' NVLink (or PCI) bandwidth inside a node (the slowest shared node's;
    None: no node holds two ranks); nic_gbs, nics: each NIC's GB/s (None: unlimited) and the NICs
    of the node with fewest; from these bench.costs.nccl_graph finds NCCL's channels.
    uplink_gbs: the uplinks' share per rank (None: no uplink limits); net_lat_us: the NIC's own
    per-message latency (NCCL's graph latencyInter); crossing_share: the share of the ring's
    inter-node hops that cross between sites; site_levels: log2 of the sites a tree spans;
    uplink_lat_us: what one crossing adds."""
    ranks: int
    nodes: int
    generation: str = "hopper"
    cc_min: int = 90  # compute capability x10 of the oldest GPU
    same_cc: bool = True
    intra_hw: str = "nvlink"  # nvlink | pci
    intra_gbs: Optional[float] = 370.8
    nic_gbs: Optional[float] = None
    nics: int = 8
    uplink_gbs: Optional[float] = None
    nvls: bool = False
    min_ppn: int = 8  # the fewest ranks on one node
    x86: bool = True  # the hosts' CPUs (Grace is not: tuning.cc's Blackwell NVLS-tree rule)
    net_lat_us: float = 0.0
    intra_extra_us: float = 0.0  # a calibration's correction to the intra-node hop latency
    graph_gbs: Optional[float] = None  # a calibration's ring bus bandwidth inside a node
    crossing_share: float = 0.0
    site_levels: int = 0
    uplink_lat_us: float = 0.0
    net_ideal: bool = False  # the NICs are left out (network=rack): no NET latency or overhead

    @property
    def ideal(self) -> bool:
        """Nothing to charge: no shared node, ideal NICs, no uplink."""
        return (self.intra_gbs is None and self.net_ideal and self.uplink_gbs is None
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
    if algo.startswith("nvls") and (proto != "Simple" or not c.nvls or c.min_ppn < 2):
        return False
    if algo.startswith("nvls") and op != "all_reduce" and c.ppn > 32:  # enqueue.cc
        return False
    if algo == "nvls" and c.nodes > 1:  # NVLS across nodes needs CollNet (SHARP): not built
        return False
    if algo == "nvls_tree" and c.nodes == 1:
        return False
    if proto == "LL128":  # off on PCIe paths, and on mixed GPUs unless all are Hopper or later
        if c.intra_hw != "nvlink" or not (c.same_cc or c.cc_min >= 90):
            return False
    return True


def ring_graph(c: Comm):
    return nccl_graph.ring(c.generation, c.cc_min, c.intra_gbs, c.nodes, c.nics,
                           None if c.net_ideal else c.nic_gbs, c.graph_gbs)


def bandwidth(op: str, algo: str, proto: str, c: Comm) -> Optional[float]:
    """Algorithm bandwidth in GB/s (bytes / us / 1000); None: unlimited (an ideal fabric)."""
    n2, gen = min(c.nodes, 3) - 1, c.generation
    if algo.startswith("nvls"):
        ch, bus = _nvls_bus(op, algo, c)
    else:
        graph = ring_graph(c)
        if graph is None:
            if c.uplink_gbs is None:
                return None
            graph = nccl_graph.Graph(1, c.uplink_gbs, c.uplink_gbs)  # the uplink alone limits
        ch, bus = graph.channels, graph.channels * graph.bw_intra
    if c.uplink_gbs is not None:  # the extension: every flow leaving a site shares its uplink
        bus = min(bus, c.uplink_gbs)
    ll_max = (tables.LL_MAX_BW[gen] if c.nodes == 1 else tables.LL_MAX_BW_NET)[n2]
    if algo == "ring" and proto == "LL":
        bus = min(ll_max, bus * 0.5)
    if algo == "ring" and proto == "LL128":
        bus = min(bus * 0.92, ch * tables.PER_CH_RING_LL128[gen][n2])
    if algo == "tree" and op == "all_reduce":
        bus = min(bus * 0.92, ch * tables.PER_CH_TREE[gen][n2])
    if algo == "tree" and proto == "LL":
        bus = min(bus / 3.8, ll_max)
    if algo == "tree" and proto == "LL128":
        bus = min(bus * (7.0 / 9.0 if c.nodes == 1 else 120.0 / 128.0), ch * tables.PER_CH_TREE_LL128[gen][n2])
    if algo == "tree" and c.ppn == 1:  # search.cc: one GPU per node forces the TREE pattern
        bus *= 0.85
    if op == "sendrecv" or (op in ("all_gather", "reduce_scatter") and algo != "ring"):
        return bus
    if algo in ("ring", "nvls", "nvls_tree"):
        return bus * c.ranks / nsteps(op, c.ranks)
    return bus * 0.5


def _nvls_bus(op: str, algo: str, c: Comm) -> tuple[int, float]:
    """tuning.cc's NVLS / NVLS-tree bus bandwidth on the NVLS graph: (channels, GB/s)."""
    g = nccl_graph.nvls(c.generation, c.intra_gbs or 0.0, c.min_ppn, c.nodes, c.nics,
                        None if c.net_ideal else c.nic_gbs)
    ch = g.channels
    intra = g.bw_intra * tables.NVLS_EFFICIENCY[c.generation] * (ch - 1) / ch
    intra *= 2.0 if op == "all_reduce" else (c.ppn - 1) / c.ppn
    inter = g.bw_inter * (2 if c.nodes <= 2 and algo == "nvls_tree" else 1)
    caps = [intra, inter]
    if algo == "nvls_tree":
        caps.append(tables.PER_CH_NVLS_TREE[c.generation][min(c.nodes, 3) - 1])
    return ch, ch * min(caps)


def latency_us(op: str, algo: str, proto: str, c: Comm) -> float:
    """NCCL's latency for one call, plus the uplink crossings' own latency."""
    p = PROTOS.index(proto)
    intra = tables.HW_LAT[c.intra_hw][algo][p] + c.intra_extra_us
    inter = 0.0 if c.net_ideal else tables.HW_LAT["net"]["tree" if c.ppn == 1 else algo][p] + c.net_lat_us
    if proto == "Simple":
        inter += c.net_lat_us  # tuning.cc: "the flush extra latency"
    if op == "sendrecv":
        return (inter if c.nodes > 1 else intra) + c.uplink_lat_us * (c.crossing_share > 0)
    base = tables.BASE_LAT[algo][p]
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
    if op == "broadcast":  # a pipelined chain: one hop (tuning.cc: the ring's hw latency, NET's
        p = PROTOS.index(proto)  # across nodes), + the NIC's own latency once, + an uplink crossing
        net = 0.0 if c.net_ideal else tables.HW_LAT["net"]["ring"][p] + c.net_lat_us
        return (net if c.nodes > 1 else intra) + c.uplink_lat_us * (c.crossing_share > 0)
    overhead = 0.0 if c.nodes == 1 or c.net_ideal else tables.NET_OVERHEAD_US * (3 if proto == "Simple" else 1)
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
        bw *= tables.TREE_CORRECTION[PROTOS.index(proto)][log_size]
    if (bw is not None and algo == "nvls_tree" and op == "all_reduce" and 0 <= log_size < 24
            and c.cc_min >= 100 and c.x86):
        bw *= tables.TREE_CORRECTION[PROTOS.index(proto)][log_size]
    if (algo == "ring" and proto == "Simple" and c.nodes > 1 and op == "all_reduce"
            and nbytes / (_runtime_channels(c) * c.ranks) >= 64):  # NCCL's own latency, not the uplinks'
        own = latency_us(op, algo, proto, replace(c, uplink_lat_us=0.0))
        lat = (lat - own) + own * tables.RING_PLATEAU["pre_ampere" if c.generation == "volta" else "ampere_on"]
    if bw is not None and bw <= 0:
        return math.inf  # NCCL: a zero bandwidth disables the pair
    transfer = 0.0 if bw is None else nbytes / (1000.0 * bw)
    return lat * count + transfer


def _runtime_channels(c: Comm) -> int:
    """comm->nChannels: the ring graph's channels, doubled at connection (connect.cc)."""
    graph = ring_graph(c)
    return 2 * graph.channels if graph else 2


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
    t, x, y = min(times, key=lambda row: row[0])  # ties: the first in NCCL's order
    return Choice(t, x, y)
