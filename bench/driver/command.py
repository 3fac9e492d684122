"""The torchrun command line and the ranks' environment: one home for every launch (a run, a
calibration, `hetbench collectives`, one node of a Slurm job)."""
from __future__ import annotations

import datetime as _dt
import os
import secrets
import sys
from pathlib import Path
from typing import Optional

from bench.costs import cluster, placement

WORKER = "bench.train"  # the contract's worker entry


def new_run_id() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def torchrun(nproc_per_node: int, module: str, args: list[str], rendezvous: list[str] = ()) -> list[str]:
    """`python -m torch.distributed.run ... -m <module> <args>`: on loopback (`--standalone`)
    unless `rendezvous` names the nodes (a multi-node job's --nnodes, --node-rank, --rdzv-*)."""
    where = list(rendezvous) or ["--standalone", "--nnodes=1"]
    return [sys.executable, "-m", "torch.distributed.run", *where,
            f"--nproc-per-node={nproc_per_node}", "--max-restarts=0", "-m", module, *args]


def torchrun_command(cfg, overrides: list[str]) -> list[str]:
    """Every rank of this config on this machine, running the worker entry."""
    return torchrun(cluster.world_size(cfg), WORKER, overrides)


def worker_env(cfg, run_id: str, run_dir: Path, nodes: int = 1) -> dict:
    """The ranks' environment on this machine, which runs world // nodes of them."""
    env = dict(os.environ, HETBENCH_RUN_ID=run_id, HETBENCH_RUN_DIR=str(run_dir.resolve()))
    # OMP_NUM_THREADS also silences torchrun's warning.
    env.setdefault("OMP_NUM_THREADS", str(cpu_threads(cfg, cluster.world_size(cfg) // nodes)))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def cpu_threads(cfg, local_ranks: Optional[int] = None) -> int:
    """CPU threads per rank where `local_ranks` of `cfg`'s ranks (default: all) run here
    (bench.costs.placement)."""
    local = local_ranks or cluster.world_size(cfg)
    if cfg.train.threads_per_rank:  # skip asking for GPUs: the user said
        return int(cfg.train.threads_per_rank)
    return placement.threads_per_rank(cfg, placement.of_config(cfg, local).device, local)
