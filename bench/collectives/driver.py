"""The driver side of `hetbench collectives`: compose and validate the config and the plan
(bad input exits 2 before any process starts), make the run directory, start one torchrun group
with the config's world size on loopback, then plot what rank 0 wrote."""
from __future__ import annotations

import subprocess
from pathlib import Path

from bench import config as config_mod
from bench.collectives import options
from bench.costs import cluster
from bench.driver.command import new_run_id, torchrun, worker_env
from bench.driver.launch import prepare_run_dir, worker_overrides
from bench.results import files
from bench.results.status import mark_failed


def torchrun_command(cfg, plan, overrides: list[str]) -> list[str]:
    return torchrun(cluster.world_size(cfg), "bench.collectives.worker",
                    [*options.plan_argv(plan), *overrides])


def main(args) -> int:
    """`args`: the parsed `hetbench collectives` command line (bench.collectives.options)."""
    overrides = list(args.overrides) + ([f"out_root={args.out_root}"] if args.out_root else [])
    cfg = config_mod.compose(overrides)  # raises ConfigError before any process starts
    config_mod.validate_devices(cfg)
    if cfg.emulation.network == "kernel":  # the model times beside the measured would miss tbf's
        raise config_mod.ConfigError("emulation.network", "kernel",
                                     "hetbench collectives times the links as they are: use "
                                     "emulation.network=off on a kernel-shaped link")
    plan = options.plan_from_args(args)
    if args.model or args.compare:
        return _offline(cfg, plan, args)
    run_id = cfg.run_id or new_run_id()
    run_dir = Path(cfg.out_root) / run_id
    prepare_run_dir(cfg, run_dir, overrides)
    print(f"hetbench: collectives {run_id}: {cluster.world_size(cfg)} ranks "
          f"({cfg.cluster.name} over {cfg.network.name}) -> {run_dir}", flush=True)
    proc = subprocess.run(torchrun_command(cfg, plan, worker_overrides(overrides)),
                          env=worker_env(cfg, run_id, run_dir))
    path = run_dir / "collectives.json"
    if proc.returncode != 0:
        # A rank killed hard cannot say so itself: the driver makes the JSON tell.
        mark_failed(run_dir, f"torchrun exited with status {proc.returncode}",
                    names=(path.name,), kind={"kind": "collectives"})
        print(f"hetbench: collectives FAILED (torchrun exit status {proc.returncode}); what was "
              f"measured is in {path}", flush=True)
        return 1
    _plot(path, run_dir)
    print(f"hetbench: collectives ok; results in {path}", flush=True)
    return 0


def _offline(cfg, plan, args) -> int:
    """--model and --compare: the model alone, no rank started."""
    if args.world_size is not None and args.world_size < len(cfg.cluster.groups):
        raise config_mod.ConfigError("--world-size", args.world_size,
                                     f"use at least one rank per group ({len(cfg.cluster.groups)})")
    if args.compare:
        from bench.collectives import compare

        try:
            return compare.main(cfg, args.compare, args.op, args.out, args.json)
        except (OSError, ValueError) as err:
            raise config_mod.ConfigError("--compare", args.compare, str(err)) from None
    from bench.collectives import modelled

    return modelled.main(cfg, plan, args.world_size, args.json)


def _plot(path: Path, run_dir: Path) -> None:
    from bench.collectives.plots import write_plots

    paths = write_plots(files.read_json(path), run_dir / "plots")
    print(f"hetbench: {len(paths)} plots in {run_dir / 'plots'}", flush=True)
