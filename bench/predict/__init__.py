"""`hetbench predict`: a run's summary numbers computed from the models instead of measured, for
any number of ranks. It is the emulator without processes: the same device model
(bench.costs.device_times, bench.costs.devices), the same link model (bench.costs.links), the same
bucket schedule and strategy routes, the same summary formulas (bench.results.metrics), on classes of
identical ranks, plus what no 4-rank emulation can show: the slowest of W ranks as an order
statistic (bench.predict.noise).

  fleet.py      classes of ranks and their device times
  exchange.py   what a strategy sends per bucket and per outer sync
  noise.py      per-rank variation and the expected slowest rank
  timeline.py   the step schedule the emulator enforces
  summary.py    summary.json's numbers for the predicted steps
  run.py        --from: re-predict a finished run, side by side with what it measured
  remedy.py     every strategy x split predicted on a run's config: the run's remedy line
  scale.py      -m: sweeps of predictions, their plots and findings
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.costs import device_times, topology
from bench.costs import links as links_mod
from bench.costs.links import LinkModel, link_of
from bench.errors import ConfigError
from bench.predict import exchange as exchange_mod
from bench.predict import fleet as fleet_mod
from bench.predict import noise as noise_mod
from bench.predict.summary import summarize
from bench.predict.timeline import Timeline

SCHEMA_VERSION = 1


def noise_of(cfg) -> noise_mod.Noise:
    p = cfg.predict
    samples = noise_mod.from_run(Path(p.noise_from)) if p.noise_from else None
    return noise_mod.Noise(float(p.jitter_pct), float(p.straggler_rate), float(p.straggler_ms),
                           samples)


def links_of(cfg, counts: list[int] | None = None) -> LinkModel:
    """The link model of the configured topology, group counts scaled to `counts`."""
    intra, inter = link_of(cfg.network.intra_site), link_of(cfg.network.inter_site)
    if cfg.predict.links_from:  # fitted on real hardware by `hetbench collectives`
        intra, inter = _fitted_links(cfg.predict.links_from)
    if cfg.emulation.network == "off":  # the emulator then injects nothing: neither do we
        sites = topology.build(cfg, counts).sites_per_rank()
        return LinkModel(topology.flat(sites, topology.IDEAL, topology.IDEAL), cfg.train.seed)
    return links_mod.of_config(cfg, topology.build(cfg, counts, intra, inter))


def _fitted_links(path: str):
    from bench.collectives import load_links

    try:
        return load_links(path)
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError("predict.links_from", path, f"cannot read a fit from it ({err}); point "
                          "it at the collectives.json of `hetbench collectives`") from None


def as_fleet_job(cfg):
    """A prediction stands for a real fleet's job: the fused stack unless emulation.stack names
    one (`--from` keeps the run's own, so that it re-predicts what was emulated)."""
    if str(cfg.emulation.stack) == "auto":
        cfg.emulation.stack = "fused"
    return cfg


def predict(cfg, world_size: int | None = None) -> dict:
    """The prediction for a composed config (cfg.predict.world_size unless given)."""
    fleet = fleet_mod.build(cfg, world_size or cfg.predict.world_size)
    links = links_of(cfg, fleet_mod.scaled_counts(cfg, world_size or cfg.predict.world_size))
    return predict_with(cfg, fleet, links, exchange_mod.build(cfg))


def predict_with(cfg, fleet, links: LinkModel, plan, handovers: dict | None = None) -> dict:
    """The prediction from its parts, which a search over strategies builds once and reuses
    (bench.predict.fast): the fleet depends on the split only, the links on no strategy, the
    slowest hand-overs (`handovers`, bench.predict.timeline) on the fleet and the buckets."""
    noise = noise_of(cfg)
    timeline = Timeline(fleet, plan, links, noise, int(cfg.train.log_every), handovers)
    steps = timeline.run(range(int(cfg.train.steps)))
    measured = [s for s in steps if s.step >= int(cfg.train.warmup_steps)]
    out = {"schema_version": SCHEMA_VERSION, "time_base": "device",
           "cluster": cfg.cluster.name, "network": cfg.network.name, "strategy": plan.name,
           "precision": fleet.precision, "workload": device_times.workload_shape(cfg),
           "stack": device_times.stack(cfg),
           "buckets": len(plan.plain.nbytes), "bucket_bytes": [float(b) for b in plan.plain.nbytes]}
    out.update(summarize(measured, fleet))
    out["collective"] = _collective(links, plan)
    out["straggler_cost"] = _straggler_cost(fleet, noise)
    return out


def _collective(links: LinkModel, plan) -> dict:
    """What NCCL's tuner picks for the exchange's largest bucket, and over how many nodes."""
    nbytes = float(max(plan.plain.nbytes, default=0.0))
    route = plan.plain.route
    pick = links.choice(route, nbytes)
    return {**links.describe(), "algo": pick.algo, "proto": pick.proto, "bucket_bytes": nbytes,
            "bucket_ms": links.route_ms(route, nbytes), "route": route}


def _straggler_cost(fleet, noise: noise_mod.Noise) -> dict:
    """What per-rank variation adds to the slowest rank's compute, at this world size."""
    compute = fleet.compute
    start = np.zeros(len(compute))
    slowest = noise_mod.expected_max(start, compute, fleet.count, noise, compute)
    plain = float(compute.max())
    return {"noise": noise.describe(), "slowest_compute_ms": slowest,
            "without_noise_ms": plain, "excess_ms": slowest - plain}
