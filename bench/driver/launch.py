"""Start one torchrun group and wait: the run directory first (config, Hydra's overrides), the
ranks in their own session (a Ctrl-C reaches the driver only, which stops them once), and a
status in the run directory however it ended."""
from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from omegaconf import OmegaConf

from bench import interrupts
from bench.costs import cluster, placement
from bench.driver.command import torchrun_command, worker_env
from bench.results.status import mark_failed, mark_status


def prepare_run_dir(cfg, run_dir: Path, overrides: list[str]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    (hydra_dir / "overrides.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(list(overrides))))


def worker_overrides(overrides: list[str]) -> list[str]:
    """What the ranks are told: the driver's overrides less the ids (they come by environment)."""
    return [o for o in overrides if not o.startswith(("run_id=", "sweep_id="))]


def launch(cfg, overrides: list[str], run_dir: Path, run_id: str, quiet: bool = False,
           command=torchrun_command, leader: bool = True, nodes: int = 1) -> int:
    """Run one experiment under torchrun; returns torchrun's exit status, or EXIT_INTERRUPTED
    after a Ctrl-C / SIGTERM (bench.interrupts: every rank stops and keeps its records).
    `command(cfg, overrides)` builds the torchrun line (bench.sweeps.slurm's for one node of
    many, with `nodes` nodes); only the leader (the first node) writes the run directory's
    config and status."""
    if command is torchrun_command:  # every rank here (a Slurm node's ranks place themselves)
        overrides = place_ranks(cfg, overrides)
    if leader:
        prepare_run_dir(cfg, run_dir, overrides)
    out = subprocess.DEVNULL if quiet else None
    with interrupts.ForwardToTorchrun() as forward:
        forward.attach(subprocess.Popen(command(cfg, worker_overrides(overrides)), stdout=out,
                                        stderr=out, env=worker_env(cfg, run_id, run_dir, nodes),
                                        start_new_session=True))
        rc = forward.proc.wait()
    if forward.signum is not None:
        if leader:
            mark_status(run_dir, "interrupted", f"interrupted by {signal.Signals(forward.signum).name}")
        return interrupts.EXIT_INTERRUPTED
    if rc != 0 and leader:
        mark_failed(run_dir, f"torchrun exited with status {rc}")
    return rc


def place_ranks(cfg, overrides: list[str], say: bool = True) -> list[str]:
    """CUDA only when every rank gets a GPU of its own (bench.costs.placement): otherwise the
    ranks emulate on CPU, the user reads one line saying so, and the workers are told (they
    would otherwise each pick CUDA and fail on a GPU that is not there)."""
    placed = placement.of_config(cfg, cluster.world_size(cfg))
    if placed.notice is None:
        return overrides
    if say:
        print(f"hetbench: {placed.notice}", flush=True)
    cfg.train.device = "cpu"
    return [*overrides, "train.device=cpu"]
