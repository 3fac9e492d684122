"""Device time model: how long one training step's forward, backward and optimizer take on an
emulated device, for the configured model, micro-batch, sequence length, precision and stack.

Per phase, every operator of the step (bench.costs.kernels: matmuls, attention, memory-bound
work, for the eager or the fused stack) is timed by a roofline on the device
(bench.costs.roofline), and the host's time to dispatch them is its own cost:

    t_phase = (host^3 + device^3)^(1/3)
    host    = dispatches x host cost per dispatch (+ autocast casts x their cost)
    device  = sum over the phase's ops of their roofline time

Not a sum: eager PyTorch launches asynchronously, so launching and computing overlap and a
phase takes about the longer of the two (bench.costs.roofline.combine says why p = 3). A small
model is launch-bound: its time is the host's, the same on every GPU.

Optimizer (memory-bound: AdamW reads params, grads and both moments and writes three back):

    t_opt = max(measured floor, params x 28 bytes / (HBM bandwidth x 0.8))

Not modelled: clocks and thermals beyond one sustained factor per generation, torch.compile
(train.compile=true times as eager: model it from a profile), CPU-side data loading, and kernels
neither stack has. docs/device_model.md has the sources and the error on every calibration point.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Optional

from bench import hardware
from bench.costs import buckets, kernels, roofline
from bench.costs.kernels import STACKS  # noqa: F401 (re-exported)

PRECISIONS = ("bf16", "fp16", "tf32", "fp32")


@dataclass(frozen=True)
class Workload:
    """One rank's step, as the device model sees it."""
    flops_per_token: float  # training FLOPs (forward + backward) per token
    tokens: int  # micro_batch * seq_len
    n_layer: int
    n_params: int  # every parameter (optimizer state)
    precision: str
    n_embd: int
    seq_len: int
    vocab: int
    stack: str = "eager"

    @property
    def flops(self) -> float:
        return self.flops_per_token * self.tokens

    def shape(self) -> kernels.Shape:
        return kernels.Shape(self.n_layer, self.n_embd, self.vocab, self.seq_len,
                             self.tokens / self.seq_len)


@dataclass(frozen=True)
class PhaseTimes:
    """Device milliseconds of one step's phases on one device."""
    fwd_ms: float
    bwd_ms: float
    opt_ms: float
    regime: str  # "launch-bound" | "compute-bound" | "profile"
    source: str  # "model" | "profile:<run>" | "model scaled by profile:<run>"
    stack: str = "eager"  # which kernels the model timed (bench.costs.kernels)
    launch_ms_range: Optional[tuple] = None  # forward + backward host time, fastest-slowest host

    @property
    def compute_ms(self) -> float:
        return self.fwd_ms + self.bwd_ms

    def scaled(self, fwd: float, bwd: float, opt: float, source: str) -> "PhaseTimes":
        return replace(self, fwd_ms=self.fwd_ms * fwd, bwd_ms=self.bwd_ms * bwd,
                       opt_ms=self.opt_ms * opt, source=source)

    def as_dict(self) -> dict:
        return {"fwd_ms": self.fwd_ms, "bwd_ms": self.bwd_ms, "opt_ms": self.opt_ms,
                "compute_ms": self.compute_ms, "regime": self.regime, "source": self.source,
                "stack": self.stack, "launch_ms_range": self.launch_ms_range}


def gpt_params(vocab: int, seq_len: int, n_layer: int, n_embd: int) -> int:
    """Parameters of bench.rank.model.GPT (tied head): embeddings, blocks, final layer norm."""
    return sum(buckets.numel(s) for s in buckets.gpt_param_shapes(vocab, seq_len, n_layer, n_embd))


def gpt_flops_per_token(vocab: int, seq_len: int, n_layer: int, n_embd: int) -> float:
    """Training FLOPs per token: 6N + 6 * n_layer * seq_len * n_embd (PaLM appendix B, causal
    attention counted at half of full attention). N excludes the position embedding only: the
    tied token embedding does the work of the output layer."""
    non_embedding = gpt_params(vocab, seq_len, n_layer, n_embd) - seq_len * n_embd
    return 6 * non_embedding + 6 * n_layer * seq_len * n_embd


def peak_tflops(device: str, precision: str) -> Optional[float]:
    spec = hardware.lookup(device)
    return spec.peak_tflops(precision) if spec else None


def fleet_precision(devices: list[str], requested: str) -> str:
    """`auto`: bf16 where every device has it natively, else fp16."""
    if requested != "auto":
        return requested
    specs = [hardware.lookup(d) for d in devices]
    return "bf16" if all(s and s.bf16_native for s in specs) else "fp16"


@functools.lru_cache(maxsize=4096)  # pure; balanced splits and predictions ask it many times
def phase_times(device: str, work: Workload, efficiency: Optional[float] = None,
                floor: Optional[float] = None, speed: float = 1.0,
                cal: roofline.Calibration = roofline.CALIBRATION) -> PhaseTimes:
    """Forward, backward and optimizer device ms of one step. `efficiency` (matmul achieved /
    peak) and `floor` (forward + backward host ms) override the model; `speed` divides every
    time (0.5: twice as slow)."""
    dev = roofline.device(device, work.precision, efficiency, cal)
    ops = kernels.step_ops(work.shape(), work.precision, work.stack)
    fwd_ops = [op for op in ops if op.phase == "fwd"]
    bwd_ops = [op for op in ops if op.phase == "bwd"]
    host = [roofline.host_ms(fwd_ops, cal), roofline.host_ms(bwd_ops, cal)]
    if floor is not None:  # a given floor keeps the model's forward / backward split
        host = [floor * h / sum(host) for h in host]
    device_ms = [roofline.device_ms(fwd_ops, dev), roofline.device_ms(bwd_ops, dev)]
    fwd, bwd = (roofline.combine(h, d, cal) for h, d in zip(host, device_ms))
    regime = "launch-bound" if sum(host) >= sum(device_ms) else "compute-bound"
    spread = None if floor is not None else tuple(
        round(roofline.host_ms(ops, cal, us), 3) for us in cal.host_us_range)
    opt = roofline.optimizer_ms(dev, work.n_params, cal)
    return PhaseTimes(fwd / speed, bwd / speed, opt / speed, regime, "model", work.stack, spread)


def mfu_while_computing(device: str, work: Workload, times: PhaseTimes) -> float:
    """The model's FLOPs over its forward + backward time, as a share of the device's peak:
    what a rank paced to `times` reports as mfu_compute."""
    return work.flops / (times.compute_ms / 1e3) / (peak_tflops(device, work.precision) * 1e12)


def describe_defaults(device: str, precision: str, stack: str = "eager") -> dict:
    """What the model assumes for a device, with its sources (metadata.json emulation.device_model)."""
    key = hardware.canonical_name(device)
    dev = roofline.device(key, precision)
    cal = roofline.CALIBRATION
    return {"device": key, "precision": precision, "stack": stack,
            "peak_tflops": peak_tflops(key, precision), "gemm_efficiency": round(dev.gemm_efficiency, 4),
            "attention_efficiency": round(dev.attention_efficiency, 4),
            "efficiency_source": roofline.EFFICIENCY[key].source, "mem_gbs": dev.mem_gbs,
            "host_us_per_dispatch": cal.host_us, "host_us_range": list(cal.host_us_range),
            "opt_floor_ms": cal.opt_floor_ms}
