"""torchrun worker entry: `torchrun ... -m bench.train [overrides...]`.

Every rank composes the same config, joins the process group, runs, and on every path writes
what it measured and leaves the group. Exit status: 0 ok, 1 failed, 2 bad input.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path

from bench import config as config_mod
from bench import dist as dist_mod


def _exit_on_sigterm(signum, _frame):
    # torchrun stops the surviving ranks with SIGTERM when one fails: unwind through `finally`
    # so that this rank's records reach the disk.
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        cfg = config_mod.compose(argv)
        config_mod.validate(cfg, launched_world_size=dist_mod.env_world_size())
    except config_mod.ConfigError as err:
        print(f"hetbench: error: {err}", file=sys.stderr)
        return 2
    from bench.worker import RankRun, resolve_run_id  # torch-heavy imports after validation

    env = dist_mod.init(cfg)
    run, ok, error = None, False, None
    try:
        dist_mod.set_cpu_threads(cfg.train.threads_per_rank, env.local_world_size) \
            if env.device.type == "cpu" else None
        run_id = resolve_run_id(cfg)
        run_dir = Path(os.environ.get("HETBENCH_RUN_DIR") or Path(cfg.out_root) / run_id)
        run = RankRun(cfg, env, run_dir, run_id,
                      calibrate_only=bool(os.environ.get("HETBENCH_CALIBRATE_ONLY")))
        run.setup()
        run.train()
        ok = True
    except BaseException as exc:  # noqa: BLE001 - record any failure, then re-raise below
        error = f"rank {env.rank}: {type(exc).__name__}: {exc}"
        if not isinstance(exc, SystemExit):
            traceback.print_exc()
        print(f"hetbench: {error}", file=sys.stderr, flush=True)
    finally:
        if run is not None:
            run.close(ok, error)
        dist_mod.teardown(ok)
    return 0 if ok else 1


def _exit_now(code: int) -> None:
    # Everything is on disk and the group is destroyed. Skip interpreter finalization, where
    # Gloo's C++ worker threads can still hold Python objects and abort the process (SIGABRT),
    # which would turn a good run into a failed one.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main(sys.argv[1:]))
