"""What hetbench measures on one real GPU, checked: prints one PASS/FAIL line per check and a
JSON of every figure (docs/gpu.md records them). Run through scripts/gpu_check.sh.

  1. the `gpu`-marked tests (tests/test_gpu.py)
  2. hetbench against an independent plain DDP loop (benchmarks/plain_loop.py), small model,
     16 x 256, the default precision: forward, backward (+ exchange), optimizer and step
     medians within 5%; data <= 2% of the step; where opt_ms's time goes
  3. MFU of the small model at 64 x 1024 in bf16 >= 25%, with the launch/compute verdict
  4. train.compile at 16 x 256: step time with and without (measured, no threshold)
  5. benchmarks/overhead.py on the GPU: overhead ratio <= 1.03
  6. attribution: where a gap to the plain loop comes from (figures only)
  7. device_grid: scripts/time_grid.py times the GPT over 3 sizes x 4 shapes x fp32/bf16 and
     the device model is held against it (compute-bound within 10%, launch-bound within the
     steps' spread +- 10%); the grid is new evidence, never fitted
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HETBENCH = str(Path(sys.executable).parent / "hetbench")
ONE_GPU = ["cluster.groups=[{device:H100,count:1}]", "network=rack", "emulation.network=off",
           "logger=none"]
SMALL_16x256 = ["model=small", "train.micro_batch=16", "train.seq_len=256"]
RESULTS: dict = {}
FAILED: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    RESULTS.setdefault("checks", []).append({"name": name, "ok": ok, "detail": detail})
    if not ok:
        FAILED.append(name)


def sh(cmd: list[str], log: Path, timeout: float, env: dict | None = None) -> tuple[int, str]:
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        rc, out = 124, f"timed out after {timeout:.0f} s\n{err.stdout or ''}{err.stderr or ''}"
    log.write_text(out)
    print(f"      ({Path(cmd[1]).name if len(cmd) > 1 else cmd[0]} ... {time.monotonic() - t0:.0f} s, "
          f"log {log.name})", flush=True)
    return rc, out


def hetbench_run(out: Path, name: str, *overrides: str, timeout=300, env=None) -> Path | None:
    run_dir = out / "runs" / name
    rc, text = sh([HETBENCH, "run", f"out_root={out / 'runs'}", f"run_id={name}", *ONE_GPU, *overrides],
                  out / f"{name}.log", timeout, env)
    return run_dir if rc == 0 else None


def phase_medians(run_dir: Path) -> dict:
    recs = [json.loads(line) for line in (run_dir / "ranks" / "rank_00000.jsonl").read_text().splitlines()]
    recs = [r for r in recs if r.get("kind") != "header" and not r["warmup"]]

    def med(f):
        return statistics.median(f(r) for r in recs)

    return {"data_ms": med(lambda r: r["data_ms"]), "fwd_ms": med(lambda r: r["fwd_ms"]),
            "bwd_ms": med(lambda r: r["bwd_ms"] + r["wait_ms"] + r["transfer_ms"]),
            "opt_ms": med(lambda r: r["opt_ms"]), "step_ms": med(lambda r: r["step_ms"])}


def tests(out: Path) -> None:
    rc, text = sh([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests/test_gpu.py", "-rs"],
                  out / "pytest_gpu.log", 420)
    last = [line for line in text.splitlines() if line.strip()][-1:] or ["(no output)"]
    check("gpu-marked tests", rc == 0, last[0])


def against_plain_loop(out: Path) -> None:
    run = hetbench_run(out, "small_16x256", *SMALL_16x256, "train.steps=150", "train.warmup_steps=30")
    rc, text = sh([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                   "benchmarks/plain_loop.py", "--micro-batch", "16", "--seq-len", "256",
                   "--precision", _precision(run) or "bf16", "--steps", "150", "--warmup", "30"],
                  out / "plain_loop.log", 300)
    if run is None or rc != 0:
        return check("hetbench vs plain loop", False, "a run failed (see the logs)")
    mine, plain = phase_medians(run), json.loads(text.strip().splitlines()[-1])
    RESULTS["hetbench_16x256"], RESULTS["plain_16x256"] = mine, plain
    for key in ("fwd_ms", "bwd_ms", "opt_ms", "step_ms"):
        ratio = mine[key] / plain[key]
        check(f"{key} hetbench/plain", abs(ratio - 1) <= 0.05,
              f"{mine[key]:.3f} vs {plain[key]:.3f} ms (x{ratio:.3f})")
    share = mine["data_ms"] / mine["step_ms"]
    check("data share of the step", share <= 0.02, f"{mine['data_ms']:.3f} of {mine['step_ms']:.2f} ms "
          f"({share:.2%})")
    print(f"      opt: hetbench opt_ms {mine['opt_ms']:.3f}; plain: step()+zero_grad after backward "
          f"{plain['opt_ms']:.3f}, events around step() {plain['opt_events_ms']:.3f}, host time of "
          f"step() {plain['host_opt_ms']:.3f} ms", flush=True)


def _precision(run_dir: Path | None):
    if run_dir is None:
        return None
    return json.loads((run_dir / "metadata.json").read_text())["precision"]["compute"]


def mfu(out: Path) -> None:
    run = hetbench_run(out, "small_64x1024_bf16", "model=small", "train.micro_batch=64",
                       "train.seq_len=1024", "train.precision=bf16", "train.steps=40",
                       "train.warmup_steps=10")
    if run is None:
        return check("MFU small 64x1024 bf16", False, "the run failed")
    s = json.loads((run / "summary.json").read_text())
    row = s["ranks"][0]
    RESULTS["mfu_64x1024"] = {k: s[k] for k in ("mfu", "mfu_compute", "achieved_tflops", "peak_tflops")}
    RESULTS["mfu_64x1024"].update(step_ms=s["step_ms"]["p50"], bound=row["bound"],
                                  gpu_busy_share=row["gpu_busy_share"])
    check("MFU small 64x1024 bf16", s["mfu"] >= 0.25,
          f"{s['mfu']:.1%} ({s['achieved_tflops']:.0f} of {s['peak_tflops']:.0f} TFLOP/s; "
          f"{row['bound']}, GPU busy {row['gpu_busy_share']:.0%})")


def compile_effect(out: Path) -> None:
    eager = out / "runs" / "small_16x256"
    run = hetbench_run(out, "small_16x256_compile", *SMALL_16x256, "train.compile=true",
                       "train.steps=150", "train.warmup_steps=30", timeout=420)
    if run is None or not eager.exists():
        return check("train.compile at 16x256", False, "a run failed")
    a, b = (json.loads((d / "summary.json").read_text()) for d in (eager, run))
    RESULTS["compile_16x256"] = {
        "eager_step_ms": a["step_ms"]["p50"], "compiled_step_ms": b["step_ms"]["p50"],
        "eager_bound": a["ranks"][0]["bound"], "compiled_bound": b["ranks"][0]["bound"],
        "eager_busy": a["ranks"][0]["gpu_busy_share"], "compiled_busy": b["ranks"][0]["gpu_busy_share"]}
    c = RESULTS["compile_16x256"]
    check("train.compile at 16x256", True,
          f"step {c['eager_step_ms']:.2f} -> {c['compiled_step_ms']:.2f} ms "
          f"(x{c['eager_step_ms'] / c['compiled_step_ms']:.2f}); GPU busy {c['eager_busy']:.0%} -> "
          f"{c['compiled_busy']:.0%}")


def attribution(out: Path) -> None:
    """Where a gap to the plain loop would come from (figures only): OpenMP threads per GPU
    rank at the cores' count (the default is 1, as torchrun's), prefetching off, fp32 beside
    the plain loop in fp32, and train.compile where the GPU is busy (64 x 1024)."""
    variants = {"omp_cores": ([], {"OMP_NUM_THREADS": str(os.cpu_count())}),
                "prefetch_off": (["train.prefetch=off"], None),
                "fp32": (["train.precision=fp32"], None)}
    rows = {}
    for name, (extra, env) in variants.items():
        run = hetbench_run(out, f"small_16x256_{name}", *SMALL_16x256, "train.steps=150",
                           "train.warmup_steps=30", *extra, env=env)
        rows[name] = phase_medians(run) if run else None
    rc, text = sh([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                   "benchmarks/plain_loop.py", "--precision", "fp32", "--steps", "150", "--warmup", "30"],
                  out / "plain_loop_fp32.log", 300)
    rows["plain_fp32"] = json.loads(text.strip().splitlines()[-1]) if rc == 0 else None
    run = hetbench_run(out, "small_64x1024_bf16_compile", "model=small", "train.micro_batch=64",
                       "train.seq_len=1024", "train.precision=bf16", "train.compile=true",
                       "train.steps=40", "train.warmup_steps=10", timeout=420)
    if run:
        s = json.loads((run / "summary.json").read_text())
        rows["compile_64x1024"] = {"mfu": s["mfu"], "step_ms": s["step_ms"]["p50"],
                                   "gpu_busy_share": s["ranks"][0]["gpu_busy_share"]}
    RESULTS["attribution"] = rows
    for name, row in rows.items():
        print(f"      {name}: " + (", ".join(f"{k} {v:.3f}" for k, v in row.items()) if row else "failed"),
              flush=True)


def device_grid_step(out: Path) -> None:
    """Time the GPT over scripts/time_grid.py's grid on this GPU (device_grid.json: more
    evidence for the device model, never fitted) and print the model's error on it."""
    path = out / "device_grid.json"
    rc, _ = sh([sys.executable, "scripts/time_grid.py", "--out", str(path)], out / "time_grid.log", 420)
    if rc != 0 and not path.exists():
        return check("device model on this GPU", False, "scripts/time_grid.py failed (see the log)")
    from bench.costs import device_grid

    results = [device_grid.error(p) for p in device_grid.load([path])]
    errors = sorted(abs(r["error"]) for r in results)
    RESULTS["device_grid"] = {"rows": len(results), "median_abs_error": statistics.median(errors),
                              "max_abs_error": errors[-1], "points": results}
    for r in results:
        print(f"      {r['point']}: measured {r['measured_ms'][0]:.2f}, model {r['modelled_ms']:.2f} "
              f"({r['error']:+.1%}, {r['regime']})", flush=True)
    passed = sum(r["passes"] for r in results)
    check("device model on this GPU", passed == len(results),
          f"{passed} of {len(results)} points within the rule; |error| median "
          f"{statistics.median(errors):.1%}, max {errors[-1]:.1%}")


def overhead(out: Path) -> None:
    rc, text = sh([sys.executable, "benchmarks/overhead.py", "--ranks", "1", "--blocks", "12",
                   "--block-steps", "20", *SMALL_16x256, "network=rack"], out / "overhead.log", 300)
    line = [x for x in text.splitlines() if x.startswith("overhead_ratio=")]
    if rc != 0 or not line:
        return check("overhead ratio", False, "the benchmark failed")
    ratio = float(line[0].split("=")[1])
    RESULTS["overhead_ratio"] = ratio
    check("overhead ratio", ratio <= 1.03, f"{ratio:.4f} (hetbench / bare, median of A-B/B-A pairs)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "runs" / "gpu_check"))
    ap.add_argument("--only", nargs="*", default=None, help="a subset: tests plain mfu compile overhead "
                    "attribution device_grid")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    RESULTS["device"] = torch.cuda.get_device_name()
    RESULTS["torch"] = torch.__version__
    RESULTS["date"] = time.strftime("%Y-%m-%d")
    print(f"gpu_check on {RESULTS['device']}, torch {RESULTS['torch']}", flush=True)
    steps = {"plain": against_plain_loop, "mfu": mfu, "compile": compile_effect,
             "overhead": overhead, "tests": tests, "attribution": attribution,
             "device_grid": device_grid_step}
    for name, step in steps.items():
        if args.only is None or name in args.only:
            try:
                step(out)
            except Exception as err:  # noqa: BLE001 - one broken check must not hide the others
                check(name, False, f"{type(err).__name__}: {err}")
            (out / "gpu_check.json").write_text(json.dumps(RESULTS, indent=2))
    print(f"gpu_check: {'all passed' if not FAILED else 'FAILED: ' + ', '.join(FAILED)}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
