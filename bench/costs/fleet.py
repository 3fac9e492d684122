"""The Fleet: who the ranks are, built once from the config at the boundary (the driver, a
rank's start, the predictor) and passed down as a value, so that no component re-derives it.

Per rank: its catalog device, site, config group, micro-batch (the strategy's split), modelled
or profiled phase times in device ms, and where it runs (CUDA or CPU) and whether it is paced
(bench.costs.placement, the one rule). Ranks are numbered group by group (the contract)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from bench.costs import device_times, placement
from bench.costs.cluster import rank_table
from bench.costs.devices import PhaseTimes


@dataclass(frozen=True)
class RankSpec:
    rank: int
    device: Optional[str]  # catalog key (None: not in the catalog)
    site: str
    group: int  # index into cluster.groups
    micro_batch: int
    times: PhaseTimes  # device ms at this micro-batch
    device_type: str  # "cuda" | "cpu": where this rank runs
    paced: bool  # compute padded to `times` (emulation)


@dataclass(frozen=True)
class Fleet:
    ranks: tuple[RankSpec, ...]
    precision: str  # what the device model times (bench.costs.device_times.precision)
    ideal_tokens_per_s: float  # sum of the ranks' own speeds at the uniform split (device time)
    # An emulated workload (emulation.workload) applies to paced ranks only; unpaced, a rank
    # trains and reports its own model. These are 1 where it does not apply.
    bytes_scale: float  # emulated gradient bytes per real byte
    tokens_scale: float  # emulated tokens per trained token
    powersgd_ratio: float  # the workload's PowerSGD compression over the trained model's

    @property
    def sites(self) -> list[str]:
        return [r.site for r in self.ranks]

    @property
    def micro_batches(self) -> list[int]:
        return [r.micro_batch for r in self.ranks]


def build(cfg, device_type: str) -> Fleet:
    """The fleet of this config with its ranks on `device_type`: a rank passes its own device
    (bench.rank.dist.choose_device, placement's rule on its node)."""
    batches = device_times.micro_batches(cfg)
    times = device_times.rank_times(cfg, batches)
    paced = placement.paced(str(cfg.emulation.compute), device_type)
    groups = [i for i, g in enumerate(cfg.cluster.groups) for _ in range(int(g.count))]
    ranks = tuple(RankSpec(rank=row["rank"], device=row["device"], site=row["site"],
                           group=groups[i], micro_batch=batches[i], times=times[i],
                           device_type=device_type, paced=paced)
                  for i, row in enumerate(rank_table(cfg)))
    emulated = device_times.workload_applies(cfg, device_type)
    return Fleet(ranks, device_times.precision(cfg), device_times.ideal_tokens_per_s(cfg),
                 bytes_scale=device_times.bytes_scale(cfg) if emulated else 1.0,
                 tokens_scale=device_times.tokens_scale(cfg) if emulated else 1.0,
                 powersgd_ratio=device_times.powersgd_ratio(cfg) if emulated else 1.0)
