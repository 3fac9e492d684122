"""`hetbench run` without -m: compose and validate the config (bad input exits 2 before any
process starts), make one run id, launch the ranks, and say how it ended and where it is."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from bench import config as config_mod
from bench import interrupts
from bench.costs import cluster
from bench.driver.command import new_run_id
from bench.driver.launch import launch
from bench.results import files, outroot


def summary_status(run_dir) -> str | None:
    """summary.json's status (None where there is none to read)."""
    try:
        return files.read_json(Path(run_dir) / "summary.json").get("status")
    except (OSError, ValueError):
        return None


def say_latest(run_dir: Path) -> None:
    """Point out_root/latest at the run (or sweep) just made; one line where it cannot be."""
    notice = outroot.point_latest(run_dir)
    if notice:
        print(f"hetbench: note: {notice}", flush=True)


def run_one(overrides: list[str], epilogue: Callable[[Path], list[str]] | None = None) -> int:
    """One run. `epilogue(run_dir)` gives lines to print under a finished run's headline (the
    CLI's remedy pointer: the predictor sits above the driver, which must not import it)."""
    cfg = config_mod.compose(overrides)  # raises ConfigError before any process starts
    config_mod.validate_devices(cfg)
    run_id = cfg.run_id or new_run_id()
    run_dir = Path(cfg.out_root) / run_id
    print(f"hetbench: run {run_id}: {cluster.world_size(cfg)} ranks "
          f"({cfg.cluster.name} over {cfg.network.name}), {cfg.train.steps} steps -> {run_dir}",
          flush=True)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        say_latest(run_dir)
        rc = launch(cfg, overrides, run_dir, run_id)
    except OSError as err:  # the run directory could not be made or written: nothing started
        print(f"hetbench: error: cannot write the run directory {run_dir}: {err}; free space "
              "there or set out_root= to a disk with room", file=sys.stderr, flush=True)
        return 1
    status = {0: "ok", interrupts.EXIT_INTERRUPTED: "interrupted"}.get(
        rc, f"FAILED (torchrun exit status {rc})")
    if rc == 0 and summary_status(run_dir) == "degraded":
        status = "degraded (see the line above: this machine fell behind the emulated timeline)"
    if rc == 0 and epilogue:
        for text in epilogue(run_dir):
            print(text, flush=True)
    print(f"hetbench: run {status}; results in {run_dir}\n"
          f"hetbench: make the report with: hetbench report {run_dir}", flush=True)
    return rc if rc in (0, interrupts.EXIT_INTERRUPTED) else 1
