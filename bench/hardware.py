"""GPU catalog and device detection.

Every figure is a *dense* (no structured sparsity) peak from the vendor's datasheet, in TFLOP/s;
memory bandwidth in GB/s, memory in GB. How fast a device really runs a given model is the device
time model's business (bench.costs.devices: peak x achieved efficiency, or a launch floor), not a
ratio of datasheet peaks.

An unknown device is unknown: lookups return None and callers report null, never a guess.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class GPUSpec:
    name: str
    bf16_tflops: Optional[float]  # None where bf16 is not native
    fp16_tflops: float
    tf32_tflops: Optional[float]  # None where the device has no TF32 mode
    fp32_tflops: float
    mem_bw_gbs: float
    mem_gb: float
    bf16_native: bool
    sms: int  # streaming multiprocessors (AMD: compute units): one matmul tile each at a time

    def peak_tflops(self, dtype: str) -> Optional[float]:
        return {"bf16": self.bf16_tflops, "fp16": self.fp16_tflops,
                "tf32": self.tf32_tflops, "fp32": self.fp32_tflops}.get(dtype)


_SPECS = [
    # NVIDIA Tesla V100 SXM2 datasheet (2020): 125 TFLOPS tensor (fp16), 15.7 fp32, 900 GB/s, 32 GB.
    GPUSpec("V100", None, 125.0, None, 15.7, 900.0, 32.0, False, 80),
    # NVIDIA A100 datasheet (2021), SXM: bf16/fp16 312, tf32 156, fp32 19.5 (dense);
    # 40 GB: 1,555 GB/s; 80 GB: 2,039 GB/s.
    GPUSpec("A100-40GB", 312.0, 312.0, 156.0, 19.5, 1555.0, 40.0, True, 108),
    GPUSpec("A100-80GB", 312.0, 312.0, 156.0, 19.5, 2039.0, 80.0, True, 108),
    # NVIDIA H100 datasheet (2023): SXM bf16/fp16 989, tf32 494, fp32 67, 3.35 TB/s, 80 GB;
    # PCIe bf16/fp16 756, tf32 378, fp32 51, 2.0 TB/s, 80 GB. (Datasheet lists 2x with sparsity.)
    GPUSpec("H100-SXM", 989.0, 989.0, 494.0, 67.0, 3350.0, 80.0, True, 132),
    GPUSpec("H100-PCIe", 756.0, 756.0, 378.0, 51.0, 2000.0, 80.0, True, 114),
    # NVIDIA H200 datasheet (2024), SXM: same tensor cores as H100 SXM; 4.8 TB/s, 141 GB.
    GPUSpec("H200", 989.0, 989.0, 494.0, 67.0, 4800.0, 141.0, True, 132),
    # NVIDIA HGX B200 datasheet (2024), per GPU: bf16/fp16 2.25 PF, tf32 1.1 PF dense
    # (4.5 / 2.2 with sparsity), fp32 75; 8 TB/s, 180 GB.
    GPUSpec("B200", 2250.0, 2250.0, 1100.0, 75.0, 8000.0, 180.0, True, 148),
    # NVIDIA GB200 NVL72 datasheet (2024), per Blackwell GPU (rack / 72): bf16/fp16 2.5 PF,
    # tf32 1.25 PF dense, fp32 80; 8 TB/s, 186 GB.
    GPUSpec("GB200", 2500.0, 2500.0, 1250.0, 80.0, 8000.0, 186.0, True, 148),
    # NVIDIA L40S datasheet (2023): bf16/fp16 362, tf32 183 (dense), fp32 91.6; 864 GB/s, 48 GB.
    GPUSpec("L40S", 362.0, 362.0, 183.0, 91.6, 864.0, 48.0, True, 142),
    # AMD Instinct MI300X datasheet (2023): bf16/fp16 1307.4, tf32 653.7 (dense), fp32 163.4;
    # 5.3 TB/s, 192 GB.
    GPUSpec("MI300X", 1307.4, 1307.4, 653.7, 163.4, 5300.0, 192.0, True, 304),
]

CATALOG: dict[str, GPUSpec] = {s.name: s for s in _SPECS}

# Short names people write in configs, and strings torch.cuda.get_device_name() returns.
ALIASES = {
    "A100": "A100-80GB", "A100-SXM": "A100-80GB", "H100": "H100-SXM", "H100-SXM5": "H100-SXM",
    "H200-SXM": "H200", "B200-SXM": "B200",
}


def canonical_name(name: str) -> Optional[str]:
    """The catalog key for a config or driver device name, or None if unknown."""
    folded = {k.upper(): k for k in CATALOG}
    folded.update({alias.upper(): target for alias, target in ALIASES.items()})
    return folded.get(name.strip().upper())


def lookup(name: Optional[str]) -> Optional[GPUSpec]:
    if not name:
        return None
    key = canonical_name(name)
    return CATALOG[key] if key else None


def known_names() -> list[str]:
    return sorted(set(CATALOG) | set(ALIASES))


def match_driver_name(driver_name: str) -> Optional[str]:
    """Map torch.cuda.get_device_name() (e.g. 'NVIDIA H100 80GB HBM3') to a catalog key."""
    text = driver_name.upper()
    if "H100" in text:
        return "H100-PCIe" if "PCIE" in text else "H100-SXM"
    if "A100" in text:
        return "A100-40GB" if "40GB" in text else "A100-80GB"
    for key in ("GB200", "B200", "H200", "V100", "L40S", "MI300X"):
        if key in text:
            return key
    return None


def detect_local_device(device_type: str) -> dict:
    """What this rank really runs on: {'type', 'name', 'catalog'} (catalog None if unknown)."""
    if device_type == "cuda":
        import torch

        name = torch.cuda.get_device_name()
        return {"type": "cuda", "name": name, "catalog": match_driver_name(name)}
    import platform

    return {"type": "cpu", "name": platform.processor() or platform.machine(), "catalog": None}
