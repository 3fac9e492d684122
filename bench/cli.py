"""`hetbench` console script.

  hetbench run [overrides...]          one experiment (torchrun on this machine)
  hetbench run -m a=1,2 b=x,y          a sweep (a Hydra multirun): one torchrun group per point;
                                       hydra/launcher=submitit_local|slurm to run points as jobs
  hetbench report RUN_DIR              analysis.json, report.html, plots/, trace.json
                                       (--internals: the emulation's pad and lagged steps too)
  hetbench export RUN_DIR              every rank's steps as one table in device ms (steps.csv)
  hetbench calibrate [overrides...]    the time dilation D this machine needs for a config
  hetbench collectives [overrides...]  nccl-tests-style collective timings by scope, link fit
  hetbench predict [overrides...]      the same numbers from the models, for any world size
  hetbench predict --from RUN_DIR      re-predict a finished run, measured vs predicted
  hetbench predict -m a=1,2 b=x,y      a sweep of predictions, with plots and findings
  hetbench advise [overrides...]       what to change about a cluster: strategies x knobs
                                       ranked at equal loss, the top ones checked by emulation
  hetbench devices [overrides...]      the device model's times on every catalog device
  hetbench config [overrides...]       the composed, validated config
"""
from __future__ import annotations

import argparse
import sys

from bench.errors import EXIT_BAD_INPUT, ConfigError

EXIT_INTERRUPTED = 130  # bench.interrupts.EXIT_INTERRUPTED (not imported: start-up stays light)


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
    report.add_argument("--internals", action="store_true",
                        help="also draw the emulation's own marks in the timeline and trace: the "
                             "pad compute pacing put inside forward + backward, and the steps in "
                             "which this machine fell behind the emulated timeline")
    export = sub.add_parser("export", help="every rank's steps as one CSV or Parquet table, in "
                            "the run's time base (device ms for an emulated run)",
                            description="One row per (step, rank) of a finished or unfinished "
                                        "run, in the time summary.json uses: the rank logs' host "
                                        "ms divided by each step's time_scale. Columns: "
                                        "docs/metrics.md, 'hetbench export'.")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=("csv", "parquet"), default=None,
                        help="csv (default) or parquet (needs pyarrow); default from --out's suffix")
    export.add_argument("--out", metavar="PATH", default=None,
                        help="file (or folder) to write; default RUN_DIR/steps.csv")
    calib = sub.add_parser("calibrate", help="time this machine: the time dilation D a config needs",
                           description="Starts the ranks, times forward, backward and optimizer "
                                       "on this machine and prints the smallest time_scale D at "
                                       "which every rank keeps up with its emulated device.")
    calib.add_argument("overrides", nargs="*", help="Hydra overrides (key=value)")
    from bench.collectives import options as coll_options  # argparse only: no torch

    coll = sub.add_parser("collectives", help="time collectives by size and scope (nccl-tests "
                          "style) and fit each link's latency and bandwidth",
                          description=coll_options.DESCRIPTION)
    coll_options.add_options(coll)
    pred = sub.add_parser("predict", help="predict step time, efficiency and slowdowns at any scale",
                          description="The device and link models and the emulator's step "
                                      "schedule, computed instead of run (device time). "
                                      "predict.world_size=N scales the cluster's groups; "
                                      "predict.jitter_pct, predict.straggler_rate/_ms or "
                                      "predict.noise_from=RUN_DIR model per-rank variation.")
    pred.add_argument("-m", "--multirun", action="store_true", help="sweep over comma lists")
    pred.add_argument("--json", action="store_true", help="print one JSON object")
    pred.add_argument("--from", dest="from_run", metavar="RUN_DIR",
                      help="re-predict a finished run from its own config")
    pred.add_argument("--out-root", default=None, help="where -m writes (default: out_root)")
    pred.add_argument("--links", metavar="COLLECTIVES_JSON",
                      help="links fitted by `hetbench collectives` in place of network.* "
                           "(the same as predict.links_from=...)")
    pred.add_argument("overrides", nargs="*", help="Hydra overrides (key=value)")
    adv = sub.add_parser("advise", help="rank strategies and their knobs for a cluster at equal "
                         "loss, and check the best by short emulated runs",
                         description="Searches strategy x split x bucket cap x H x PowerSGD rank "
                                     "with the predictor, ranks them by tokens/s at equal loss "
                                     "(measured loss costs, bench/advise/loss_costs.json), "
                                     "emulates the top ones and ddp where the cluster fits this "
                                     "machine, and writes advice.md, advice.json and a plot. "
                                     "docs/advise.md.")
    adv.add_argument("--from", dest="from_run", metavar="RUN_DIR",
                     help="advise on a finished run's cluster and workload")
    adv.add_argument("--json", action="store_true", help="print one JSON object")
    adv.add_argument("--verify", type=int, default=3, metavar="N",
                     help="emulate the top N candidates and ddp (default 3; 0: predict only)")
    adv.add_argument("--out", metavar="DIR", help="advise directory (default out_root/advise-<id>)")
    adv.add_argument("overrides", nargs="*", help="Hydra overrides (key=value)")
    conf = sub.add_parser("config", help="print the composed, validated config (YAML)",
                          description="What a run with these overrides would use: every key, "
                                      "after validation (a bad value exits 2 naming the fix).")
    conf.add_argument("overrides", nargs="*", help="Hydra overrides (key=value)")
    dev = sub.add_parser("devices", help="the device model's times for the configured model on "
                         "every catalog device", description="Forward, backward and optimizer "
                         "device ms, MFU and regime (launch- or compute-bound) per catalog "
                         "device, for the configured model, batch, precision and stack.")
    dev.add_argument("--json", action="store_true", help="print one JSON object")
    dev.add_argument("overrides", nargs="*", help="Hydra overrides (key=value)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            if args.multirun:
                from bench.sweeps.multirun import run_sweep

                return run_sweep(args.overrides)
            from bench.driver.run import run_one
            from bench.predict.remedy import for_run

            return run_one(args.overrides, epilogue=for_run)
        if args.command == "predict":
            from bench.predict.cli import main as predict_main

            return predict_main(args)
        if args.command == "advise":
            from bench.advise.main import main as advise_main

            return advise_main(args)
        if args.command == "collectives":
            from bench.collectives.driver import main as collectives_main

            return collectives_main(args)
        if args.command == "config":
            from omegaconf import OmegaConf

            from bench import config as config_mod

            print(OmegaConf.to_yaml(config_mod.compose(args.overrides), resolve=True), end="")
            return 0
        if args.command == "devices":
            from bench.predict.device_table import main as devices_main

            return devices_main(args)
        if args.command == "export":
            from bench.analysis.export import main as export_main

            return export_main(args.run_dir, args.format, args.out)
        if args.command == "calibrate":
            from bench.driver.calibrate import calibrate_main

            return calibrate_main(args.overrides)
        from bench.analysis.report import main as report_main

        return report_main(args.run_dir, args.internals)
    except ConfigError as err:
        print(f"hetbench: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # Ctrl-C outside a run (a run handles its own: bench.interrupts)
        print("\nhetbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
