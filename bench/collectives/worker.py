"""torchrun entry of the collective benchmark:
`torchrun ... -m bench.collectives.worker [options] [overrides...]`.

Every rank composes the same config and parses the same plan, joins the process group (its
timeout, dist.timeout_s, bounds every collective, so a dead or hung rank fails the run instead of
hanging it), measures, and rank 0 prints the table as it goes and writes collectives.json after
every block, with its status, on every path. Exit status: 0 ok, 1 failed, 2 bad input."""
from __future__ import annotations

import sys
import traceback

from bench.collectives import options
from bench.errors import ConfigError
from bench.rank import dist as dist_mod
from bench.rank import startup


def main(argv: list[str]) -> int:
    startup.install_sigterm()
    args = options.parser().parse_intermixed_args(argv)
    cfg = startup.compose(args.overrides)
    if cfg is None:
        return startup.EXIT_BAD_INPUT
    try:
        plan = options.plan_from_args(args)
        env = dist_mod.init(cfg)  # train.device=cuda with too few GPUs on this node: bad input
    except ConfigError as err:
        return startup.bad_input(err)
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

    startup.threads(cfg, env)
    run_id, run_dir = startup.run_dir_of(cfg)
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
    startup.exit_now(main(sys.argv[1:]))  # skips the finalization where Gloo can abort
