"""What every torchrun worker does first and last, whatever it measures (`-m bench.train`,
`-m bench.collectives.worker`): turn torchrun's SIGTERM into an unwinding exit, compose and
validate the config (bad input: exit 2), join the process group, size its CPU threads, agree on
the run id and directory, and leave without interpreter finalization."""
from __future__ import annotations

import datetime as _dt
import os
import signal
import sys
from pathlib import Path

from bench import config as config_mod
from bench.errors import EXIT_BAD_INPUT
from bench.rank import dist as dist_mod


def exit_on_sigterm(signum, _frame):
    # torchrun stops the surviving ranks with SIGTERM when one fails: unwind through `finally`
    # so that this rank's records reach the disk.
    raise SystemExit(128 + signum)


def install_sigterm() -> None:
    signal.signal(signal.SIGTERM, exit_on_sigterm)


def bad_input(err: config_mod.ConfigError) -> int:
    """One line naming the key, the value and the fix; the exit status for bad input."""
    print(f"hetbench: error: {err}", file=sys.stderr)
    return EXIT_BAD_INPUT


def compose(overrides: list[str]):
    """The validated config, or None after printing the one-line error (exit 2)."""
    try:
        cfg = config_mod.compose(overrides)
        config_mod.validate(cfg, launched_world_size=dist_mod.env_world_size())
    except config_mod.ConfigError as err:
        bad_input(err)
        return None
    return cfg


def threads(cfg, env) -> None:
    """A CPU rank's share of the cores (oversubscribed ranks thrash)."""
    if env.device.type == "cpu":
        dist_mod.set_cpu_threads(cfg.train.threads_per_rank, env.local_world_size)


def resolve_run_id(cfg) -> str:
    """From the config, HETBENCH_RUN_ID or TORCHELASTIC_RUN_ID; else rank 0 picks and shares one.
    Never from each rank's own clock: ranks would disagree."""
    run_id = cfg.run_id or os.environ.get("HETBENCH_RUN_ID") or os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id and run_id != "none":
        return run_id
    import torch.distributed as dist

    box = [_dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 10000:04d}"]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_dir_of(cfg) -> tuple[str, Path]:
    """(run id, run directory): the driver's HETBENCH_RUN_DIR, else out_root/<run id>."""
    run_id = resolve_run_id(cfg)
    return run_id, Path(os.environ.get("HETBENCH_RUN_DIR") or Path(cfg.out_root) / run_id)


def exit_now(code: int) -> None:
    # Everything is on disk and the group is destroyed. Skip interpreter finalization, where
    # Gloo's C++ worker threads can still hold Python objects and abort the process (SIGABRT),
    # which would turn a good run into a failed one.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
