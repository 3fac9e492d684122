"""Do device-time results depend on this machine? Runs the same emulated cluster under different
host conditions and compares the device-time numbers users read.

    python benchmarks/host_independence.py [--steps 100] [--repeats 2] [overrides...]

Conditions (the default cluster and network unless overridden):
  headroom 1.25      emulation.reference_scale=1.25 (the default)
  headroom 2.5       twice the time dilation D
  loaded             headroom 1.25 while 4 busy processes share the cores (8 ranks' worth of load;
                     calibration sees the load, so D grows)
  mid-run load       headroom 1.25, quiet at start; 3 busy processes start once a third of the
                     steps are logged and stop 8 s later (calibration does not see them: the
                     ranks fall behind, the lagged steps are left out and D rises)
Each condition runs --repeats times, interleaved (A B C A B C), and the median per condition is
compared with headroom 1.25's. Last line: host_independence_max_diff_pct=<x> (over step p50,
efficiency and the three slowdowns, all conditions).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results.outroot import run_dirs  # out_root's runs, never its `latest` link

HETBENCH = str(Path(sys.executable).parent / "hetbench")
KEYS = ("step_ms_p50", "efficiency", "slowdown_balance", "slowdown_network", "slowdown_total")


def _burn(stop_at: float) -> None:
    x = 0
    while time.monotonic() < stop_at:
        x += 1


def run(out: Path, overrides: list[str], load: int = 0, mid_run: tuple | None = None) -> dict:
    """One run; `load` busy processes for its whole length, or `mid_run` = (records in rank 0's
    log, burners, seconds): that many burners once the log holds that many records."""
    burners = [multiprocessing.Process(target=_burn, args=(time.monotonic() + 3600,), daemon=True)
               for _ in range(load)]
    for b in burners:
        b.start()
    out.mkdir(parents=True, exist_ok=True)
    before = set(run_dirs(out))
    try:
        proc = subprocess.Popen([HETBENCH, "run", f"out_root={out}", "logger=none", *overrides],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if mid_run:
            _load_once_logged(out, before, proc, *mid_run)
        output, _ = proc.communicate()
    finally:
        for b in burners:
            b.terminate()
    if proc.returncode != 0:
        raise RuntimeError(f"run failed: {overrides}\n{output[-3000:]}")
    (run_dir,) = set(run_dirs(out)) - before
    s = json.loads((run_dir / "summary.json").read_text())
    sd, emu = s["slowdown"], s.get("emulation") or {}
    return {"step_ms_p50": s["step_ms"]["p50"], "efficiency": s["efficiency"],
            "slowdown_balance": sd["balance"], "slowdown_network": sd["network"],
            "slowdown_total": sd["total"], "time_scale": s["time_scale"],
            "lagged": (emu.get("lagged_steps") or {}).get("count", 0),
            "d_changes": len(emu.get("time_scale_changes") or []),
            "flagged": sum(r["flagged"] for r in s["ranks"]), "status": s["status"]}


def _load_once_logged(out: Path, before: set, proc, records: int, burners: int, seconds: float):
    while proc.poll() is None:
        time.sleep(0.2)
        new = [p for p in run_dirs(out) if p not in before]
        log = new[0] / "ranks" / "rank_00000.jsonl" if new else None
        if log and log.exists() and log.read_text().count("\n") >= records:
            for _ in range(burners):
                multiprocessing.Process(target=_burn, args=(time.monotonic() + seconds,),
                                        daemon=True).start()
            return


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    common = [f"train.steps={args.steps}", "train.warmup_steps=10", *args.overrides]
    conditions = {"headroom 1.25": (["emulation.reference_scale=1.25"], 0),
                  "headroom 2.5": (["emulation.reference_scale=2.5"], 0),
                  "loaded": (["emulation.reference_scale=1.25"], 4),
                  "mid-run load": (["emulation.reference_scale=1.25"], 0)}
    mid = (args.steps // 3, 3, 8.0)
    results = {name: [] for name in conditions}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for name, (extra, load) in conditions.items():
                results[name].append(run(Path(tmp), [*common, *extra], load,
                                         mid if name == "mid-run load" else None))
    base = {k: statistics.median(r[k] for r in results["headroom 1.25"]) for k in (*KEYS, "time_scale")}
    print(f"{'condition':<14} {'D':>6} " + " ".join(f"{k:>16}" for k in KEYS))
    worst = 0.0
    for name, rows in results.items():
        med = {k: statistics.median(r[k] for r in rows) for k in (*KEYS, "time_scale")}
        diffs = {k: (med[k] / base[k] - 1) * 100 for k in KEYS}
        worst = max(worst, *(abs(d) for d in diffs.values()))
        print(f"{name:<14} {med['time_scale']:>6.2f} " +
              " ".join(f"{med[k]:>9.3f} ({diffs[k]:+5.1f}%)" for k in KEYS), flush=True)
        print(f"{'':<14} lagged steps {[r['lagged'] for r in rows]}, D changes "
              f"{[r['d_changes'] for r in rows]}, flagged ranks {[r['flagged'] for r in rows]}, "
              f"status {[r['status'] for r in rows]}", flush=True)
    print(f"host_independence_max_diff_pct={worst:.2f}")


if __name__ == "__main__":
    main()
