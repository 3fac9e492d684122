"""Does `hetbench predict` say what the emulator measures? Re-predicts every point of the fidelity
grid (benchmarks/fidelity.py: 4 and 8 ranks; homogeneous, one H100 at half speed, an
A100/H100/B200 mix; inter-site latency 0/5/20 ms; 1 and 100 Gb/s) and of the remedies sweep
(`hetbench run -m experiment=remedies`: 7 strategies x 0/5/50 ms) from each run's own config,
and compares the predicted step p50 with the measured one (device ms).

    python benchmarks/predict_validation.py [--quick] [--steps 40] [--keep DIR]
    python benchmarks/predict_validation.py --runs DIR [DIR ...]   # re-predict finished runs

What differs between the two is what the predictor does not run: this machine's own costs (a
real transfer slower than the emulated wire, wake-up lag), which the emulated phases' slack
absorbs while it can (the host(%) column is each run's own estimate). The timed prediction of a
100,000-rank fleet is printed too. Last line: predict_median_err_pct=<x> max_err_pct=<y>.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fidelity  # noqa: E402  (the grid and its runner)

from bench import config as config_mod  # noqa: E402
from bench.predict import predict  # noqa: E402
from bench.predict.run import predict_run  # noqa: E402
from bench.results import files  # noqa: E402


def run_dirs(roots: list[Path]) -> list[Path]:
    """Every finished run directory under the roots (a run, a sweep, or a folder of them)."""
    found = []
    for root in roots:
        for summary in sorted(root.rglob("summary.json")):
            if (summary.parent / "config.yaml").exists():
                found.append(summary.parent)
    return found


def run_fidelity_grid(out: Path, steps: int, quick: bool) -> None:
    args = ["--keep", str(out), "--steps", str(steps)] + (["--quick"] if quick else [])
    out.mkdir(parents=True, exist_ok=True)
    fidelity.main(args)


def run_remedies(out: Path) -> None:
    cmd = [fidelity.HETBENCH, "run", "-m", "experiment=remedies", f"out_root={out}", "logger=none"]
    subprocess.run(cmd, check=True)


def compare(dirs: list[Path]) -> list[float]:
    print(f"{'run':<44} {'meas(ms)':>9} {'pred(ms)':>9} {'err(%)':>7} {'tok/s err':>9} {'host(%)':>7}")
    errors = []
    for d in dirs:
        result = predict_run(d)
        if result["caveat"]:
            print(f"{_name(d):<44} skipped: {result['caveat']}")
            continue
        rows = {r["key"]: r for r in result["rows"]}
        step, tok = rows["step_ms.p50"], rows["tokens_per_s"]
        share = (files.read_json(d / "summary.json").get("emulation") or {}).get("host_share")
        errors.append(abs(step["error_pct"]))
        print(f"{_name(d):<44} {step['measured']:>9.2f} {step['predicted']:>9.2f} "
              f"{step['error_pct']:>+7.2f} {tok['error_pct']:>+9.2f} "
              f"{'' if share is None else f'{share * 100:.1f}':>7}", flush=True)
    return errors


def _name(d: Path) -> str:
    return f"{d.parent.name[-12:]}/{d.name}"[-44:]


def time_large_prediction() -> float:
    cfg = config_mod.compose(["predict.world_size=100000"])
    started = time.perf_counter()
    predict(cfg)
    return time.perf_counter() - started


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", type=Path, help="re-predict these finished runs / sweeps")
    ap.add_argument("--keep", type=Path, help="keep the run directories here (default: a temp dir)")
    ap.add_argument("--steps", type=int, default=40, help="steps per fidelity point")
    ap.add_argument("--quick", action="store_true", help="fidelity grid at 4 ranks, 0 and 20 ms")
    ap.add_argument("--no-remedies", action="store_true", help="skip the remedies sweep")
    args = ap.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        roots = args.runs
        if not roots:
            out = args.keep or Path(tmp)
            run_fidelity_grid(out / "fidelity", args.steps, args.quick)
            roots = [out / "fidelity"]
            if not args.no_remedies:
                run_remedies(out / "remedies")
                roots.append(out / "remedies")
        errors = compare(run_dirs(roots))
    print(f"{len(errors)} points in {time.monotonic() - started:.0f} s; "
          f"100,000 ranks predicted in {time_large_prediction() * 1000:.0f} ms")
    if not errors:
        raise SystemExit("no comparable run: every one was skipped (see above)")
    print(f"predict_median_err_pct={statistics.median(errors):.2f} max_err_pct={max(errors):.2f}")


if __name__ == "__main__":
    main()
