"""The fleet as the predictor sees it: classes of identical ranks (same device, site, speed and
micro-batch), each with a count, so that 200,000 ranks cost what a handful of groups cost.

Device times come from bench.costs.device_times (the emulator's own code) run on a stand-in config
with one rank per class. Up to EXACT_RANKS ranks the balanced split (bench.costs.split decides
whether, and over which ranks) is the emulator's own per-rank split; above (where the per-rank
split would take seconds), the group-level water-filling of bench.costs.balance.split_groups over
the same scopes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from omegaconf import OmegaConf

from bench import hardware
from bench.config.schema import GroupConfig
from bench.costs import balance, device_times, split
from bench.costs.cluster import scaled_counts  # noqa: F401 (its home: costs)

EXACT_RANKS = 32  # the emulator runs 4-32 ranks; its per-rank split is slow beyond


@dataclass
class Fleet:
    """Per class (arrays of equal length): who, how many, and its device times (ms)."""
    device: list[str]
    site: list[str]
    count: np.ndarray
    fwd: np.ndarray
    bwd: np.ndarray
    opt: np.ndarray
    tokens: np.ndarray  # tokens each rank of the class trains per step (the workload's)
    ideal_tokens_per_s: float  # the sum of every rank's own speed at the uniform split
    seq_len: int  # the workload's tokens per sequence
    precision: str
    sources: list[str]

    @property
    def world_size(self) -> int:
        return int(self.count.sum())

    @property
    def compute(self) -> np.ndarray:
        return self.fwd + self.bwd

    def sites_per_rank(self) -> list[str]:
        """The rank table's sites, class by class (what the link model counts)."""
        out: list[str] = []
        for site, n in zip(self.site, self.count):
            out += [site] * int(n)
        return out


def build(cfg, world_size: int | None = None) -> Fleet:
    counts = scaled_counts(cfg, world_size)
    rows = _classes(cfg, counts)  # (group, batch, count)
    stand_in = _stand_in(cfg, [g for g, _, _ in rows])
    times = device_times.rank_times(stand_in, [b for _, b, _ in rows])
    groups = cfg.cluster.groups
    scale = device_times.tokens_scale(cfg)
    seq = int(cfg.train.seq_len)
    return Fleet(
        device=[hardware.canonical_name(groups[g].device) for g, _, _ in rows],
        site=[str(groups[g].site) for g, _, _ in rows],
        count=np.array([n for _, _, n in rows]),
        fwd=np.array([t.fwd_ms for t in times]), bwd=np.array([t.bwd_ms for t in times]),
        opt=np.array([t.opt_ms for t in times]),
        tokens=np.array([round(b * seq * scale) for _, b, _ in rows], dtype=float),
        ideal_tokens_per_s=_ideal(cfg, counts),
        seq_len=int(device_times.workload_shape(cfg)["seq_len"]),
        precision=device_times.precision(stand_in),
        sources=[t.source for t in times])


def _classes(cfg, counts: list[int]) -> list[tuple[int, int, int]]:
    """(group, micro-batch, ranks) rows, in rank order."""
    mb = int(cfg.train.micro_batch)
    if not split.is_balanced(cfg.strategy):
        return [(g, mb, n) for g, n in enumerate(counts)]
    world = sum(counts)
    if world <= EXACT_RANKS:  # the emulator's own per-rank split
        rank_group = [g for g, n in enumerate(counts) for _ in range(n)]
        batches = device_times.micro_batches(_with_counts(cfg, counts))
        rows: list[list[int]] = []
        for g, b in zip(rank_group, batches):
            if rows and rows[-1][0] == g and rows[-1][1] == b:
                rows[-1][2] += 1
            else:
                rows.append([g, b, 1])
        return [tuple(r) for r in rows]
    work = device_times.step_work(_stand_in(cfg, list(range(len(counts)))))
    out: list[tuple[int, int, int]] = []
    for scope in split.scopes(cfg.strategy, [str(g.site) for g in cfg.cluster.groups]):
        rows = balance.split_groups(mb, [counts[g] for g in scope], [work[g] for g in scope])
        out += [(scope[i], b, n) for i, b, n in rows]
    return out


def _ideal(cfg, counts: list[int]) -> float:
    """bench.costs.device_times.ideal_tokens_per_s: one rank per group, times its count."""
    speeds = device_times.rank_speeds(_stand_in(cfg, list(range(len(counts)))))
    return float(sum(n * v for n, v in zip(counts, speeds)))


def _stand_in(cfg, group_of_rank: list[int]):
    """A copy of cfg with one rank per entry (that group's device, site, speed, ...), so that
    bench.costs.device_times times a class exactly as it times a rank of the real cluster."""
    groups = [dict(OmegaConf.to_container(cfg.cluster.groups[g]), count=1) for g in group_of_rank]
    return _with_groups(cfg, groups)


def _with_counts(cfg, counts: list[int]):
    groups = [dict(OmegaConf.to_container(g), count=n) for g, n in zip(cfg.cluster.groups, counts)]
    return _with_groups(cfg, groups)


def _with_groups(cfg, groups: list[dict]):
    out = cfg.copy()
    out.cluster.world_size = None
    out.cluster.groups = [GroupConfig(**g) for g in groups]
    return out
