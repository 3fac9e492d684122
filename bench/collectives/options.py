"""The command line of `hetbench collectives`, shared by the CLI (bench.cli) and the torchrun
worker, so that every rank parses the same plan from the same arguments."""
from __future__ import annotations

import argparse

from bench.collectives import spec
from bench.errors import ConfigError

DESCRIPTION = ("Times each collective at doubling sizes, nccl-tests style (time, algbw, busbw), "
               "in three scopes: world (every rank), site (within each site, side by side) and "
               "cross (one rank per site, over the inter-site link). Config overrides as for "
               "`hetbench run` (cluster=..., network=...); links with latency or bandwidth are "
               "emulated (emulation.network=off to time this machine's transport alone). "
               "Give the options before or after the overrides, not between them.")


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (key=value), as for run")
    parser.add_argument("--ops", default=",".join(spec.OPS),
                        help="comma list of " + ", ".join(spec.OPS) + " (default: all)")
    parser.add_argument("--scopes", default=",".join(spec.SCOPES),
                        help="comma list of world, site, cross (default: all)")
    parser.add_argument("--min-bytes", default="8", help="smallest size: 8, 1K, 32M... (default 8)")
    parser.add_argument("--max-bytes", default="256M", help="largest size (default 256M)")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per size (20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first (5)")
    parser.add_argument("--min-iters", type=int, default=2,
                        help="past 1 MiB iterations shrink with the size down to this (2); "
                             "--min-iters equal to --iters keeps them fixed, as nccl-tests")
    parser.add_argument("--out-root", default=None, help="where run directories go (out_root)")
    parser.add_argument("--model", action="store_true",
                        help="print the table the collective model (NCCL's tuner model) predicts "
                             "for the configured topology; starts no rank")
    parser.add_argument("--world-size", type=int, default=None,
                        help="with --model: scale the groups to this many ranks")
    parser.add_argument("--compare", metavar="LOG", default=None,
                        help="an nccl-tests log (or a collectives.json) against the model, with "
                             "a fitted correction of its tier; starts no rank")
    parser.add_argument("--op", default=None, help="with --compare: the log's collective, where "
                                                   "its header does not say")
    parser.add_argument("--out", default=None, help="with --compare: write the correction here "
                                                    "(use it as network.calibration=FILE)")
    parser.add_argument("--json", action="store_true", help="with --model or --compare: one "
                                                            "JSON object on stdout")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.collectives.worker", description=DESCRIPTION)
    add_options(p)
    return p


def plan_from_args(args) -> spec.Plan:
    """The plan, or a ConfigError naming the option, the value and the fix."""
    ops = _choices("--ops", args.ops, spec.OPS)
    scopes = _choices("--scopes", args.scopes, spec.SCOPES)
    low, high = _size("--min-bytes", args.min_bytes), _size("--max-bytes", args.max_bytes)
    if high < low:
        raise ConfigError("--max-bytes", args.max_bytes, f"use a size of at least --min-bytes "
                          f"({args.min_bytes})")
    for name, value, least in (("--iters", args.iters, 1), ("--warmup", args.warmup, 0),
                               ("--min-iters", args.min_iters, 1)):
        if value < least:
            raise ConfigError(name, value, f"use {least} or more")
    return spec.Plan(ops, scopes, low, high, args.iters, args.warmup, args.min_iters)


def plan_argv(plan: spec.Plan) -> list[str]:
    """The options that make the workers parse this same plan."""
    return ["--ops", ",".join(plan.ops), "--scopes", ",".join(plan.scopes),
            "--min-bytes", str(plan.min_bytes), "--max-bytes", str(plan.max_bytes),
            "--iters", str(plan.iters), "--warmup", str(plan.warmup),
            "--min-iters", str(plan.min_iters)]


def _choices(option: str, text: str, known: tuple) -> list[str]:
    picked = [t.strip() for t in str(text).split(",") if t.strip()]
    unknown = [t for t in picked if t not in known]
    if unknown or not picked:
        raise ConfigError(option, text, "use a comma list of: " + ", ".join(known))
    return list(dict.fromkeys(picked))


def _size(option: str, text: str) -> int:
    try:
        size = spec.parse_size(text)
    except (ValueError, IndexError):
        size = 0
    if size < spec.WORD_BYTES:
        raise ConfigError(option, text, f"use a size of {spec.WORD_BYTES} bytes or more, in "
                          "bytes or with K, M, G (powers of 1024): 8, 64K, 256M")
    return size
