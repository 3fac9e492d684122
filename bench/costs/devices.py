"""Device time model: how long one training step's forward, backward and optimizer take on an
emulated device, for the configured model, micro-batch, sequence length and precision.

For forward and backward (FLOPs split 1:2, as a matmul's backward does twice its forward's work):

    t_phase = max(floor_phase, FLOPs_phase / (peak(device, precision) * efficiency(device)))

  FLOPs     flops_per_token * tokens, the same count as bench.rank.model (PaLM's 6N + attention)
  peak      the catalog's dense peak at the precision (bench.hardware)
  efficiency achieved / peak for this device (DEFAULTS below, each with its source)
  floor     the launch/framework floor of eager PyTorch: the host launches each layer's kernels
            one by one, and a small model's GPU work is done before the next launch arrives.
            It grows with depth (kernels per layer), not with the device: n_layer * per-layer
            floor, split 1:2 like the FLOPs. Autocast (bf16/fp16) adds cast kernels per layer.

Why max and not a sum: eager PyTorch launches asynchronously, so launching and computing
overlap and a phase takes the longer of the two. The sum cannot fit the measurements below: on
one H200 the 8-layer small model runs the same ~19 ms in bf16 at 16x256 and at 32x512 tokens
(4x the FLOPs), while the 4-layer tiny model takes ~8 ms at every shape.

Optimizer (memory-bound: AdamW reads params, grads and both moments and writes three back):

    t_opt = max(OPT_FLOOR_MS, params * 28 bytes / (memory bandwidth * MEM_EFFICIENCY))

Not modelled: kernel-level effects beyond one efficiency per device (memory-bound layers,
clocks, thermals), torch.compile / CUDA graphs (which lower the floor), fused or sharded
optimizers, and the host CPU behind each GPU (the floor assumes the measured host's speed).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from bench import hardware
from bench.costs import buckets

PRECISIONS = ("bf16", "fp16", "tf32", "fp32")

# Launch floor per transformer layer, forward + backward, eager PyTorch 2.11 on one H200
# (world size 1, measured for this project). fp32: tiny model (4 layers) micro_batch 2 x seq 64,
# forward 2.1 ms + backward 4.3 ms = 6.4 ms -> 1.6 ms a layer. bf16 autocast: tiny ~8 ms at every
# shape (2.0 a layer), small (8 layers) ~18-20 ms at 16x256 and 32x512 (2.4 a layer): 2.2 a layer
# fits both within 10%. The floor is the host's launch cost, so it is assumed the same on every
# device until a measurement says otherwise (a profile run replaces it: emulation.profile).
FLOOR_MS_PER_LAYER = {"fp32": 1.6, "tf32": 1.6, "bf16": 2.2, "fp16": 2.2}

# One plain-loop optimizer.step() on the same H200 (small model, CUDA events): 0.67 ms.
OPT_FLOOR_MS = 0.67
OPT_BYTES_PER_PARAM = 28  # AdamW, fp32 state: read p, g, m, v (16 B), write p, m, v (12 B)
MEM_EFFICIENCY = 0.8  # streaming kernels reach ~80% of HBM peak (assumed, not measured here)


@dataclass(frozen=True)
class Efficiency:
    """Achieved / peak for one device: `default`, and per precision where measured."""
    default: float
    source: str
    by_precision: tuple = ()  # ((precision, value), ...)

    def at(self, precision: str) -> float:
        return dict(self.by_precision).get(precision, self.default)


_LLMC_A100 = "llm.c / modded-nanogpt GPT-2 124M on A100: ~60% MFU"
_LLMC_H100 = "llm.c / modded-nanogpt GPT-2 124M on H100: ~40% MFU (so H100/A100 ~2.0x, not 3.17x)"
_H200_FP32 = ("fp32 measured for this project: H200, torch 2.11, small model 16x256, forward 6.6 ms, "
              "backward 12.3 ms -> 0.5 in this model")
_ASSUMED = "assumed as H100 (no small-model measurement known)"

DEFAULTS: dict[str, Efficiency] = {
    "V100": Efficiency(0.40, _ASSUMED),
    "A100-40GB": Efficiency(0.60, _LLMC_A100),
    "A100-80GB": Efficiency(0.60, _LLMC_A100),
    "H100-SXM": Efficiency(0.40, _LLMC_H100),
    "H100-PCIe": Efficiency(0.40, _LLMC_H100 + " (SXM figure)"),
    "H200": Efficiency(0.40, "bf16 as H100 (same tensor cores); " + _H200_FP32,
                       by_precision=(("fp32", 0.50),)),
    "B200": Efficiency(0.40, _ASSUMED),
    "GB200": Efficiency(0.40, _ASSUMED),
    "L40S": Efficiency(0.40, _ASSUMED),
    "MI300X": Efficiency(0.40, _ASSUMED),
}


@dataclass(frozen=True)
class Workload:
    """One rank's step, as the device model sees it."""
    flops_per_token: float  # training FLOPs (forward + backward) per token
    tokens: int  # micro_batch * seq_len
    n_layer: int
    n_params: int  # every parameter (optimizer state)
    precision: str

    @property
    def flops(self) -> float:
        return self.flops_per_token * self.tokens


@dataclass(frozen=True)
class PhaseTimes:
    """Device milliseconds of one step's phases on one device."""
    fwd_ms: float
    bwd_ms: float
    opt_ms: float
    regime: str  # "launch-bound" | "compute-bound" | "profile"
    source: str  # "model" | "profile:<run>" | "model scaled by profile:<run>"

    @property
    def compute_ms(self) -> float:
        return self.fwd_ms + self.bwd_ms

    def scaled(self, fwd: float, bwd: float, opt: float, source: str) -> "PhaseTimes":
        return replace(self, fwd_ms=self.fwd_ms * fwd, bwd_ms=self.bwd_ms * bwd,
                       opt_ms=self.opt_ms * opt, source=source)

    def as_dict(self) -> dict:
        return {"fwd_ms": self.fwd_ms, "bwd_ms": self.bwd_ms, "opt_ms": self.opt_ms,
                "compute_ms": self.compute_ms, "regime": self.regime, "source": self.source}


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


def floor_ms(work: Workload) -> float:
    return FLOOR_MS_PER_LAYER[work.precision] * work.n_layer


def optimizer_ms(device: str, work: Workload) -> float:
    spec = hardware.lookup(device)
    memory_ms = work.n_params * OPT_BYTES_PER_PARAM / (spec.mem_bw_gbs * 1e9 * MEM_EFFICIENCY) * 1e3
    return max(OPT_FLOOR_MS, memory_ms)


def phase_times(device: str, work: Workload, efficiency: Optional[float] = None,
                floor: Optional[float] = None, speed: float = 1.0) -> PhaseTimes:
    """Forward, backward and optimizer device ms of one step. `efficiency` and `floor` (ms,
    forward + backward) override the defaults; `speed` divides every time (0.5: twice as slow)."""
    key = hardware.canonical_name(device)
    peak = peak_tflops(key, work.precision)
    if peak is None:
        raise ValueError(f"{device} has no {work.precision} peak in the catalog")
    eff = efficiency if efficiency is not None else DEFAULTS[key].at(work.precision)
    floor_total = floor if floor is not None else floor_ms(work)
    compute_total = work.flops / (peak * 1e12 * eff) * 1e3
    fwd = max(floor_total / 3, compute_total / 3)
    bwd = max(floor_total * 2 / 3, compute_total * 2 / 3)
    regime = "launch-bound" if floor_total >= compute_total else "compute-bound"
    return PhaseTimes(fwd / speed, bwd / speed, optimizer_ms(key, work) / speed, regime, "model")


def describe_defaults(device: str, precision: str) -> dict:
    """What the model assumes for a device, with its sources (metadata.json emulation.device_model)."""
    key = hardware.canonical_name(device)
    eff = DEFAULTS[key]
    return {"device": key, "precision": precision, "peak_tflops": peak_tflops(key, precision),
            "efficiency": eff.at(precision), "efficiency_source": eff.source,
            "floor_ms_per_layer": FLOOR_MS_PER_LAYER[precision], "opt_floor_ms": OPT_FLOOR_MS}
