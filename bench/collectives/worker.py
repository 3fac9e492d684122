"""torchrun entry of the collective benchmark:
`torchrun ... -m bench.collectives.worker [options] [overrides...]`.

Every rank composes the same config and parses the same plan, joins the process group (its
timeout, dist.timeout_s, bounds every collective, so a dead or hung rank fails the run instead of
hanging it), measures, and rank 0 prints the table as it goes and writes collectives.json after
every block, with its status, on every path. Exit status: 0 ok, 1 failed, 2 bad input."""
from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path

from bench import config as config_mod
from bench import dist as dist_mod
from bench.collectives import options


def _exit_on_sigterm(signum, _frame):
    # torchrun stops the surviving ranks with SIGTERM when one fails: unwind through `finally`.
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    args = options.parser().parse_intermixed_args(argv)
    try:
        cfg = config_mod.compose(args.overrides)
        config_mod.validate(cfg, launched_world_size=dist_mod.env_world_size())
        plan = options.plan_from_args(args)
    except config_mod.ConfigError as err:
        print(f"hetbench: error: {err}", file=sys.stderr)
        return 2
    env = dist_mod.init(cfg)
    reports, ok = [], False  # the report, once set up: it must hear how the run ended
    try:
        _measure(cfg, env, plan, reports)
        ok = True
    except BaseException as exc:  # noqa: BLE001 - record any failure, then leave the group
        if not isinstance(exc, SystemExit):
            traceback.print_exc()
        error = f"rank {env.rank}: {type(exc).__name__}: {exc}"
        print(f"hetbench: {error}", file=sys.stderr, flush=True)
        for report in reports:
            report.finish("failed", error)
    finally:
        dist_mod.teardown(ok)
    return 0 if ok else 1


def _measure(cfg, env, plan, reports: list) -> None:
    from bench.collectives.report import Report
    from bench.collectives.runner import Runner
    from bench.worker import resolve_run_id  # torch-heavy imports after validation

    if env.device.type == "cpu":
        dist_mod.set_cpu_threads(cfg.train.threads_per_rank, env.local_world_size)
    run_id = resolve_run_id(cfg)
    run_dir = Path(os.environ.get("HETBENCH_RUN_DIR") or Path(cfg.out_root) / run_id)
    offsets = dist_mod.measure_clock_offsets(env)
    runner = Runner(cfg, env, plan, offsets[env.rank]["offset_s"])
    reports.append(Report(cfg, env, plan, runner, run_dir, run_id, _hosts(env)))
    runner.run(reports[0])
    reports[0].finish("ok")


def _hosts(env) -> list[str]:
    import torch.distributed as dist

    hosts = [None] * env.world_size
    dist.all_gather_object(hosts, env.host)
    return hosts


if __name__ == "__main__":
    from bench.train import exit_now  # skips the finalization where Gloo can abort

    exit_now(main(sys.argv[1:]))
