"""What the config says of the cluster, read the same way everywhere: world size, each rank's
device and site (numbered group by group, the contract), its group, the model's vocabulary."""
from __future__ import annotations

import numpy as np

from bench import hardware
from bench.errors import ConfigError


def world_size(cfg) -> int:
    return sum(int(g.count) for g in cfg.cluster.groups)


def rank_table(cfg) -> list[dict]:
    """One entry per rank, numbered group by group: device (catalog key), site."""
    table = []
    for group in cfg.cluster.groups:
        key = hardware.canonical_name(group.device)
        for _ in range(int(group.count)):
            table.append({"rank": len(table), "device": key, "site": str(group.site)})
    return table


def group_of(cfg, rank: int):
    """The cluster group rank `rank` belongs to."""
    first = 0
    for group in cfg.cluster.groups:
        if rank < first + int(group.count):
            return group
        first += int(group.count)
    raise IndexError(rank)


def vocab_size(cfg) -> int:
    """Tokens the model embeds: 256 bytes for text, else the Markov chain's vocabulary."""
    return 256 if cfg.data.kind == "text" else int(cfg.data.vocab_size)


def scaled_counts(cfg, world_size: int | None) -> list[int]:
    """Group counts, scaled to `world_size` ranks in the configured proportions (largest
    remainders), every group keeping at least one rank."""
    counts = [int(g.count) for g in cfg.cluster.groups]
    if not world_size or world_size == sum(counts):
        return counts
    if world_size < len(counts):
        raise ConfigError("predict.world_size", world_size,
                          f"use at least one rank per group ({len(counts)})")
    share = np.array(counts, dtype=float) * world_size / sum(counts)
    out = np.maximum(1, np.floor(share)).astype(int)
    while out.sum() < world_size:  # the largest shortfall against its share gets the next rank
        out[np.argmax(share - out)] += 1
    while out.sum() > world_size:  # the floor of one rank per group overshot
        out[np.argmax(np.where(out > 1, out - share, -np.inf))] -= 1
    return [int(v) for v in out]
