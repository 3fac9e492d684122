"""The configuration's schema: typed dataclasses in Hydra's ConfigStore (configs/config.yaml
starts from it); YAML presets in configs/ fill them. Docstrings under each field say what it means."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING

from bench.config.network import LinkConfig, NcclConfig, NetworkConfig, NodeConfig  # noqa: F401


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
    gpus_per_node: Optional[int] = None
    """GPUs per node for this group's ranks (null: the catalog's node, e.g. 8 for H100 SXM, 72
    for GB200 NVL72). Ranks of one group fill its nodes; groups never share a node."""


@dataclass
class ClusterConfig:
    name: str = "custom"
    groups: List[GroupConfig] = field(default_factory=list)
    """World size = sum of counts; ranks are numbered group by group."""
    world_size: Optional[int] = None
    """Optional explicit world size, checked against the groups."""


@dataclass
class WorkloadConfig:
    """An emulated workload: the device model times this model and batch (and link delays carry
    its gradient bytes), while the CPU ranks train the configured, smaller model as its proxy.
    Eager PyTorch runs a small model at its launch floor on every GPU, so a mixed fleet of them
    is homogeneous in time; a GPT-2-sized workload shows the mix (configs/experiment/remedies).
    Losses are the proxy's; times, bytes and tokens are the workload's."""
    n_layer: Optional[int] = None
    n_embd: Optional[int] = None
    vocab_size: Optional[int] = None
    micro_batch: Optional[int] = None
    seq_len: Optional[int] = None


@dataclass
class EmulationConfig:
    compute: str = "auto"
    """auto: pace compute on CPU ranks, not on real GPUs; on|off to force."""
    network: str = "auto"
    """auto: inject link delay whenever a link has latency, bandwidth or jitter; off to disable;
    kernel: the inter-site bandwidth is shaped by the kernel (tc tbf on each host's inter-site
    interface, bench.emulate.kernel_link) and only latency and jitter are injected. Real time
    only: needs emulation.compute=off (or real GPUs)."""
    calibration_steps: int = 6
    """Passes of each phase timed at start to agree on the time dilation D (not counted in warmup)."""
    reference_scale: float = 1.25
    """Headroom on the time dilation D: D = reference_scale x the smallest factor at which every
    rank's host meets D x its device time. >1 leaves room for a busy, oversubscribed core. It
    changes how long a run takes on this machine, not the device-time results."""
    time: str = "device"
    """device: report the emulated cluster's time (host ms / D) and stretch link delays by D;
    host: report this machine's wall time and inject link delays in real ms."""
    time_scale: Optional[float] = None
    """D itself (null: calibrated at start). Sweeps set it so that every point shares one D."""
    rescale: str = "auto"
    """When this machine falls behind the paced timeline in over 30% of a log window's steps (a
    busy host), the ranks agree on a larger D for the rest of the run (bench.emulate.lag). auto:
    where D was calibrated, not where emulation.time_scale pins it (a sweep's shared D); on:
    always; off: never."""
    lagged_steps: str = "exclude"
    """Steps in which some rank's host fell behind the timeline: exclude (statistics, flags and
    the what-if leave them out) or keep."""
    max_lagged_share: float = 0.5
    """A run in which more than this share of measured steps lagged ends `degraded` (exit 0):
    with lagged steps excluded, fewer than half of its steps are left to trust; kept, its
    numbers are the host's as much as the cluster's."""
    stack: str = "auto"
    """Which kernels the device model times (bench.costs.kernels): eager (hetbench's own loop: a
    kernel per op, autocast casts) or fused (a production stack: flash attention, fused norms and
    optimizer). auto: eager for the trained model, fused for an emulation.workload and in
    `hetbench predict`, whose numbers stand for a real fleet's job."""
    precision: str = "auto"
    """Precision the device model assumes: auto (train.precision's, resolved against the emulated
    devices: bf16 where every one has it, else fp16), bf16, fp16, tf32, fp32. CPU ranks compute
    in fp32 whatever this says."""
    profile: Optional[str] = None
    """A finished run directory of the same model and batch whose measured per-device times
    replace the device model (and calibrate it for the devices that run did not have)."""
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    """The workload the emulated devices run, where it differs from the model this machine
    trains (null fields: the trained model's). See WorkloadConfig."""


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
    """Tokens of the Markov chain (text: always 256 bytes); at most 262,144."""
    branching: int = 4
    """Successors per state in the Markov chain. The chain also restarts uniformly 5% of the time,
    so the floor is about log(branching) or less, plus at most H(0.05) + 0.05 * log(vocab_size).
    vocab_size x min(branching, vocab_size) is at most 4,194,304 (each rank holds the tables)."""
    path: Optional[str] = None


# bench.strategies implements each; configs/strategy/ has a preset per name.
STRATEGIES = ("ddp", "ddp_bf16", "powersgd", "balanced", "hierarchical", "localsgd", "diloco")


@dataclass
class StrategyConfig:
    """How the ranks exchange what they learned (bench.strategies; one preset per name)."""
    name: str = "ddp"
    split: Optional[str] = None
    """How the global batch is cut over the ranks (bench.costs.split): uniform (train.micro_batch
    each) or balanced (in proportion to speed: over every rank, or within each site for localsgd
    and diloco). Null: the preset's (balanced for strategy=balanced, else uniform)."""
    bucket_cap_mb: float = 25.0
    sync_every: int = 50
    """localsgd / diloco: inner steps between two syncs across sites (H)."""
    outer_lr: float = 0.7
    """diloco: outer Nesterov SGD learning rate on the pseudo-gradient (Douillard et al. 0.7)."""
    outer_momentum: float = 0.9
    powersgd_rank: int = 4
    """powersgd: rank of the low-rank gradient approximation (torch's matrix_approximation_rank)."""
    powersgd_start_step: int = 10
    """powersgd: plain all-reduce before this step (torch's start_powerSGD_iter, >= 2)."""


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
    """auto: cuda when every local rank gets its own GPU, else cpu (emulation, with a notice);
    cuda: fail before launch if there are fewer GPUs than local ranks."""
    precision: str = "auto"
    """What real GPUs compute in (bench.rank.precision): auto (bf16 where every rank's device has
    it, else fp16 with a gradient scaler), bf16, fp16, tf32, fp32. CPU ranks compute in fp32;
    the device model of an emulated run times this precision."""
    prefetch: str = "auto"
    """Sample and copy the next batches while the current step runs: auto (on for CUDA, off on
    CPU, where an emulated device has its batch at once anyway), on, off (bench.rank.prefetch)."""
    compile: bool = False
    """torch.compile the model (fewer, fused kernels: below eager PyTorch's launch floor)."""
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
class PredictConfig:
    """`hetbench predict` only (runs ignore it): scale, per-rank variation, fitted links."""
    world_size: Optional[int] = None
    """Scale the cluster's groups to this many ranks, in their proportions (null: as configured)."""
    jitter_pct: float = 0.0
    """Per-rank, per-step compute variation: standard deviation in % of the rank's compute."""
    straggler_rate: float = 0.0
    """Probability per rank and step of a transient slowdown of `straggler_ms`."""
    straggler_ms: float = 0.0
    noise_from: Optional[str] = None
    """A run directory whose measured per-rank compute variation replaces jitter_pct."""
    links_from: Optional[str] = None
    """A `hetbench collectives` JSON whose fitted intra/inter-site links replace network.*."""
    buckets: str = "emulated"
    """emulated: the buckets `hetbench run` of this config sends (the trained model's, scaled to
    an emulated workload); workload: the workload's own DDP buckets (a real cluster's)."""


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
    predict: PredictConfig = field(default_factory=PredictConfig)
    straggler_threshold: float = 0.75
    out_root: str = "runs"
    run_id: Optional[str] = None
    """Set by the driver (or HETBENCH_RUN_ID / TORCHELASTIC_RUN_ID); never from the clock on ranks."""
    sweep_id: Optional[str] = None
    """Names the sweep directory of a multirun; reuse it to resume a sweep."""


def register_schema() -> None:
    """hetbench_schema in Hydra's ConfigStore (configs/config.yaml starts from it)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="hetbench_schema", node=HetbenchConfig)
