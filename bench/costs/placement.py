"""Where the ranks run, decided before any rank starts: CUDA only when every local rank gets a
GPU of its own. Pure (the GPU count is an argument), so the driver, the workers and the tests
share one rule.

  train.device=auto  CUDA when GPUs >= local ranks; with fewer GPUs than ranks, but some, the
                     ranks emulate on CPU and the driver says so in one line; no GPU: CPU.
  train.device=cuda  fewer GPUs than local ranks is bad input: exit 2, naming both numbers.
  train.device=cpu   CPU.
"""
from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from typing import Optional

from bench.errors import ConfigError


@dataclass(frozen=True)
class Placement:
    device: str  # "cuda" | "cpu"
    notice: Optional[str] = None  # one line for the user when auto fell back to CPU


def place(requested: str, local_ranks: int, gpus: int) -> Placement:
    if requested == "cpu":
        return Placement("cpu")
    if gpus >= local_ranks and gpus > 0:
        return Placement("cuda")
    if requested == "cuda":
        raise ConfigError("train.device", "cuda", too_few(local_ranks, gpus))
    if gpus == 0:
        return Placement("cpu")
    return Placement("cpu", f"{local_ranks} ranks, {gpus} GPU{'s' * (gpus != 1)} visible: "
                            f"emulating on CPU (each rank needs a GPU of its own; for the GPU, "
                            f"use a cluster with at most {gpus} rank{'s' * (gpus != 1)} per "
                            "machine, or train.device=cuda to insist)")


def too_few(local_ranks: int, gpus: int) -> str:
    return (f"{local_ranks} ranks on this machine but {gpus} GPU{'s' * (gpus != 1)} visible; "
            f"use a cluster= preset with at most {gpus} rank{'s' * (gpus != 1)} per machine "
            "(e.g. cluster.groups='[{device:H100,count:1}]'), or train.device=cpu to emulate")


# Device files a GPU driver creates on Linux: NVIDIA, ROCm (torch.cuda there too), WSL.
GPU_DEVICE_FILES = ("/dev/nvidia*", "/dev/kfd", "/dev/dxg")


def visible_gpus() -> int:
    """CUDA devices this process sees (0 without CUDA). torch.cuda.device_count() asks NVML or
    the driver without creating a context, so the driver can call it before forking ranks.
    A Linux machine without any GPU driver's device file has none, and saying so does not need
    torch: importing it costs the driver ~3 s of every CPU run's start."""
    if sys.platform.startswith("linux") and not any(glob.glob(p) for p in GPU_DEVICE_FILES):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def paced(compute_mode: str, device_type: str) -> bool:
    """Whether a rank's compute is paced to its emulated device (emulation.compute): `on` always,
    `auto` on CPU ranks only (a real GPU is its own device), `off` never. Every caller asks here:
    the emulator, the workload's bytes and tokens, a sweep's shared D and `hetbench calibrate`."""
    return compute_mode == "on" or (compute_mode == "auto" and device_type == "cpu")


def of_config(cfg, local_ranks: int, gpus: Optional[int] = None) -> Placement:
    """Where this config's ranks run on this machine: `place` for train.device with
    `local_ranks` ranks here (the driver: the world size; a rank under a multi-node torchrun:
    its node's LOCAL_WORLD_SIZE) and this machine's GPUs (or `gpus`, for tests)."""
    return place(str(cfg.train.device), local_ranks, visible_gpus() if gpus is None else gpus)


def threads_per_rank(cfg, device_type: str, local_ranks: int) -> int:
    """CPU threads per rank: train.threads_per_rank, else a CPU rank's share of the cores, and 1
    for a GPU rank (torchrun's default: its host thread launches kernels; spare OpenMP threads
    would only compete with it and with the batch prefetchers)."""
    if cfg.train.threads_per_rank:
        return int(cfg.train.threads_per_rank)
    if device_type == "cuda":
        return 1
    return cpu_share(local_ranks)


def cpu_share(local_ranks: int) -> int:
    """A CPU rank's share of the cores this process may use (at least one): oversubscribed ranks
    thrash."""
    return max(1, usable_cpus() // max(1, local_ranks))


def usable_cpus() -> int:
    """The CPUs this process may run on: a Slurm job's own (task/affinity, task/cgroup), a
    container's cpuset, `taskset`'s. os.cpu_count() counts the machine's: a job given 4 of 64
    cores would start 64 threads per rank on its 4."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity API (macOS): the machine's count
        return os.cpu_count() or 1


def paced_here(cfg, local_ranks: int) -> bool:
    """Whether this config's ranks are paced when `local_ranks` of them run on this machine:
    `paced` on `of_config`'s device. `hetbench calibrate` and a sweep's shared D ask this, so
    that they agree with the ranks (on a 1-GPU machine, 4 ranks emulate on CPU: paced)."""
    return paced(str(cfg.emulation.compute), of_config(cfg, local_ranks).device)
