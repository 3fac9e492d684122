"""How a run splits its global batch over the ranks (strategy.split), decided once for the
emulator, the Fleet, the predictor and the analysis: whether the split is balanced, which ranks
balance against each other, and the name a run reports for its strategy and split together.

`strategy.split=balanced` goes with every exchange. Who balances against whom follows who waits
for whom every step:

  ddp, ddp_bf16, powersgd, hierarchical   every rank averages with every other rank each step:
                                          the whole global batch (W x train.micro_batch) is
                                          split over all ranks.
  localsgd, diloco                        a step averages gradients within a site only: each
                                          site keeps its uniform share (its ranks x
                                          train.micro_batch, the same sequences) and splits it
                                          among its own ranks.

Keeping a site's share is what keeps the outer strategies' math: each site's replica computes
exactly the uniform split's gradient (bench.strategies.loss_weight), and the outer average, which
weighs sites by their ranks, still weighs them by their tokens. A global split would move
sequences between replicas and change what each one learns.

`strategy=balanced` is the preset for ddp with the balanced split; it keeps its name.
"""
from __future__ import annotations

from typing import Optional

SPLITS = ("uniform", "balanced")
BALANCED_PRESET = "balanced"  # strategy=balanced: ddp's exchange with the balanced split
OUTER_SYNC = ("localsgd", "diloco")  # per step, gradients are averaged within the site only
KEYS = ("strategy", "strategy.name", "strategy.split")  # the sweep keys that choose a strategy


def preset_split(name: str) -> str:
    """The split a strategy preset implies: balanced for strategy=balanced, else uniform."""
    return "balanced" if name == BALANCED_PRESET else "uniform"


def split_of(name: str, split: Optional[str] = None) -> str:
    """strategy.split, or the preset's where it is null (a config written before the key)."""
    return str(split) if split is not None else preset_split(name)


def is_balanced(strategy_cfg) -> bool:
    """Does this run split its batch in proportion to speed (config section `strategy`)?"""
    return split_of(strategy_cfg.name, strategy_cfg.get("split")) == "balanced"


def label_of(name: str, split: Optional[str] = None) -> str:
    """The name a run reports: the strategy's, '+balanced' where it adds the balanced split
    ('diloco+balanced'); ddp with the balanced split is `balanced`, its preset."""
    if split_of(name, split) != "balanced" or name == BALANCED_PRESET:
        return str(name)
    return BALANCED_PRESET if name == "ddp" else f"{name}+balanced"


def label(strategy_cfg) -> str:
    return label_of(strategy_cfg.name, strategy_cfg.get("split"))


def scopes(strategy_cfg, sites: list[str]) -> list[list[int]]:
    """Indices (ranks, or groups in rank order) whose batches are balanced against each other:
    all of them, or for an outer-sync strategy each run of consecutive indices on one site
    (ranks are numbered group by group, so a site's ranks are one run unless its groups are
    listed apart: a run then keeps its own contiguous sequences)."""
    if strategy_cfg.name not in OUTER_SYNC:
        return [list(range(len(sites)))]
    out: list[list[int]] = []
    for i, site in enumerate(sites):
        if out and sites[out[-1][-1]] == site:
            out[-1].append(i)
        else:
            out.append([i])
    return out
