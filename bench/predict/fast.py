"""Many predictions of one cluster and workload that differ only in the strategy and its knobs
(a search over remedies): each is exactly bench.predict.predict of its config, but the parts that
do not depend on the strategy are built once.

  the fleet      depends on the batch split only (balanced or not, and over which ranks: all,
                 or each site for localsgd / diloco: bench.costs.split.scopes)
  the links      depend on no strategy
  hand-overs     the expected slowest hand-over of each bucket (an order statistic under noise)
                 depends on the fleet, the buckets and the steps' relative starts: shared by
                 every timeline of one fleet
  the exchange   its buckets depend on the strategy, its bucket cap and PowerSGD rank: cached
                 by those (the split and H only rename it and set its sync interval)

The config is one private copy whose strategy keys are set for each variant (an OmegaConf
deep copy per variant would cost more than the prediction).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

from bench.costs import split as split_mod
from bench.predict import as_fleet_job, links_of, predict_with
from bench.predict import exchange as exchange_mod
from bench.predict import fleet as fleet_mod


@dataclass(frozen=True)
class Variant:
    """One strategy with its knobs, and the steps it is predicted (and emulated) over."""
    name: str
    split: str
    bucket_cap_mb: float
    sync_every: int
    powersgd_rank: int
    warmup_steps: int
    steps: int

    @property
    def label(self) -> str:
        return split_mod.label_of(self.name, self.split)

    @property
    def outer(self) -> bool:
        return self.name in split_mod.OUTER_SYNC

    def overrides(self) -> list[str]:
        """The `hetbench run` / `hetbench predict` overrides that make this variant, steps too."""
        return self.strategy_overrides() + [f"train.warmup_steps={self.warmup_steps}",
                                            f"train.steps={self.steps}"]

    def strategy_overrides(self) -> list[str]:
        """The overrides that choose the strategy and its knobs (what a user would change)."""
        out = [f"strategy={self.name}"]
        if self.split != split_mod.preset_split(self.name):
            out.append(f"strategy.split={self.split}")
        out.append(f"strategy.bucket_cap_mb={self.bucket_cap_mb:g}")
        if self.outer:
            out.append(f"strategy.sync_every={self.sync_every}")
        if self.name == "powersgd":
            out.append(f"strategy.powersgd_rank={self.powersgd_rank}")
        return out

    def knobs(self) -> dict:
        """The knobs that apply to this strategy (H and rank only where they mean something)."""
        out = {"split": self.split, "bucket_cap_mb": self.bucket_cap_mb}
        if self.outer:
            out["sync_every"] = self.sync_every
        if self.name == "powersgd":
            out["powersgd_rank"] = self.powersgd_rank
        return out


def variant_of(cfg, **changes) -> Variant:
    """cfg's own strategy as a Variant, with `changes` applied."""
    st, t = cfg.strategy, cfg.train
    own = Variant(str(st.name), split_mod.split_of(st.name, st.get("split")),
                  float(st.bucket_cap_mb), int(st.sync_every), int(st.powersgd_rank),
                  int(t.warmup_steps), int(t.steps))
    return replace(own, **changes)


class Predictor:
    """predict(variant) for variants of one base config (as bench.predict.predict would)."""

    def __init__(self, cfg, fleet_job: bool = True):
        """fleet_job: predict a real fleet's job (bench.predict.as_fleet_job), not cfg's own
        stack (a finished run's remedy line keeps the run's)."""
        self.cfg = copy.deepcopy(cfg)
        if fleet_job:
            as_fleet_job(self.cfg)
        self.world_size = self.cfg.predict.world_size
        self._fleets: dict = {}
        self._handovers: dict = {}  # per fleet: the slowest hand-overs its timelines share
        self._plans: dict = {}
        self._links = links_of(self.cfg, fleet_mod.scaled_counts(self.cfg, self.world_size))

    def configured(self, v: Variant):
        """The private config set to variant v (valid until the next call)."""
        st, t = self.cfg.strategy, self.cfg.train
        st.name, st.split, st.bucket_cap_mb = v.name, v.split, v.bucket_cap_mb
        st.sync_every, st.powersgd_rank = v.sync_every, v.powersgd_rank
        t.warmup_steps, t.steps = v.warmup_steps, v.steps
        return self.cfg

    def predict(self, v: Variant) -> dict:
        cfg = self.configured(v)
        scope = (split_mod.is_balanced(cfg.strategy), v.outer)
        if scope not in self._fleets:
            self._fleets[scope] = fleet_mod.build(cfg, self.world_size)
            self._handovers[scope] = {}
        key = (v.name, v.bucket_cap_mb, v.powersgd_rank)  # what decides the buckets' bytes
        if key not in self._plans:
            self._plans[key] = exchange_mod.build(cfg)
        plan = replace(self._plans[key], name=split_mod.label(cfg.strategy),
                       sync_every=v.sync_every)
        return predict_with(cfg, self._fleets[scope], self._links, plan, self._handovers[scope])
