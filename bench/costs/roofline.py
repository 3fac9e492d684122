"""Per-operator roofline: device time of each op of bench.costs.kernels on a catalog device, and
the host's time to dispatch them.

  matmul     2MNK / (peak x gemm efficiency x wave fill)
  attention  FLOPs / (peak x attention efficiency), or its bytes / bandwidth if longer
  memory     bytes / (HBM bandwidth x MEM_EFFICIENCY)
  host       dispatches x host_us + autocast casts x cast_us  (Calibration)

Matmuls and attention use the tensor-core peak at the precision (bf16, fp16, tf32) and fp32's
CUDA-core peak in fp32. Wave fill: cuBLAS tiles the M x N output in 128 x 128 tiles, one tile
per SM at a time, so a matmul takes whole waves of `sms` tiles; when the tiles fill less than one
wave it splits K into slices of at least 256 to occupy the idle SMs (NVIDIA, "Matrix
Multiplication Background User's Guide": tile and wave quantization; split-K).

A phase combines its host and device time as their p-norm, p = 3: eager PyTorch launches
asynchronously, so the two overlap (a sum is wrong), but not perfectly where they are close (the
longer of the two, p = inf, leaves the small model in fp32 at 16 x 256 half host-bound, and the
fp32 efficiency fitted there then misses the H100 fp32 point by 18%). p was chosen among 1, 2,
3, 4, 6 and inf on the checking points (`benchmarks/device_model.py --combine`), which makes
those points a choice as well as a check; every p fits the calibration points exactly.

Each constant says where it comes from. `fitted` ones are solved by
`benchmarks/device_model.py --fit` from the calibration rows in benchmarks/data (and only those);
tests/test_device_model.py checks that the values here are what that fit gives.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from bench import hardware
from bench.costs.kernels import Op

TILE = 128  # cuBLAS's common output tile on Ampere and Hopper (NVIDIA DL performance guide)
SPLIT_K_MIN = 256  # smallest K slice split-K hands one SM (assumed: 2 x the 128-wide K step)

# Streaming kernels reach ~80% of the HBM datasheet bandwidth (assumed; not measured here).
MEM_EFFICIENCY = 0.8

OPT_BYTES_PER_PARAM = 28  # AdamW, fp32 state: read p, g, m, v (16 B), write p, m, v (12 B)


@dataclass(frozen=True)
class Calibration:
    """The fitted constants (benchmarks/device_model.py --fit solves each from its calibration
    rows, in this order; tests/test_device_model.py checks CALIBRATION against that fit)."""
    host_us: float  # host cost of one dispatched op: the tiny model, 4 x 128, 2 x 64, fp32
    host_us_range: tuple  # the same from the fastest and slowest of its three runs
    cast_us: float  # an autocast cast (C++ only, no Python): the small model, bf16, 16 x 256
    fp32_gemm: float  # fp32 matmul on CUDA cores / fp32 peak: the small model, fp32, 16 x 256
    sustained: tuple  # ((generation, factor), ...): Hopper from the small model, bf16,
    # 64 x 1024 on H200; Ampere from llm.c's A100 / H100 step ratio for GPT-2 124M
    opt_floor_ms: float = 0.67  # measured: one plain-loop fused AdamW step, small model, H200
    combine_p: float = 3.0  # a phase = p-norm of host and device time (inf: the longer)

    def sustained_for(self, generation: str) -> float:
        table = dict(self.sustained)
        return table.get(generation, table["hopper"])


CALIBRATION = Calibration(host_us=58.2, host_us_range=(47.7, 66.4), cast_us=16.1, fp32_gemm=0.716,
                          sustained=(("ampere", 0.741), ("hopper", 0.628)))

_MAMF = "MAMF (ml-engineering, Bekman): best-shape bf16 matmul / datasheet peak"
_FA2_A100 = "FlashAttention-2 (Dao 2023): 50-73% of A100 peak forward + backward; causal hdim 64 at the low end"
_FA2_H100 = "FlashAttention-2 (Dao 2023): up to 335 TFLOP/s on H100 = 0.34 of 989"


@dataclass(frozen=True)
class Efficiency:
    gemm: float  # best-shape matmul / tensor peak
    attention: float  # fused attention forward + backward / tensor peak
    generation: str  # whose sustained factor applies (Calibration.sustained): a training
    # loop's matmuls run below the best-shape benchmark (clocks under sustained power, L2 shared
    # with memory-bound kernels, shapes off the best one); generations without one: Hopper's
    source: str


EFFICIENCY: dict[str, Efficiency] = {
    "V100": Efficiency(0.859, 0.55, "ampere", "assumed as A100 (no measurement known)"),
    "A100-40GB": Efficiency(0.859, 0.55, "ampere", f"{_MAMF}: A100 SXM 267.9/312; {_FA2_A100}"),
    "A100-80GB": Efficiency(0.859, 0.55, "ampere", f"{_MAMF}: A100 SXM 267.9/312; {_FA2_A100}"),
    "H100-SXM": Efficiency(0.801, 0.34, "hopper", f"{_MAMF}: H100 SXM 792.1/989; {_FA2_H100}"),
    "H100-PCIe": Efficiency(0.801, 0.34, "hopper", "as H100 SXM (same silicon)"),
    "H200": Efficiency(0.801, 0.34, "hopper", "as H100 SXM (same tensor cores)"),
    "B200": Efficiency(0.801, 0.34, "hopper", "assumed as H100 (no measurement known)"),
    "GB200": Efficiency(0.801, 0.34, "hopper", "assumed as H100 (no measurement known)"),
    "L40S": Efficiency(0.859, 0.55, "ampere", "assumed as A100 (no measurement known)"),
    "MI300X": Efficiency(0.601, 0.34, "hopper", f"{_MAMF}: MI300X 781.9/1300; attention assumed as H100"),
}


@dataclass(frozen=True)
class Device:
    """What the roofline needs of one device at one precision."""
    name: str
    peak_tflops: float  # tensor peak at the precision; CUDA-core peak in fp32
    gemm_efficiency: float
    attention_efficiency: float
    mem_gbs: float
    sms: int


def device(name: str, precision: str, gemm_efficiency: Optional[float] = None,
           cal: Calibration = CALIBRATION) -> Device:
    """The device at a precision; `gemm_efficiency` overrides the matmul efficiency (a group's
    `efficiency`)."""
    key = hardware.canonical_name(name)
    spec = hardware.lookup(key)
    peak = spec.peak_tflops(precision) if spec else None
    if peak is None:
        raise ValueError(f"{name} has no {precision} peak in the catalog")
    eff = EFFICIENCY[key]
    if precision == "fp32":
        gemm = attention = cal.fp32_gemm
    else:
        gemm = eff.gemm * cal.sustained_for(eff.generation)
        attention = eff.attention * cal.sustained_for(eff.generation)
    return Device(key, peak, gemm_efficiency or gemm, attention, spec.mem_bw_gbs, spec.sms)


def wave_fill(dev: Device, m: float, n: float, k: float) -> float:
    """Busy share of the SMs over the matmul's waves (1: every wave full)."""
    tiles = math.ceil(m / TILE) * math.ceil(n / TILE)
    split = 1
    if tiles < dev.sms:
        split = max(1, min(dev.sms // tiles, math.ceil(k / SPLIT_K_MIN)))
    units = tiles * split
    return units / (math.ceil(units / dev.sms) * dev.sms)


def op_ms(op: Op, dev: Device) -> float:
    """Device ms of one run of the op."""
    if op.kind == "gemm":
        m, n, k = op.mnk
        rate = dev.peak_tflops * 1e12 * dev.gemm_efficiency * wave_fill(dev, m, n, k)
        return op.flops / rate * 1e3
    memory = op.nbytes / (dev.mem_gbs * 1e9 * MEM_EFFICIENCY) * 1e3
    if op.kind == "attention":
        return max(op.flops / (dev.peak_tflops * 1e12 * dev.attention_efficiency) * 1e3, memory)
    return memory


def host_ms(ops: list[Op], cal: Calibration = CALIBRATION, host_us: Optional[float] = None) -> float:
    """The host's time to dispatch the ops (`host_us`: per dispatch, default the calibration's)."""
    per = cal.host_us if host_us is None else host_us
    return sum(op.count * (op.dispatches * per + op.casts * cal.cast_us) for op in ops) / 1000.0


def device_ms(ops: list[Op], dev: Device) -> float:
    return sum(op.count * op_ms(op, dev) for op in ops)


def combine(host: float, device: float, cal: Calibration = CALIBRATION) -> float:
    """A phase's time from its host and device times: the longer (p = inf), or their p-norm."""
    if math.isinf(cal.combine_p):
        return max(host, device)
    return (host ** cal.combine_p + device ** cal.combine_p) ** (1 / cal.combine_p)


def optimizer_ms(dev: Device, n_params: float, cal: Calibration = CALIBRATION) -> float:
    memory = n_params * OPT_BYTES_PER_PARAM / (dev.mem_gbs * 1e9 * MEM_EFFICIENCY) * 1e3
    return max(cal.opt_floor_ms, memory)
