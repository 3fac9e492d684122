"""The loss cost of each strategy and knob, measured: what `hetbench advise` reads.

    python benchmarks/loss_costs.py [--steps 300] [--seeds 0,1,2] [--write] [--runs DIR]

Every strategy (and the knob values listed in MEASURED) trains `--steps` steps of the remedies
experiment's proxy with pacing and link emulation off (emulation never changes the math, so these
are the paced runs' loss curves), once per seed, beside ddp at the same seed. For each it prints
and records, as mean and sample standard deviation over the seeds:

  gap_pct      100 (L / L_ddp - 1) at the largest token count both reached (smoothed over the
               last 10% of steps: bench.analysis.remedies.loss_gap_pct)
  token_ratio  tokens it needs to reach the smoothed loss ddp had at half the run, over ddp's
               (bench.advise.losscost.token_ratio): > 1 means it needs more data for the same
               model; null when it never got there within the run

--write stores the result in bench/advise/loss_costs.json (package data), with the runs'
overrides, the steps, the tokens and the commit, so that advice can cite it.
"""
from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import config
from bench.advise import losscost
from bench.analysis import remedies
from bench.results import files, rundir
from bench.results.outroot import run_dirs

ROOT = Path(__file__).resolve().parent.parent
HETBENCH = str(Path(sys.executable).parent / "hetbench")
BASE = ["experiment=remedies", "logger=none", "emulation.compute=off", "emulation.network=off"]
# (strategy, knob overrides): the remedies experiment's knobs (H = 16, rank 4 from step 4), then
# other H and ranks advice searches over.
MEASURED = [
    ("ddp_bf16", {}), ("hierarchical", {}), ("balanced", {}),
    ("powersgd", {"powersgd_rank": 4}), ("powersgd", {"powersgd_rank": 1}),
    ("localsgd", {"sync_every": 16}), ("diloco", {"sync_every": 16}),
    ("diloco", {"sync_every": 8}), ("diloco", {"sync_every": 50}),
    ("powersgd", {"powersgd_rank": 16}), ("localsgd", {"sync_every": 8}),
    ("localsgd", {"sync_every": 50}), ("localsgd", {"sync_every": 200}),
    ("diloco", {"sync_every": 200}),
]


def run(out: Path, overrides: list[str]) -> Path:
    """One unpaced `hetbench run`, or the finished one already in `out` with the same overrides
    (--runs DIR: a measurement stopped half-way resumes)."""
    out.mkdir(parents=True, exist_ok=True)
    for done in run_dirs(out):
        if (done / "summary.json").exists() and _overrides(done) == BASE + overrides:
            return done
    before = set(run_dirs(out))
    proc = subprocess.run([HETBENCH, "run", f"out_root={out}", *BASE, *overrides],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"hetbench run {' '.join(overrides)} failed:\n{proc.stdout[-3000:]}"
                 f"{proc.stderr[-3000:]}")
    (run_dir,) = set(run_dirs(out)) - before
    return run_dir


def _overrides(run_dir: Path) -> list[str]:
    import yaml

    own = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    return [o for o in own if not o.startswith("out_root=")]


def overrides_of(name: str, knobs: dict, steps: int, seed: int) -> list[str]:
    return [f"strategy={name}", *(f"strategy.{k}={v}" for k, v in knobs.items()),
            f"train.steps={steps}", f"train.seed={seed}"]


def loss_knobs(name: str, knobs: dict, steps: int) -> dict:
    """Every knob that changes what `name` learns, as the measured run composed it."""
    cfg = config.compose(BASE + overrides_of(name, knobs, steps, 0))
    return {k: cfg.strategy[k] for k in losscost.LOSS_KNOBS.get(name, ())}


def measure(out: Path, steps: int, seeds: list[int]) -> list[dict]:
    base = {s: remedies.curve_of(rundir.load(run(out, overrides_of("ddp", {}, steps, s))).all_steps)
            for s in seeds}
    entries = []
    for name, knobs in MEASURED:
        gaps, ratios = [], []
        for seed in seeds:
            c = remedies.curve_of(rundir.load(run(out, overrides_of(name, knobs, steps, seed)))
                                  .all_steps)
            gaps.append(remedies.loss_gap_pct(c, base[seed]))
            ratios.append(losscost.token_ratio(c, base[seed]))
        entry = {"strategy": name, "knobs": loss_knobs(name, knobs, steps), "gap_pct": statistics.mean(gaps),
                 "gap_std_pct": statistics.stdev(gaps) if len(gaps) > 1 else None,
                 "gap_per_seed": gaps, "token_ratio_per_seed": ratios,
                 "token_ratio": statistics.mean(ratios) if None not in ratios else None,
                 "token_ratio_std": statistics.stdev(ratios)
                 if None not in ratios and len(ratios) > 1 else None,
                 "overrides": " ".join(BASE + overrides_of(name, knobs, steps, seeds[0])[:-1])}
        entries.append(entry)
        ratio = "not reached" if entry["token_ratio"] is None else f"{entry['token_ratio']:.3f}"
        print(f"{name:<13}{str(knobs):<24} gap {entry['gap_pct']:+7.2f}% "
              f"(sd {entry['gap_std_pct'] or 0:.2f}, per seed "
              f"{', '.join(f'{g:+.2f}' for g in gaps)})  token ratio {ratio}", flush=True)
    tokens = base[seeds[0]]["tokens"][-1]
    return entries, tokens


def commit() -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--write", action="store_true", help="store bench/advise/loss_costs.json")
    parser.add_argument("--runs", metavar="DIR", help="keep the runs there and reuse those done")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.runs:
        entries, tokens = measure(Path(args.runs), args.steps, seeds)
    else:
        with tempfile.TemporaryDirectory(prefix="hetbench-losscost-") as tmp:
            entries, tokens = measure(Path(tmp), args.steps, seeds)
    doc = {"source": "benchmarks/loss_costs.py", "commit": commit(),
           "date": datetime.date.today().isoformat(), "steps": args.steps, "seeds": seeds,
           "tokens": tokens, "model": "the remedies experiment's proxy (tiny model, 4 ranks)",
           "baseline": "ddp", "entries": entries}
    if args.write:
        files.write_json_atomic(losscost.DATA, doc)
        print(f"wrote {losscost.DATA}")


if __name__ == "__main__":
    main()
