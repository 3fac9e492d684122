"""Each rank's device time per step (forward, backward, optimizer) for a config: the device
model of bench.costs.devices, with per-group overrides, or a real run directory as a profile.

A profile (`emulation.profile=runs/<id>`, bench.costs.profile) replaces the model for the
devices it measured and scales it for the others.
"""
from __future__ import annotations

from typing import Optional

from bench import hardware
from bench.costs import balance, buckets, cluster, devices, placement, split
from bench.costs.profile import load_profile


def precision(cfg) -> str:
    """The precision the device model times: emulation.precision, or train.precision where that
    is auto, resolved against the configured devices (auto: bf16 where all have it)."""
    table = cluster.rank_table(cfg)
    requested = cfg.emulation.precision
    if requested == "auto":
        requested = cfg.train.get("precision", "auto")
    return devices.fleet_precision([r["device"] for r in table], requested)


def workload_shape(cfg) -> dict:
    """The emulated workload's model and batch: emulation.workload where set, else the trained
    model's (n_layer, n_embd, vocab_size, micro_batch, seq_len)."""
    w = cfg.emulation.workload
    return {k: int(w[k]) if w[k] is not None else v for k, v in workload_shape_of_model(cfg).items()}


def workload_shape_of_model(cfg) -> dict:
    m, t = cfg.model, cfg.train
    return {"n_layer": m.n_layer, "n_embd": m.n_embd, "vocab_size": cluster.vocab_size(cfg),
            "micro_batch": t.micro_batch, "seq_len": t.seq_len}


def has_workload(cfg) -> bool:
    return any(v is not None for v in cfg.emulation.workload.values())


def workload_applies(cfg, device_type: str) -> bool:
    """Whether this rank's times, bytes and tokens are the emulated workload's: only where it is
    paced (bench.costs.placement.paced). Unpaced, a rank reports what it really trained; the
    workload still sets the balanced split, so that the same config trains the same way."""
    return has_workload(cfg) and placement.paced(str(cfg.emulation.compute), device_type)


def workload(cfg, micro_batch: int | None = None, own: bool = False) -> devices.Workload:
    """The device model's workload for one rank; `micro_batch` is the rank's real micro-batch
    (a balanced split), which scales the emulated workload's batch in proportion. `own`: the
    trained model's, whatever emulation.workload says (a real GPU times what it trains)."""
    s = workload_shape(cfg) if not own else workload_shape_of_model(cfg)
    share = (micro_batch or cfg.train.micro_batch) / cfg.train.micro_batch
    return devices.Workload(
        flops_per_token=devices.gpt_flops_per_token(s["vocab_size"], s["seq_len"], s["n_layer"],
                                                    s["n_embd"]),
        tokens=s["micro_batch"] * s["seq_len"] * share, n_layer=s["n_layer"],
        n_params=devices.gpt_params(s["vocab_size"], s["seq_len"], s["n_layer"], s["n_embd"]),
        precision=precision(cfg), n_embd=s["n_embd"], seq_len=s["seq_len"],
        vocab=s["vocab_size"], stack="eager" if own else stack(cfg))


def stack(cfg) -> str:
    """The kernels the device model times (emulation.stack): auto is eager for the trained model
    and fused for an emulated workload, which stands for a real fleet's job. `hetbench predict`
    sets auto to fused before it gets here (bench.predict.cli)."""
    requested = str(cfg.emulation.get("stack", "auto"))
    if requested != "auto":
        return requested
    return "fused" if has_workload(cfg) else "eager"


def bytes_scale(cfg) -> float:
    """Emulated gradient bytes per real gradient byte: the workload's parameters over the
    trained model's (1 without an emulated workload)."""
    if not has_workload(cfg):
        return 1.0
    m, t = cfg.model, cfg.train
    real = devices.gpt_params(cluster.vocab_size(cfg), t.seq_len, m.n_layer, m.n_embd)
    return workload(cfg).n_params / real


def powersgd_ratio(cfg) -> float:
    """How much better the workload compresses than the trained model under PowerSGD at
    strategy.powersgd_rank: (sent / raw elements of the workload) over the same for the trained
    model, both by torch's own compression rule (bench.costs.buckets.powersgd_sent). 1 without
    an emulated workload."""
    if not has_workload(cfg):
        return 1.0
    s, m, rank = workload_shape(cfg), cfg.model, cfg.strategy.powersgd_rank
    raw_w, sent_w = buckets.powersgd_sent(
        buckets.gpt_param_shapes(s["vocab_size"], s["seq_len"], s["n_layer"], s["n_embd"]), rank)
    raw_p, sent_p = buckets.powersgd_sent(
        buckets.gpt_param_shapes(cluster.vocab_size(cfg), cfg.train.seq_len, m.n_layer,
                                 m.n_embd), rank)
    return (sent_w / raw_w) / (sent_p / raw_p)


def tokens_scale(cfg) -> float:
    """Emulated tokens per trained token (1 without an emulated workload)."""
    s = workload_shape(cfg)
    return s["micro_batch"] * s["seq_len"] / (cfg.train.micro_batch * cfg.train.seq_len)


def micro_batches(cfg) -> list[int]:
    """Each rank's micro-batch: train.micro_batch, or with the balanced split
    (bench.costs.split) the split of each scope's batch (its ranks x micro_batch: the whole
    cluster, or a site for the outer-sync strategies) that minimises its slowest rank's modelled
    step work (compute at its batch + its optimizer step, which every rank runs on its own)."""
    mb = int(cfg.train.micro_batch)
    out = [mb] * cluster.world_size(cfg)
    if not split.is_balanced(cfg.strategy):
        return out
    work = step_work(cfg)
    sites = [row["site"] for row in cluster.rank_table(cfg)]
    for scope in split.scopes(cfg.strategy, sites):
        for rank, batch in zip(scope, balance.split_batch(len(scope) * mb,
                                                          [work[r] for r in scope])):
            out[rank] = batch
    return out


def step_work(cfg) -> list:
    """Per rank, a function: micro-batch -> its modelled step work in device ms (forward +
    backward + optimizer), what the balanced split equalises."""
    world = cluster.world_size(cfg)
    uniform = rank_times(cfg, [int(cfg.train.micro_batch)] * world)

    def time_of(rank: int):
        def at(batch: int) -> float:
            t = _rank_time(cfg, rank, batch, uniform[rank])
            return t.compute_ms + t.opt_ms
        return at

    return [time_of(r) for r in range(world)]


def _rank_time(cfg, rank: int, batch: int, at_uniform: devices.PhaseTimes) -> devices.PhaseTimes:
    """A rank's times at another micro-batch: the model, or for profiled times (measured, or the
    model scaled by a profile, at the uniform batch) those scaled by the model's own ratio
    between the two batches."""
    group = cluster.group_of(cfg, rank)
    key = hardware.canonical_name(group.device)
    model_at = devices.phase_times(key, workload(cfg, batch), efficiency=group.efficiency,
                                   floor=group.floor_ms)
    if at_uniform.source == "model":  # the plain model: time it at this batch
        return _with_speed(model_at, group)
    model_uniform = devices.phase_times(key, workload(cfg), efficiency=group.efficiency,
                                        floor=group.floor_ms)
    r = model_at.compute_ms / model_uniform.compute_ms
    return at_uniform.scaled(r, r, 1.0, at_uniform.source + f" x model batch ratio {r:.2f}")


def rank_times(cfg, batches: list[int] | None = None) -> list[devices.PhaseTimes]:
    """One PhaseTimes per rank, numbered group by group, at each rank's micro-batch (default:
    the run's split, micro_batches)."""
    world = cluster.world_size(cfg)
    uniform = int(cfg.train.micro_batch)
    batches = batches or micro_batches(cfg)
    work = workload(cfg)
    profile = load_profile(cfg.emulation.profile, cfg, work) if cfg.emulation.profile else None
    out = []
    for rank in range(world):
        group = cluster.group_of(cfg, rank)
        key = hardware.canonical_name(group.device)
        times = (profile or {}).get(key) or _modelled(key, group, work, profile)
        times = _with_speed(times, group)
        if batches[rank] != uniform:
            times = _rank_time(cfg, rank, batches[rank], times)
        out.append(times)
    return out


def _with_speed(times: devices.PhaseTimes, group) -> devices.PhaseTimes:
    speed = float(group.speed) if group.speed is not None else 1.0
    if speed == 1.0:
        return times
    return times.scaled(1 / speed, 1 / speed, 1 / speed, times.source + f" / speed {speed}")


def ideal_tokens_per_s(cfg) -> float:
    """The sum of the ranks' speeds at the uniform split: every rank trains its micro-batch alone,
    forward, backward and optimizer, with no exchange and no waiting (trained tokens per device
    second, in the workload's tokens: tokens_scale)."""
    return sum(rank_speeds(cfg))


def rank_speeds(cfg) -> list[float]:
    """Each rank's own tokens per device second at the uniform split (ideal_tokens_per_s)."""
    world = cluster.world_size(cfg)
    times = rank_times(cfg, [int(cfg.train.micro_batch)] * world)
    tokens = cfg.train.micro_batch * cfg.train.seq_len * tokens_scale(cfg)
    return [tokens / (t.compute_ms + t.opt_ms) * 1000.0 for t in times]


def _modelled(key: str, group, work, profile) -> devices.PhaseTimes:
    times = devices.phase_times(key, work, efficiency=group.efficiency, floor=group.floor_ms)
    if profile:
        fwd, bwd, opt = profile["_ratios"]
        times = times.scaled(fwd, bwd, opt, f"model scaled by profile:{profile['_name']}")
    return times


def rank_basis(cfg, real: dict, emulated_device: Optional[str], precision: str,
               device_type: str) -> dict:
    """What a rank's MFU needs, recorded in metadata ranks[]: FLOPs per token and its peak."""
    device = emulated_device or real.get("catalog")
    own = not workload_applies(cfg, device_type)
    return {"flops_per_token": workload(cfg, own=own).flops_per_token,
            "peak_tflops": devices.peak_tflops(device, precision) if device else None,
            "peak_precision": precision}
