"""Strategies: how ranks exchange what they learned, each behind the trainer's seams.

A strategy gives the trainer three things, and the model knows nothing of any of them:
  exchange    what the DDP comm hook does with a gradient bucket (bench.strategies.exchange):
              which collectives run, which route the emulated link charges (ring, site,
              hierarchical) and how many bytes travel
  batch       this rank's micro-batch and loss weight (strategy.split=balanced: a speed-
              proportional split, bench.costs.split; it goes with every exchange below)
  outer       a sync across sites every H steps after the optimizer step (localsgd, diloco)

  ddp           ring all-reduce of every bucket (DistributedDataParallel as it comes)
  ddp_bf16      torch's bf16_compress_hook: buckets travel as bf16, half the bytes
  powersgd      torch's powerSGD_hook (rank-r factors P and Q, error feedback): fewer bytes,
                two dependent all-reduces per bucket
  balanced      ddp with each rank's micro-batch sized to its device (bench.costs.balance), the
                loss weighted so the gradient equals the uniform split's
  hierarchical  reduce within each site, all-reduce among one leader per site, broadcast within
                the site (process subgroups)
  localsgd      gradients all-reduced within each site every step; parameters averaged across
                all ranks every `sync_every` steps (post-local SGD with a periodic averager)
  diloco        sites are replicas: inner AdamW with in-site all-reduce, every `sync_every` steps
                an outer Nesterov SGD step on the averaged pseudo-gradient (Douillard et al. 2023)

A combination (`strategy=diloco strategy.split=balanced`) reports itself as "diloco+balanced".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from bench.costs import split
from bench.costs.fleet import Fleet
from bench.strategies import exchange as exchange_mod
from bench.strategies.groups import SiteGroups
from bench.strategies.outer import OuterSync


@dataclass
class Strategy:
    name: str  # as the run reports it: bench.costs.split.label ("diloco+balanced")
    exchange: Callable  # bucket -> exchange.Sent
    micro_batch: int  # this rank's sequences per step
    offset: int  # where they start in the step's global batch (bench.rank.data.Batches)
    loss_weight: float  # the backward loss is loss x weight (balanced); records keep the loss
    outer: Optional[OuterSync]
    split: str = "uniform"  # strategy.split, resolved (bench.costs.split)

    def describe(self) -> dict:
        out = {"name": self.name, "split": self.split, "micro_batch": self.micro_batch, "loss_weight": self.loss_weight,
               "route": getattr(self.exchange, "route", None)}
        if self.outer:
            out.update(self.outer.describe())
        if hasattr(self.exchange, "describe"):
            out.update(self.exchange.describe())
        return out


def build(strategy_cfg, env, model, fleet: Fleet) -> Strategy:
    """This rank's strategy (config section `strategy`). Every rank calls it in the same order
    (it creates process groups)."""
    name = strategy_cfg.name
    groups = SiteGroups(fleet.sites, env.rank)
    batches = fleet.micro_batches
    ratio = fleet.powersgd_ratio if name == "powersgd" else 1.0
    exchange = exchange_mod.build(name, strategy_cfg, groups, env.world_size, ratio)
    outer = None
    if name in split.OUTER_SYNC:
        lr, momentum = (1.0, 0.0) if name == "localsgd" else (strategy_cfg.outer_lr,
                                                              strategy_cfg.outer_momentum)
        outer = OuterSync(list(model.parameters()), strategy_cfg.sync_every, lr, momentum, groups,
                          env.world_size)
    offset = sum(batches[:env.rank])
    return Strategy(split.label(strategy_cfg), exchange, batches[env.rank], offset,
                    loss_weight(batches, env.rank), outer,
                    split.split_of(name, strategy_cfg.get("split")))


def loss_weight(batches: list[int], rank: int) -> float:
    """What rank `rank`'s mean loss over its b_r sequences is multiplied by so that the exchange's
    average is the uniform split's gradient: b_r x W / B (B = the global batch).

    Over all W ranks (ddp and the other per-step exchanges) the average is
    (1/W) sum_r b_r W/B grad_r = (1/B) sum over the B sequences. Within a site of n_s ranks
    (localsgd, diloco) it is (1/n_s) sum_{r in s} b_r W/B grad_r; the split keeps the site's
    uniform share, B_s = n_s B/W sequences (bench.costs.split), so this is (1/B_s) sum over the
    site's own sequences: its replica's uniform-split gradient."""
    return batches[rank] * len(batches) / sum(batches)
