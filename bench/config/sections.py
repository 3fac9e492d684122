"""Validation of the config's sections (train, data, model, strategy, faults, emulation, predict,
the kernel link): one ConfigError per bad value, naming the key, the value and the fix."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench import hardware
from bench.config.schema import STRATEGIES
from bench.costs import device_times, devices, split
from bench.costs.cluster import world_size
from bench.errors import ConfigError


def validate_predict(cfg: DictConfig) -> None:
    """`hetbench predict`'s keys (runs ignore them, but a bad value is still a typo)."""
    p = cfg.predict
    if p.world_size is not None and p.world_size < len(cfg.cluster.groups):
        raise ConfigError("predict.world_size", p.world_size,
                          f"use at least one rank per group ({len(cfg.cluster.groups)}), or null "
                          "for the cluster as configured")
    if not 0 <= p.jitter_pct < 100:
        raise ConfigError("predict.jitter_pct", p.jitter_pct, "use a percentage in [0, 100)")
    if not 0 <= p.straggler_rate <= 1:
        raise ConfigError("predict.straggler_rate", p.straggler_rate, "use a probability in [0, 1]")
    if p.straggler_ms < 0:
        raise ConfigError("predict.straggler_ms", p.straggler_ms, "use 0 or a positive delay in ms")
    if p.buckets not in ("emulated", "workload"):
        raise ConfigError("predict.buckets", p.buckets, "use emulated (what `hetbench run` sends) "
                          "or workload (the workload's own DDP buckets)")
    if p.noise_from and not (Path(p.noise_from) / "metadata.json").exists():
        raise ConfigError("predict.noise_from", p.noise_from,
                          "not a run directory (no metadata.json); point it at runs/<id>")
    if p.links_from and not Path(p.links_from).is_file():
        raise ConfigError("predict.links_from", p.links_from,
                          "no such file; point it at runs/<id>/collectives.json of `hetbench collectives`")


def validate_strategy(cfg: DictConfig) -> None:
    st = cfg.strategy
    validate_split(st)
    if st.bucket_cap_mb <= 0:
        raise ConfigError("strategy.bucket_cap_mb", st.bucket_cap_mb, "use a positive size in MB (25 is DDP's)")
    if st.sync_every < 1:
        raise ConfigError("strategy.sync_every", st.sync_every,
                          "use 1 or more inner steps between syncs (DiLoCo uses hundreds)")
    if st.outer_lr <= 0:
        raise ConfigError("strategy.outer_lr", st.outer_lr, "use a positive learning rate (0.7 for diloco)")
    if not 0 <= st.outer_momentum < 1:
        raise ConfigError("strategy.outer_momentum", st.outer_momentum, "use 0 <= momentum < 1 (0.9)")
    if st.powersgd_rank < 1:
        raise ConfigError("strategy.powersgd_rank", st.powersgd_rank, "use a rank of 1 or more (4)")
    if st.powersgd_start_step < 2:
        raise ConfigError("strategy.powersgd_start_step", st.powersgd_start_step,
                          "use 2 or more: torch's PowerSGD with error feedback needs one plain step")


def validate_split(st) -> None:
    if st.split is not None and st.split not in split.SPLITS:
        raise ConfigError("strategy.split", st.split,
                          "use uniform or balanced (e.g. strategy=diloco strategy.split=balanced)")
    if st.name == split.BALANCED_PRESET and split.split_of(st.name, st.split) != "balanced":
        raise ConfigError("strategy.split", st.split, "strategy=balanced is ddp with the balanced "
                          "split; for ddp's uniform split use strategy=ddp")


def validate_workload(cfg: DictConfig) -> None:
    w = cfg.emulation.workload
    for key in ("n_layer", "n_embd", "vocab_size", "micro_batch", "seq_len"):
        if w[key] is not None and w[key] <= 0:
            raise ConfigError(f"emulation.workload.{key}", w[key], "use a positive integer, or null "
                              "for the trained model's")
    if cfg.emulation.profile and any(v is not None for v in w.values()):
        raise ConfigError("emulation.profile", cfg.emulation.profile,
                          "a profile times the trained model, an emulated workload another one: "
                          "set one of emulation.profile and emulation.workload, not both")


def validate_train(cfg: DictConfig) -> None:
    t = cfg.train
    positive = {"steps": t.steps, "micro_batch": t.micro_batch, "seq_len": t.seq_len,
                "log_every": t.log_every}
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"train.{key}", value, "use a positive integer")
    if t.warmup_steps < 0 or t.warmup_steps >= t.steps:
        raise ConfigError("train.warmup_steps", t.warmup_steps,
                          f"use 0 <= warmup_steps < train.steps ({t.steps}): warmup steps are "
                          "excluded from every statistic, so some steps must remain")
    if not 0 < cfg.dist.timeout_s <= MAX_TIMEOUT_S:
        raise ConfigError("dist.timeout_s", cfg.dist.timeout_s,
                          f"use a positive number of seconds, at most {MAX_TIMEOUT_S:.0f} (a week)")
    if t.seed < 0:
        raise ConfigError("train.seed", t.seed, "use 0 or a positive integer (numpy's seeds)")
    if t.lr <= 0:
        raise ConfigError("train.lr", t.lr, "use a positive learning rate (3e-3 is the default)")
    if t.threads_per_rank is not None and t.threads_per_rank < 1:
        raise ConfigError("train.threads_per_rank", t.threads_per_rank,
                          "use 1 or more threads, or null for cores // ranks")
    if not 0 < cfg.straggler_threshold <= 1:
        raise ConfigError("straggler_threshold", cfg.straggler_threshold,
                          "use a share in (0, 1]: a rank is flagged under threshold x the score "
                          "its device should reach (0.75 is the default)")
    validate_model(cfg)
    if cfg.emulation.calibration_steps < 1:
        raise ConfigError("emulation.calibration_steps", cfg.emulation.calibration_steps, "use 1 or more")
    if cfg.model.n_embd % cfg.model.n_head:  # positive: _validate_model ran first
        raise ConfigError("model.n_head", cfg.model.n_head,
                          f"must divide model.n_embd ({cfg.model.n_embd})")
    validate_data(cfg)


MAX_TIMEOUT_S = 7 * 24 * 3600.0
# Every rank builds the Markov language row by row (~20 us a row) and holds its transition
# tables (24 bytes a transition, more while building); at both limits that is 10-20 s and
# ~220 MB per rank (GPT-2's 50,304 at branching 4: 1-2 s, under 50 MB).
MAX_MARKOV_VOCAB = 2**18  # above every tokenizer in use (GPT-2 50,257; Gemma 256,000)
MAX_MARKOV_TRANSITIONS = 2**22  # vocab_size x branching: GPT-2's vocabulary up to branching 83


def validate_data(cfg: DictConfig) -> None:
    d, seq_len = cfg.data, cfg.train.seq_len
    for key in ("vocab_size", "branching"):
        if d[key] <= 0:
            raise ConfigError(f"data.{key}", d[key], "use a positive integer")
    if d.kind == "markov" and d.vocab_size > MAX_MARKOV_VOCAB:
        raise ConfigError("data.vocab_size", d.vocab_size, f"use at most {MAX_MARKOV_VOCAB:,} "
                          "tokens: every rank builds the Markov language row by row")
    if d.kind == "markov" and d.vocab_size * min(d.branching, d.vocab_size) > MAX_MARKOV_TRANSITIONS:
        raise ConfigError("data.branching", d.branching, f"use at most "
                          f"{MAX_MARKOV_TRANSITIONS // d.vocab_size:,} successors per token at "
                          f"data.vocab_size={d.vocab_size} (vocab_size x branching <= "
                          f"{MAX_MARKOV_TRANSITIONS:,}: every rank holds the chain's tables)")
    if d.kind == "text" and not d.path:
        raise ConfigError("data.path", None, "set data.path to a UTF-8 text file for data.kind=text")
    if d.kind == "text" and not Path(d.path).is_file():
        raise ConfigError("data.path", d.path,
                          f"no such file (from {os.getcwd()}); point it at a UTF-8 text file")
    if d.kind == "text" and Path(d.path).stat().st_size < max(1024, seq_len + 2):
        raise ConfigError("data.path", d.path, f"the file is too short; use at least "
                          f"{max(1024, seq_len + 2)} bytes of text (1 KiB, and train.seq_len + 2)")


def validate_model(cfg: DictConfig) -> None:
    for key in ("n_layer", "n_head", "n_embd"):
        if cfg.model[key] < 1:
            raise ConfigError(f"model.{key}", cfg.model[key], "use a positive integer")


def validate_choices(cfg: DictConfig) -> None:
    choices = {
        "emulation.compute": (cfg.emulation.compute, ("auto", "on", "off")),
        "emulation.network": (cfg.emulation.network, ("auto", "off", "kernel")),
        "emulation.time": (cfg.emulation.time, ("device", "host")),
        "emulation.precision": (cfg.emulation.precision, ("auto", *devices.PRECISIONS)),
        "emulation.stack": (cfg.emulation.stack, ("auto", *devices.STACKS)),
        "emulation.rescale": (cfg.emulation.rescale, ("auto", "on", "off")),
        "emulation.lagged_steps": (cfg.emulation.lagged_steps, ("exclude", "keep")),
        "train.device": (cfg.train.device, ("auto", "cpu", "cuda")),
        "train.precision": (cfg.train.precision, ("auto", *devices.PRECISIONS)),
        "train.prefetch": (cfg.train.prefetch, ("auto", "on", "off")),
        "dist.backend": (cfg.dist.backend, ("auto", "gloo", "nccl")),
        "data.kind": (cfg.data.kind, ("markov", "text")),
        "logger.wandb.mode": (cfg.logger.wandb.mode, ("offline", "online", "disabled")),
        "strategy.name": (cfg.strategy.name, STRATEGIES),
    }
    for key, (value, allowed) in choices.items():
        if "on" in allowed and str(value) in YAML_BOOLEANS:
            value = YAML_BOOLEANS[str(value)]  # YAML reads a bare on/off as a boolean
            OmegaConf.update(cfg, key, value)
        if value not in allowed:
            raise ConfigError(key, value, "use one of: " + ", ".join(allowed))


# A bare `on` in YAML is the boolean True, which a string key receives as "True": where a key
# takes on/off, that is what the user wrote.
YAML_BOOLEANS = {"True": "on", "False": "off", "true": "on", "false": "off"}


def validate_faults(cfg: DictConfig) -> None:
    size = world_size(cfg)
    for i, fault in enumerate(cfg.faults):
        if fault.kind not in ("slow", "crash", "hang"):
            raise ConfigError(f"faults[{i}].kind", fault.kind, "use slow, crash or hang")
        if not 0 <= fault.rank < size:
            raise ConfigError(f"faults[{i}].rank", fault.rank,
                              f"the cluster has ranks 0..{size - 1}; aim the fault at one of them")
        if fault.kind == "slow" and fault.ms <= 0:
            raise ConfigError(f"faults[{i}].ms", fault.ms, "a slow fault needs ms > 0")
        if fault.start_step < 0:
            raise ConfigError(f"faults[{i}].start_step", fault.start_step, "use step 0 or later")
        if fault.end_step is not None and fault.end_step <= fault.start_step:
            raise ConfigError(f"faults[{i}].end_step", fault.end_step,
                              f"must be after start_step ({fault.start_step}), or null")


def validate_emulation(cfg: DictConfig) -> None:
    e = cfg.emulation
    validate_workload(cfg)
    if e.reference_scale <= 0:
        raise ConfigError("emulation.reference_scale", e.reference_scale,
                          "use a positive headroom factor (1.25 is the default)")
    if not 0 <= e.max_lagged_share <= 1:
        raise ConfigError("emulation.max_lagged_share", e.max_lagged_share,
                          "use a share between 0 and 1 (0.5: degraded above half)")
    if e.time_scale is not None and e.time_scale < 1:
        raise ConfigError("emulation.time_scale", e.time_scale,
                          "use 1 or more (device time is never faster than this machine), or null "
                          "to calibrate it")
    for key, wanted in (("emulation.precision", e.precision), ("train.precision", cfg.train.precision)):
        if wanted == "auto" or (key == "train.precision" and e.precision != "auto"):
            continue  # the device model times emulation.precision where that is set
        for i, group in enumerate(cfg.cluster.groups):
            spec = hardware.lookup(group.device)
            if spec.peak_tflops(wanted) is None:
                raise ConfigError(key, wanted, f"cluster.groups[{i}] ({spec.name}) has no "
                                  f"{wanted}; use auto or a precision every device supports "
                                  "(fp16, fp32)")
    if e.profile:
        device_times.load_profile(e.profile, cfg, device_times.workload(cfg))


def validate_kernel_link(cfg: DictConfig) -> None:
    """emulation.network=kernel: tbf shapes real bytes per second, so the run must be in real
    time (pacing dilates it by D) and there must be a bandwidth to shape."""
    e = cfg.emulation
    if e.network != "kernel":
        return
    if cfg.network.inter_site.bandwidth_gbps is None:
        raise ConfigError("network.inter_site.bandwidth_gbps", None,
                          "emulation.network=kernel shapes the inter-site bandwidth: set one "
                          "(e.g. network.inter_site.bandwidth_gbps=1), or use emulation.network=auto")
    if e.compute == "on" or (e.compute == "auto" and cfg.train.device != "cuda"):
        raise ConfigError("emulation.compute", e.compute,
                          "emulation.network=kernel needs real time, and compute pacing dilates "
                          "time by D (the shaped link would look D times faster): set "
                          "emulation.compute=off, or train.device=cuda")
