"""The device model against measured device times: the model's error per point, median and max.

    python benchmarks/device_model.py [GRID.json ...]     default: every grid in benchmarks/data
    python benchmarks/device_model.py --fit               solve the fitted constants again
    python benchmarks/device_model.py --combine           the same fit under max, sum and p-norms

A grid's format is bench.costs.device_grid's (what `scripts/gpu_check.py --only device_grid`
writes on a real GPU). Rows with a `role` calibrate the model (bench.costs.roofline.Calibration
names which constant each solves); the others only check it. Launch-bound points pass inside
their runs' range +- 10%, compute-bound ones within 10% of the median run. The `ratio` rows
(llm.c) count as one point: their step ratio; their absolute times are hand-written CUDA's.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.costs import device_grid, roofline  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


def report(points, cal) -> int:
    print(f"{'point':<44} {'role':<7} {'regime':<14} {'measured ms':>18} {'model':>9} {'error':>7}")
    fails, checks = 0, []
    for p in points:
        e = device_grid.error(p, cal)
        runs = "-".join(f"{v:.1f}" for v in sorted(set(e["measured_ms"])))
        scored = e["role"] != "ratio"
        mark = "" if e["passes"] or not scored else "  FAIL"
        fails += scored and not e["passes"]
        print(f"{e['point']:<44} {e['role']:<7} {e['regime']:<14} {runs:>18} "
              f"{e['modelled_ms']:>9.2f} {e['error']:>+7.1%}{mark}")
        if e["role"] == "check":
            checks.append(abs(e["error"]))
    r = device_grid.ratio(points, cal)
    if r:
        ok = abs(r["error"]) <= device_grid.TOLERANCE
        fails += not ok
        print(f"step ratio {r['pair']}: measured {r['measured']:.2f}x, modelled "
              f"{r['modelled']:.2f}x ({r['error']:+.1%}){'' if ok else '  FAIL'}")
    errors = [abs(device_grid.error(p, cal)["error"]) for p in points
              if device_grid.error(p, cal)["role"] != "ratio"]
    print(f"|error| over {len(errors)} points: median {statistics.median(errors):.1%}, "
          f"max {max(errors):.1%}; checking points only: "
          f"median {statistics.median(checks):.1%}, max {max(checks):.1%}" if checks else "")
    print("all points pass" if not fails else f"{fails} point(s) FAIL")
    return 1 if fails else 0


def combinations(points) -> None:
    """Refit under each way of combining host and device time; show the checking points."""
    for p in (1, 2, 3, 4, 6, math.inf):
        cal = device_grid.fit(points, replace(roofline.CALIBRATION, combine_p=p))
        errs = [device_grid.error(q, cal) for q in points]
        checks = " ".join(f"{e['error']:+.0%}" for e in errs if e["role"] == "check")
        name = "max" if math.isinf(p) else "sum" if p == 1 else f"p={p}"
        print(f"{name:>5}: checking points {checks}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grids", nargs="*", type=Path)
    parser.add_argument("--fit", action="store_true", help="solve the fitted constants")
    parser.add_argument("--combine", action="store_true", help="compare max, sum and p-norms")
    args = parser.parse_args()
    points = device_grid.load(args.grids or sorted(DATA.glob("*.json")))
    if args.combine:
        combinations(points)
        return 0
    cal = roofline.CALIBRATION
    if args.fit:
        cal = device_grid.fit(points)
        print(f"fitted: {cal}\nin code: {roofline.CALIBRATION}\n")
    return report(points, cal)


if __name__ == "__main__":
    sys.exit(main())
