"""What each remedy buys and what it costs, measured: the figures the remedies issue asks for.

    python benchmarks/remedies.py [--steps 300] [--quick]

1. Convergence: ddp and every other strategy train `--steps` steps of the remedies experiment's
   proxy (the tiny model, the balanced split of the GPT-2 workload) with pacing and link emulation
   off: emulation never changes the math, so the loss curves are those of the paced runs, at a
   fraction of the time. Each strategy's loss gap to ddp at equal tokens (the smoothed loss at the
   largest token count both reached, bench.analysis.remedies) is printed; goal |gap| <= 2%.
2. balanced against the sum-of-speeds ideal, no link delay (network=rack), paced, with ddp
   beside it: tokens/s over summary.ideal_tokens_per_s; goal >= 95%.
3. diloco at 50 ms of inter-site latency against its own tokens/s at 0 ms, paced; goal >= 90%.
   The paced runs of 2 and 3 share one D (emulation.time_scale), as a sweep's points do.

Last lines: remedies_<figure>=<value> for each figure.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.analysis import remedies
from bench.results import rundir
from bench.results.files import read_json
from bench.results.outroot import run_dirs

HETBENCH = str(Path(sys.executable).parent / "hetbench")
STRATEGIES = ("ddp", "ddp_bf16", "powersgd", "balanced", "hierarchical", "localsgd", "diloco")
BASE = ["experiment=remedies", "logger=none"]


def run(out: Path, *overrides: str) -> Path:
    """One `hetbench run`; its run directory (exits on failure, with the run's output)."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(run_dirs(out))
    proc = subprocess.run([HETBENCH, "run", f"out_root={out}", *BASE, *overrides],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"hetbench run {' '.join(overrides)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    (run_dir,) = set(run_dirs(out)) - before
    return run_dir


def curve(run_dir: Path) -> dict:
    return remedies.curve_of(rundir.load(run_dir).all_steps)


def convergence(out: Path, steps: int) -> dict:
    """{strategy: loss gap to ddp in % at equal tokens}, unpaced, unemulated links."""
    plain = [f"train.steps={steps}", "emulation.compute=off", "emulation.network=off"]
    curves = {s: curve(run(out / "loss", *plain, f"strategy={s}")) for s in STRATEGIES}
    print(f"{'strategy':<14}{'loss@N':>9}{'gap vs ddp':>12}   (N = {curves['ddp']['tokens'][-1]:,.0f} tokens)")
    gaps = {}
    for name, c in curves.items():
        gaps[name] = remedies.loss_gap_pct(c, curves["ddp"])
        n = min(c["tokens"][-1], curves["ddp"]["tokens"][-1])
        print(f"{name:<14}{remedies.loss_at_tokens(c, n):>9.4f}{gaps[name]:>+11.2f}%")
    return gaps


def time_scale(out: Path, steps: int) -> float:
    """One D for the paced runs: a short calibrated run of the most demanding of them."""
    run_dir = run(out / "calibrate", "train.steps=12", "train.warmup_steps=2", "strategy=balanced")
    return read_json(run_dir / "summary.json")["time_scale"]


def throughput(out: Path, steps: int, scale: float) -> dict:
    paced = [f"train.steps={steps}", f"emulation.time_scale={scale!r}"]
    share = {}
    for name in ("ddp", "balanced"):
        summary = read_json(run(out / "rack", *paced, "network=rack", f"strategy={name}") / "summary.json")
        share[name] = summary["ideal_share"]
        print(f"{name:<10} no link delay: {summary['tokens_per_s']:>12,.0f} tok/s = "
              f"{summary['ideal_share']:.1%} of the sum-of-speeds ideal {summary['ideal_tokens_per_s']:,.0f}")
    tps = {}
    for latency in (0, 50):
        summary = read_json(run(out / "diloco", *paced, "strategy=diloco",
                                f"network.inter_site.latency_ms={latency}") / "summary.json")
        tps[latency] = summary["tokens_per_s"]
        print(f"diloco at {latency:>2} ms: {tps[latency]:>12,.0f} tok/s")
    return {"balanced_ideal_share": share["balanced"], "ddp_ideal_share": share["ddp"],
            "diloco_50ms_over_0ms": tps[50] / tps[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps of the convergence runs")
    parser.add_argument("--paced-steps", type=int, default=60, help="steps of the paced runs")
    parser.add_argument("--quick", action="store_true", help="60 convergence steps, 30 paced")
    args = parser.parse_args()
    steps, paced = (60, 30) if args.quick else (args.steps, args.paced_steps)
    with tempfile.TemporaryDirectory(prefix="hetbench-remedies-") as tmp:
        out = Path(tmp)
        gaps = convergence(out, steps)
        scale = time_scale(out, paced)
        print(f"paced runs share time_scale {scale:.2f}")
        figures = throughput(out, paced, scale)
    for name, gap in gaps.items():
        if name != "ddp":
            print(f"remedies_loss_gap_pct_{name}={gap:+.2f}")
    for name, value in figures.items():
        print(f"remedies_{name}={value:.3f}")


if __name__ == "__main__":
    main()
