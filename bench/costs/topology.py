"""Where the ranks live: nodes, the fabric inside each, the NICs of a site, the sites' uplinks.

Ranks of one config group fill nodes of `gpus_per_node` in rank order (ranks of different groups
never share a node). Inside a node the GPUs talk over the node's fabric (NVLink/NVSwitch or PCIe,
from NODES below, overridable with network.node.*); between nodes of a site over a NIC per GPU
(network.intra_site: latency, bandwidth per NIC, jitter); between sites over the site's uplink
(network.inter_site), which every flow leaving the site at once shares.

A tier whose latency is 0 and bandwidth null is ideal: it costs nothing, NCCL's own hardware
latency for it included (network=rack: the NICs are left out of the picture).

`comm(nodes)` condenses a set of nodes into what NCCL's tuner sees (bench.costs.nccl.Comm), plus
the uplink terms: how many of the ring's inter-node hops cross sites, how many flows share the
busiest uplink, how many tree levels span sites.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Optional

from bench import hardware
from bench.costs import nccl


@dataclass(frozen=True)
class Link:
    latency_ms: float
    bandwidth_gbps: Optional[float]
    jitter_ms: float

    def step_ms(self, chunk_bytes: float) -> float:
        """One message over this link: alpha + chunk / beta."""
        transfer = 0.0 if not self.bandwidth_gbps else chunk_bytes * 8 / (self.bandwidth_gbps * 1e6)
        return self.latency_ms + transfer

    @property
    def is_ideal(self) -> bool:
        return self.latency_ms == 0 and not self.bandwidth_gbps and self.jitter_ms == 0

    @property
    def gbs(self) -> Optional[float]:
        """Bandwidth in GB/s (NCCL's unit); None: unlimited."""
        return self.bandwidth_gbps / 8.0 if self.bandwidth_gbps else None


IDEAL = Link(0.0, None, 0.0)


def link_of(spec) -> Link:
    """A `network.intra_site` / `network.inter_site` config node as a Link."""
    return Link(float(spec.latency_ms), spec.bandwidth_gbps and float(spec.bandwidth_gbps),
                float(spec.jitter_ms))


@dataclass(frozen=True)
class NodeSpec:
    """One node's fabric as NCCL sees it. gbs_per_gpu: NCCL's NVLink bandwidth per link
    (NCCL 2.30.7 src/graph/topo.h: SM80 20.0, SM90 20.6, SM100 40.1 GB/s) x the GPU's links, or
    its PCI figure; cc: compute capability x 10 (LL128's and channel duplication's rules); the
    channels are NCCL's graph search's (bench.costs.nccl_graph)."""
    generation: str
    interconnect: str  # nvlink | pci
    gpus: int
    gbs_per_gpu: float
    cc: int
    nvls: bool
    nics_per_gpu: float = 1.0
    source: str = ""
    hop_us: float = 0.0  # added to NCCL's intra-node hop latency (a fitted correction)
    x86: bool = True  # the host CPU (GB200's Grace is Arm)
    graph_gbs: Optional[float] = None  # a calibration's ring bus bandwidth (replaces the search's)


_NV = "NVIDIA datasheet link count x NCCL topo.h per-link bandwidth"
NODES: dict[str, NodeSpec] = {
    "V100": NodeSpec("volta", "nvlink", 8, 6 * 20.0, 70, False, 0.5, "DGX-1V: 6 NVLink2; " + _NV),
    "A100-40GB": NodeSpec("ampere", "nvlink", 8, 12 * 20.0, 80, False, 1.0, "DGX A100: 12 NVLink3; " + _NV),
    "A100-80GB": NodeSpec("ampere", "nvlink", 8, 12 * 20.0, 80, False, 1.0, "DGX A100: 12 NVLink3; " + _NV),
    "H100-SXM": NodeSpec("hopper", "nvlink", 8, 18 * 20.6, 90, True, 1.0, "DGX H100: 18 NVLink4, NVSwitch (NVLS); " + _NV),
    "H100-PCIe": NodeSpec("hopper", "pci", 8, 24.0, 90, False, 0.5, "PCIe Gen5 host bridge, NCCL PCI path (assumed 24 GB/s)"),
    "H200": NodeSpec("hopper", "nvlink", 8, 18 * 20.6, 90, True, 1.0, "HGX H200: 18 NVLink4, NVSwitch (NVLS); " + _NV),
    "B200": NodeSpec("blackwell", "nvlink", 8, 18 * 40.1, 100, True, 1.0, "HGX B200: 18 NVLink5, NVSwitch (NVLS); " + _NV),
    "GB200": NodeSpec("blackwell", "nvlink", 72, 18 * 40.1, 100, True, 1.0, "GB200 NVL72: one 72-GPU NVLink domain, Grace (Arm) hosts; " + _NV, x86=False),
    "L40S": NodeSpec("ampere", "pci", 8, 24.0, 89, False, 0.5, "PCIe Gen4 x16, no NVLink (sm89 uses Ampere's row)"),
    "MI300X": NodeSpec("hopper", "nvlink", 8, 7 * 64.0, 90, False, 1.0, "7 Infinity Fabric links x 64 GB/s (AMD datasheet); RCCL ~ NCCL's model"),
}
GENERIC = NodeSpec("hopper", "nvlink", 8, 18 * 20.6, 90, False, 1.0, "unknown device: H100's node without NVLS")


def node_spec(device: Optional[str], override=None) -> NodeSpec:
    """The catalog's node for a device, with network.node.* overrides (null fields: catalog)."""
    spec = NODES.get(hardware.canonical_name(device) or "", GENERIC)
    if override is None:
        return spec
    changes = {k: v for k, v in dict(override).items() if v is not None and k in NodeSpec.__annotations__}
    return replace(spec, **changes)


@dataclass(frozen=True)
class Node:
    site: str
    ranks: int
    spec: NodeSpec


@dataclass(frozen=True)
class Topology:
    nodes: tuple  # Node, in rank order
    nic: Link
    uplink: Link

    @property
    def world_size(self) -> int:
        return sum(n.ranks for n in self.nodes)

    def sites_per_rank(self) -> list[str]:
        return [n.site for n in self.nodes for _ in range(n.ranks)]

    def by_site(self) -> dict[str, "Topology"]:
        sites: dict[str, list] = {}
        for n in self.nodes:
            sites.setdefault(n.site, []).append(n)
        return {s: replace(self, nodes=tuple(ns)) for s, ns in sites.items()}

    def leaders(self) -> "Topology":
        """One rank per site, each on a node of its own (the hierarchical route's leaders)."""
        firsts = {}
        for n in self.nodes:
            firsts.setdefault(n.site, replace(n, ranks=1))
        return replace(self, nodes=tuple(firsts.values()))

    def subset(self, ranks: list[int]) -> "Topology":
        """The topology of these ranks alone (each keeps its node; nodes in first-rank order)."""
        owner = [i for i, n in enumerate(self.nodes) for _ in range(n.ranks)]
        counts = Counter(owner[r] for r in ranks)
        order = sorted(counts)
        return replace(self, nodes=tuple(replace(self.nodes[i], ranks=counts[i]) for i in order))

    def tiers(self) -> list[Link]:
        """The links a collective over every rank crosses (for jitter and the summary)."""
        per_site = Counter(n.site for n in self.nodes)
        out = [self.nic] if any(count > 1 for count in per_site.values()) else []
        return out + ([self.uplink] if len({n.site for n in self.nodes}) > 1 else [])

    def comm(self) -> nccl.Comm:
        return _comm(self)


def _comm(t: Topology) -> nccl.Comm:
    nodes, ranks = t.nodes, t.world_size
    specs = [n.spec for n in nodes]
    gens = [nccl.GENERATIONS.index(s.generation) for s in specs]
    shared = [n.spec for n in nodes if n.ranks > 1]
    crossings, busiest = _ring_crossings([n.site for n in nodes])
    n_sites = len({n.site for n in nodes})
    up_ideal = t.uplink.is_ideal or n_sites < 2
    share = None if up_ideal or t.uplink.gbs is None else t.uplink.gbs / max(busiest, 1)
    return nccl.Comm(
        ranks=ranks, nodes=len(nodes), generation=nccl.GENERATIONS[min(gens)],
        cc_min=min(s.cc for s in specs), same_cc=len({s.cc for s in specs}) == 1,
        intra_hw="pci" if any(s.interconnect == "pci" for s in shared) else "nvlink",
        intra_gbs=min((s.gbs_per_gpu for s in shared), default=None),
        nic_gbs=t.nic.gbs, nics=max(1, int(min(n.ranks * n.spec.nics_per_gpu for n in nodes))),
        uplink_gbs=share, nvls=all(s.nvls for s in specs),
        min_ppn=min(n.ranks for n in nodes), x86=all(s.x86 for s in specs),
        net_lat_us=t.nic.latency_ms * 1000.0,
        intra_extra_us=max((s.hop_us for s in shared), default=0.0),
        graph_gbs=min((s.graph_gbs for s in shared if s.graph_gbs), default=None),
        crossing_share=crossings / len(nodes) if n_sites > 1 else 0.0,
        site_levels=math.ceil(math.log2(n_sites)) if n_sites > 1 else 0,
        uplink_lat_us=0.0 if up_ideal else t.uplink.latency_ms * 1000.0,
        net_ideal=t.nic.is_ideal)


def _ring_crossings(sites: list[str]) -> tuple[int, int]:
    """(crossings, most flows leaving one site at once) of a ring over nodes in this order."""
    if len(sites) < 2:
        return 0, 0
    leaving = Counter(a for a, b in zip(sites, sites[1:] + sites[:1]) if a != b)
    return sum(leaving.values()), max(leaving.values(), default=0)


def nodes_of(groups, override=None) -> tuple:
    """Nodes for (device, count, site, gpus_per_node) groups: each group fills its own nodes."""
    nodes = []
    for device, count, site, per_node in groups:
        spec = node_spec(device, override)
        size = int(per_node or spec.gpus)
        full, rest = divmod(int(count), size)
        nodes += [Node(str(site), size, spec)] * full + ([Node(str(site), rest, spec)] if rest else [])
    return tuple(nodes)


def build(cfg, counts: Optional[list] = None, intra: Link | None = None,
          inter: Link | None = None) -> Topology:
    """The configured cluster's topology (group counts scaled by `counts` where given), with
    network.calibration applied."""
    groups = cfg.cluster.groups
    counts = counts or [int(g.count) for g in groups]
    rows = [(g.device, c, g.site, g.get("gpus_per_node")) for g, c in zip(groups, counts)]
    node = cfg.network.get("node")
    topo = Topology(nodes_of(rows, node), intra or link_of(cfg.network.intra_site),
                    inter or link_of(cfg.network.inter_site))
    path = cfg.network.get("calibration")
    return apply_calibration(topo, read_calibration(path)) if path else topo


def read_calibration(path: str) -> dict:
    """A `hetbench collectives --compare LOG --out FILE` calibration, or a ConfigError."""
    from bench.errors import ConfigError
    from bench.results.files import read_json

    try:
        cal = read_json(path)
        assert cal.get("kind") == "hetbench.network_calibration" and cal["tier"] in ("node", "nic")
        return cal
    except (OSError, ValueError, KeyError, AssertionError, AttributeError):
        raise ConfigError("network.calibration", path, "point it at the file `hetbench "
                          "collectives --compare LOG --out FILE` wrote") from None


def apply_calibration(topo: Topology, cal: dict) -> Topology:
    """Node tier: every node of the calibrated device (all, if the log named none) gets the
    fitted bandwidth and hop latency; NIC tier: the fitted NIC replaces network.intra_site."""
    if cal["tier"] == "nic":
        return replace(topo, nic=Link(float(cal["latency_ms"]), float(cal["bandwidth_gbps"]),
                                      topo.nic.jitter_ms))
    spec = NODES.get(cal.get("device") or "")
    fitted = {"hop_us": float(cal["hop_us"]), "graph_gbs": float(cal["graph_gbs"])}
    return replace(topo, nodes=tuple(
        replace(n, spec=replace(n.spec, **fitted)) if spec is None or n.spec == spec else n
        for n in topo.nodes))


def flat(sites: list[str], intra: Link, inter: Link, spec: NodeSpec = GENERIC) -> Topology:
    """Every rank on a node of its own (one GPU per node), in this order."""
    return Topology(tuple(Node(s, 1, spec) for s in sites), intra, inter)
