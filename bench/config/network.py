"""The network's config: the tiers of bench.costs.topology (node fabric, NICs, uplinks) and the
NCCL tuner's overrides (bench.costs.nccl)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class LinkConfig:
    latency_ms: float = 0.0
    bandwidth_gbps: Optional[float] = None
    """Gigabits per second; null means no limit."""
    jitter_ms: float = 0.0


@dataclass
class NodeConfig:
    """Overrides of every group's node fabric (null: the catalog's, bench.costs.topology.NODES)."""
    generation: Optional[str] = None
    """NCCL's constants row: volta | ampere | hopper | blackwell."""
    interconnect: Optional[str] = None
    """nvlink | pci."""
    gbs_per_gpu: Optional[float] = None
    """Intra-node bus bandwidth per GPU, GB/s (NCCL's: NVLink links x per-link bandwidth)."""
    cc: Optional[int] = None
    """Compute capability x 10 (80 A100, 89 L40S, 90 H100/H200, 100 B200): NCCL's LL128 and
    channel rules."""
    nvls: Optional[bool] = None
    """NVLink SHARP (NVSwitch multicast), Hopper and later."""
    nics_per_gpu: Optional[float] = None
    """NICs per GPU (0.5: one NIC per two GPUs)."""


@dataclass
class NcclConfig:
    algo: str = "auto"
    """auto (NCCL's default tuner picks per size) | ring | tree | nvls | nvls_tree: NCCL_ALGO."""
    proto: str = "auto"
    """auto | LL | LL128 | Simple: NCCL_PROTO."""


@dataclass
class NetworkConfig:
    name: str = "custom"
    intra_site: LinkConfig = field(default_factory=LinkConfig)
    """Between nodes of one site: a NIC per GPU (latency, bandwidth per NIC, jitter)."""
    inter_site: LinkConfig = field(default_factory=LinkConfig)
    """Between sites: each site's uplink, shared by every flow that crosses it at once."""
    node: NodeConfig = field(default_factory=NodeConfig)
    nccl: NcclConfig = field(default_factory=NcclConfig)
    calibration: Optional[str] = None
    """A tier correction fitted by `hetbench collectives --compare LOG --out FILE` (JSON)."""
