"""Typed configuration: dataclass schemas in Hydra's ConfigStore, YAML presets in configs/,
and validation that names the key, the value and the fix before any process starts."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, List, Optional

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from bench import hardware


class ConfigError(ValueError):
    """Bad user input. The message names the key, the value and the fix."""

    def __init__(self, key: str, value: Any, fix: str):
        super().__init__(f"{key}={value!r}: {fix}")
        self.key, self.value, self.fix = key, value, fix


@dataclass
class GroupConfig:
    device: str = MISSING
    """Catalog name of the emulated (or real) device, e.g. H100, B200, A100."""
    count: int = 1
    site: str = "a"
    """Ranks on the same site talk over the intra-site link, others over the inter-site link."""
    speed: Optional[float] = None
    """Throughput multiplier on the modelled device (null = 1): 0.5 takes twice the device time,
    e.g. a throttled GPU."""
    efficiency: Optional[float] = None
    """Achieved / peak FLOP/s for this group (null: the device model's default, bench/costs)."""
    floor_ms: Optional[float] = None
    """Forward + backward launch floor in device ms for this model (null: the model's default)."""


@dataclass
class ClusterConfig:
    name: str = "custom"
    groups: List[GroupConfig] = field(default_factory=list)
    """World size = sum of counts; ranks are numbered group by group."""
    world_size: Optional[int] = None
    """Optional explicit world size, checked against the groups."""


@dataclass
class LinkConfig:
    latency_ms: float = 0.0
    bandwidth_gbps: Optional[float] = None
    """Gigabits per second; null means no limit."""
    jitter_ms: float = 0.0


@dataclass
class NetworkConfig:
    name: str = "custom"
    intra_site: LinkConfig = field(default_factory=LinkConfig)
    inter_site: LinkConfig = field(default_factory=LinkConfig)


@dataclass
class EmulationConfig:
    compute: str = "auto"
    """auto: pace compute on CPU ranks, not on real GPUs; on|off to force."""
    network: str = "auto"
    """auto: inject link delay whenever a link has latency, bandwidth or jitter; off to disable."""
    calibration_steps: int = 6
    """Steps timed at start to agree on the reference compute time (not counted in warmup)."""
    reference_scale: float = 1.25
    """Headroom on the time dilation D: D = reference_scale x the smallest factor at which every
    rank's host meets D x its device time. >1 leaves room for a busy, oversubscribed core. It
    changes how long a run takes on this machine, not the device-time results."""
    time: str = "device"
    """device: report the emulated cluster's time (host ms / D) and stretch link delays by D;
    host: report this machine's wall time and inject link delays in real ms."""
    time_scale: Optional[float] = None
    """D itself (null: calibrated at start). Sweeps set it so that every point shares one D."""
    precision: str = "auto"
    """Precision the device model assumes: auto (bf16 where every device has it, else fp16),
    bf16, fp16, tf32, fp32. CPU ranks compute in fp32 whatever this says."""
    profile: Optional[str] = None
    """A finished run directory of the same model and batch whose measured per-device times
    replace the device model (and calibrate it for the devices that run did not have)."""


@dataclass
class ModelConfig:
    name: str = "tiny"
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128


@dataclass
class DataConfig:
    kind: str = "markov"
    """markov: seeded sparse Markov chain with an exact entropy floor; text: a UTF-8 file, bytes."""
    vocab_size: int = 256
    branching: int = 4
    """Successors per state in the Markov chain. The chain also restarts uniformly 5% of the time,
    so the floor is about log(branching) or less, plus at most H(0.05) + 0.05 * log(vocab_size)."""
    path: Optional[str] = None


@dataclass
class StrategyConfig:
    name: str = "ddp"
    bucket_cap_mb: float = 25.0


@dataclass
class TrainConfig:
    steps: int = 200
    warmup_steps: int = 20
    micro_batch: int = 8
    seq_len: int = 128
    seed: int = 0
    log_every: int = 10
    lr: float = 3e-3
    device: str = "auto"
    """auto: cuda if available, else cpu."""
    threads_per_rank: Optional[int] = None
    """CPU threads per rank (default: cores // local ranks, at least 1)."""


@dataclass
class FaultConfig:
    kind: str = MISSING
    """slow | crash | hang"""
    rank: int = MISSING
    start_step: int = 0
    end_step: Optional[int] = None
    """Exclusive; null = until the end (slow only)."""
    ms: float = 0.0
    """Extra compute per step for slow faults."""


@dataclass
class DistConfig:
    timeout_s: float = 120.0
    backend: str = "auto"
    """auto: nccl on cuda, gloo on cpu."""


@dataclass
class WandbConfig:
    mode: str = "offline"
    project: str = "hetbench"
    entity: Optional[str] = None
    group: Optional[str] = None


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class HetbenchConfig:
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    emulation: EmulationConfig = field(default_factory=EmulationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    faults: List[FaultConfig] = field(default_factory=list)
    dist: DistConfig = field(default_factory=DistConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    straggler_threshold: float = 0.75
    out_root: str = "runs"
    run_id: Optional[str] = None
    """Set by the driver (or HETBENCH_RUN_ID / TORCHELASTIC_RUN_ID); never from the clock on ranks."""
    sweep_id: Optional[str] = None
    """Names the sweep directory of a multirun; reuse it to resume a sweep."""


def _register() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="hetbench_schema", node=HetbenchConfig)


def config_dir() -> Path:
    """configs/ beside the package (a source checkout or an editable install)."""
    env = os.environ.get("HETBENCH_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "configs"
    if not (path / "config.yaml").exists():
        raise ConfigError("HETBENCH_CONFIG_DIR", str(path),
                          "point it at hetbench's configs/ folder, or install with `pip install -e .`")
    return path


def compose(overrides: list[str]) -> DictConfig:
    """Compose configs/config.yaml with Hydra overrides; raises ConfigError on bad input."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    _register()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError("overrides", " ".join(overrides), _hydra_fix(err)) from None
    validate(cfg)
    return cfg


def _hydra_fix(err: Exception) -> str:
    text = str(err).strip().replace("\n\n", "\n")
    if err.__cause__ is not None:
        # Hydra's own line hides the reason ("Error merging override ...") or suggests `+key=...`,
        # which would add a misspelt key: show the first line of the underlying error instead.
        text = text.splitlines()[0] + "\n" + str(err.__cause__).strip().splitlines()[0]
    return text + "\n(see `hetbench run --help` and configs/ for the known groups and keys)"


def world_size(cfg: DictConfig) -> int:
    return sum(int(g.count) for g in cfg.cluster.groups)


def rank_table(cfg: DictConfig) -> list[dict]:
    """One entry per rank, numbered group by group: device (catalog key), site."""
    table = []
    for group in cfg.cluster.groups:
        key = hardware.canonical_name(group.device)
        for _ in range(int(group.count)):
            table.append({"rank": len(table), "device": key, "site": str(group.site)})
    return table


def vocab_size(cfg: DictConfig) -> int:
    """Tokens the model embeds: 256 bytes for text, else the Markov chain's vocabulary."""
    return 256 if cfg.data.kind == "text" else int(cfg.data.vocab_size)


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


# ---------------------------------------------------------------------------------------------
# Validation: one ConfigError per bad value, with the fix.


def validate(cfg: DictConfig, launched_world_size: Optional[int] = None) -> None:
    _validate_known_keys(cfg, "")
    _validate_cluster(cfg, launched_world_size)
    _validate_network(cfg)
    _validate_train(cfg)
    _validate_choices(cfg)
    _validate_faults(cfg)
    _validate_emulation(cfg)


def _validate_known_keys(node: Any, prefix: str) -> None:
    """A key added with `+key=...` that no schema declares is a typo: nothing would read it."""
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _validate_known_keys(item, f"{prefix}[{i}]")
        return
    if not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    known = [f.name for f in fields(schema)] if is_dataclass(schema) else None
    for key in node.keys():
        path = f"{prefix}.{key}" if prefix else str(key)
        if known is not None and key not in known:
            raise ConfigError(path, node[key],
                              "unknown key (misspelt?); known keys here: " + ", ".join(known))
        _validate_known_keys(node[key], path)


def validate_devices(cfg: DictConfig) -> None:
    """Checks that need torch (the driver calls this before starting torchrun)."""
    import torch

    cuda = torch.cuda.is_available()
    if cfg.train.device == "cuda" and not cuda:
        raise ConfigError("train.device", "cuda", "no CUDA device is visible here; use "
                          "train.device=cpu (or auto) to emulate the cluster on CPU ranks")
    uses_cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and cuda)
    if cfg.dist.backend == "nccl" and not uses_cuda:
        raise ConfigError("dist.backend", "nccl", "NCCL needs CUDA devices; use dist.backend=gloo "
                          "(or auto) for CPU ranks")


def _validate_cluster(cfg: DictConfig, launched: Optional[int]) -> None:
    groups = cfg.cluster.groups
    if not groups:
        raise ConfigError("cluster.groups", [], "list at least one {device, count, site} group")
    for i, group in enumerate(groups):
        if hardware.canonical_name(group.device) is None:
            raise ConfigError(f"cluster.groups[{i}].device", group.device,
                              "unknown device; known: " + ", ".join(hardware.known_names()))
        if group.count < 1:
            raise ConfigError(f"cluster.groups[{i}].count", group.count, "use a count of 1 or more")
        for key in ("speed", "floor_ms"):
            if group[key] is not None and group[key] <= 0:
                raise ConfigError(f"cluster.groups[{i}].{key}", group[key], "use a positive number or null")
        if group.efficiency is not None and not 0 < group.efficiency <= 1:
            raise ConfigError(f"cluster.groups[{i}].efficiency", group.efficiency,
                              "use achieved / peak FLOP/s, in (0, 1], or null for the default")
    total = world_size(cfg)
    arithmetic = " + ".join(f"{g.count} ({g.device})" for g in groups) + f" = {total}"
    declared = cfg.cluster.world_size
    if declared is not None and declared != total:
        raise ConfigError("cluster.world_size", declared,
                          f"the groups add up to {arithmetic}; make them agree")
    if launched is not None and launched != total:
        raise ConfigError("cluster.groups", arithmetic,
                          f"torchrun started {launched} ranks (WORLD_SIZE); launch with "
                          f"--nproc-per-node/--nnodes giving {total} ranks, or change the groups")


def _validate_network(cfg: DictConfig) -> None:
    for link in ("intra_site", "inter_site"):
        spec = cfg.network[link]
        for key in ("latency_ms", "jitter_ms"):
            if spec[key] < 0:
                raise ConfigError(f"network.{link}.{key}", spec[key], "use 0 or a positive number")
        if spec.bandwidth_gbps is not None and spec.bandwidth_gbps <= 0:
            raise ConfigError(f"network.{link}.bandwidth_gbps", spec.bandwidth_gbps,
                              "use a positive number, or null for no limit")


def _validate_train(cfg: DictConfig) -> None:
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
    if cfg.dist.timeout_s <= 0:
        raise ConfigError("dist.timeout_s", cfg.dist.timeout_s, "use a positive number of seconds")
    if cfg.emulation.calibration_steps < 1:
        raise ConfigError("emulation.calibration_steps", cfg.emulation.calibration_steps, "use 1 or more")
    if cfg.model.n_embd % cfg.model.n_head:
        raise ConfigError("model.n_head", cfg.model.n_head,
                          f"must divide model.n_embd ({cfg.model.n_embd})")
    for key in ("vocab_size", "branching"):
        if cfg.data[key] <= 0:
            raise ConfigError(f"data.{key}", cfg.data[key], "use a positive integer")
    if cfg.data.kind == "text" and not cfg.data.path:
        raise ConfigError("data.path", None, "set data.path to a UTF-8 text file for data.kind=text")
    if cfg.data.kind == "text" and not Path(cfg.data.path).is_file():
        raise ConfigError("data.path", cfg.data.path,
                          f"no such file (from {os.getcwd()}); point it at a UTF-8 text file")
    if cfg.data.kind == "text" and Path(cfg.data.path).stat().st_size < max(1024, t.seq_len + 2):
        raise ConfigError("data.path", cfg.data.path, f"the file is too short; use at least "
                          f"{max(1024, t.seq_len + 2)} bytes of text (1 KiB, and train.seq_len + 2)")


def _validate_choices(cfg: DictConfig) -> None:
    choices = {
        "emulation.compute": (cfg.emulation.compute, ("auto", "on", "off")),
        "emulation.network": (cfg.emulation.network, ("auto", "off")),
        "emulation.time": (cfg.emulation.time, ("device", "host")),
        "emulation.precision": (cfg.emulation.precision, ("auto", "bf16", "fp16", "tf32", "fp32")),
        "train.device": (cfg.train.device, ("auto", "cpu", "cuda")),
        "dist.backend": (cfg.dist.backend, ("auto", "gloo", "nccl")),
        "data.kind": (cfg.data.kind, ("markov", "text")),
        "logger.wandb.mode": (cfg.logger.wandb.mode, ("offline", "online", "disabled")),
        "strategy.name": (cfg.strategy.name, ("ddp",)),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise ConfigError(key, value, "use one of: " + ", ".join(allowed))


def _validate_faults(cfg: DictConfig) -> None:
    size = world_size(cfg)
    for i, fault in enumerate(cfg.faults):
        if fault.kind not in ("slow", "crash", "hang"):
            raise ConfigError(f"faults[{i}].kind", fault.kind, "use slow, crash or hang")
        if not 0 <= fault.rank < size:
            raise ConfigError(f"faults[{i}].rank", fault.rank,
                              f"the cluster has ranks 0..{size - 1}; aim the fault at one of them")
        if fault.kind == "slow" and fault.ms <= 0:
            raise ConfigError(f"faults[{i}].ms", fault.ms, "a slow fault needs ms > 0")
        if fault.end_step is not None and fault.end_step <= fault.start_step:
            raise ConfigError(f"faults[{i}].end_step", fault.end_step,
                              f"must be after start_step ({fault.start_step}), or null")


def _validate_emulation(cfg: DictConfig) -> None:
    e = cfg.emulation
    if e.reference_scale <= 0:
        raise ConfigError("emulation.reference_scale", e.reference_scale,
                          "use a positive headroom factor (1.25 is the default)")
    if e.time_scale is not None and e.time_scale < 1:
        raise ConfigError("emulation.time_scale", e.time_scale,
                          "use 1 or more (device time is never faster than this machine), or null "
                          "to calibrate it")
    if e.precision != "auto":
        for i, group in enumerate(cfg.cluster.groups):
            spec = hardware.lookup(group.device)
            if spec.peak_tflops(e.precision) is None:
                raise ConfigError("emulation.precision", e.precision,
                                  f"cluster.groups[{i}] ({spec.name}) has no {e.precision}; use auto "
                                  "or a precision every device supports (fp16, fp32)")
    if e.profile:
        from bench import device_times

        device_times.load_profile(e.profile, cfg, device_times.workload(cfg))
