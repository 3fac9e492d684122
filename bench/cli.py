"""`hetbench` console script.

  hetbench run [overrides...]          one experiment (torchrun on this machine)
  hetbench run -m a=1,2 b=x,y          a sweep: one torchrun group per point
  hetbench report RUN_DIR              analysis.json, report.html, plots/, trace.json
  hetbench calibrate [overrides...]    the time dilation D this machine needs for a config
"""
from __future__ import annotations

import argparse
import sys

from bench.config import ConfigError

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hetbench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one experiment, or a sweep with -m",
                         description="Overrides use Hydra syntax, e.g. cluster=one_a100 "
                                     "network.inter_site.latency_ms=5 train.steps=100. Groups: "
                                     "cluster, network, model, strategy, experiment, logger.")
    run.add_argument("-m", "--multirun", action="store_true", help="sweep over comma lists")
    run.add_argument("overrides", nargs="*", help="Hydra overrides (key=value)")
    report = sub.add_parser("report", help="analyse a run (or sweep) directory")
    report.add_argument("run_dir")
    calib = sub.add_parser("calibrate", help="time this machine: the time dilation D a config needs",
                           description="Starts the ranks, times forward, backward and optimizer "
                                       "on this machine and prints the smallest time_scale D at "
                                       "which every rank keeps up with its emulated device.")
    calib.add_argument("overrides", nargs="*", help="Hydra overrides (key=value)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            if args.multirun:
                from bench.sweep import run_sweep

                return run_sweep(args.overrides)
            from bench.driver import run_one

            return run_one(args.overrides)
        if args.command == "calibrate":
            from bench.driver import calibrate_main

            return calibrate_main(args.overrides)
        from bench.analysis.report import main as report_main

        return report_main(args.run_dir)
    except ConfigError as err:
        print(f"hetbench: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
