"""Strategies: how ranks exchange what they learned, each behind the trainer's seams.

A strategy gives the trainer three things, and the model knows nothing of any of them:
  exchange    what the DDP comm hook does with a gradient bucket (bench.strategies.exchange):
              which collectives run, which route the emulated link charges (ring, site,
              hierarchical) and how many bytes travel
  batch       this rank's micro-batch and loss weight (balanced: speed-proportional split)
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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from bench.costs.fleet import Fleet
from bench.strategies import exchange as exchange_mod
from bench.strategies.groups import SiteGroups
from bench.strategies.outer import OuterSync


@dataclass
class Strategy:
    name: str
    exchange: Callable  # bucket -> exchange.Sent
    micro_batch: int  # this rank's sequences per step
    offset: int  # where they start in the step's global batch (bench.rank.data.Batches)
    loss_weight: float  # the backward loss is loss x weight (balanced); records keep the loss
    outer: Optional[OuterSync]

    def describe(self) -> dict:
        out = {"name": self.name, "micro_batch": self.micro_batch, "loss_weight": self.loss_weight,
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
    mine = batches[env.rank]
    # The uniform split's gradient: DDP averages over W ranks, so a rank's mean loss over its
    # b_r sequences weighs b_r x W / B (B = the global batch) to count each sequence once.
    weight = mine * env.world_size / sum(batches)
    ratio = fleet.powersgd_ratio if name == "powersgd" else 1.0
    exchange = exchange_mod.build(name, strategy_cfg, groups, env.world_size, ratio)
    outer = None
    if name in ("localsgd", "diloco"):
        lr, momentum = (1.0, 0.0) if name == "localsgd" else (strategy_cfg.outer_lr,
                                                              strategy_cfg.outer_momentum)
        outer = OuterSync(list(model.parameters()), strategy_cfg.sync_every, lr, momentum, groups,
                          env.world_size)
    offset = sum(batches[:env.rank])
    return Strategy(name, exchange, mine, offset, weight, outer)
