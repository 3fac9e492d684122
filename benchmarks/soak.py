"""Soak: a long unpaced run of the tiny model, watched from outside for memory growth and
step-time drift between its first and last thousand steps.

    python benchmarks/soak.py [--steps 10000] [--ranks 2] [overrides...]

Runs `hetbench run` (emulation.compute=off and network=rack: no pacing, no injected delay, so
steps run as fast as this machine does; logger=none) and samples every rank's resident set
(VmRSS in /proc/<pid>/status) every 0.25 s on this machine's monotonic clock, the clock the rank
logs use (one host: clock offsets ~0). Then, per rank:
  RSS growth = RSS at the end of the last step / RSS at the end of step 1000 - 1
               (the nearest sample at or before each instant)
and for the cluster, with T_s = max_r step_ms of step s:
  drift      = median T over the last 1000 steps / median T over steps 100..1099 - 1
               (the first 100 steps are the run's warmup: allocator and caches settling)
Prints both per rank and as the last lines `rss_growth_max=<x>` and `drift=<x>` (goal: both
under 5%). The run directory is kept under --out (default: a temporary folder).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.interrupts import descendants
from bench.results.outroot import run_dirs

HETBENCH = str(Path(sys.executable).parent / "hetbench")
WINDOW = 1000
WARMUP = 100
SAMPLE_S = 0.25


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--out", default=None, help="out_root for the run (default: a temp folder)")
    ap.add_argument("overrides", nargs="*")
    return ap.parse_args(argv)


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def rank_of(pid: int) -> int | None:
    """A rank process (python -m bench.train) and its RANK, from its command line and env."""
    try:
        if b"bench.train" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return None
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(e[5:]) for e in env if e.startswith(b"RANK=")]
    return ranks[0] if ranks else None


def sample(driver: subprocess.Popen, samples: list, stop: threading.Event) -> None:
    """(monotonic s, rank, RSS KiB) for every rank, every SAMPLE_S, until the run ends."""
    ranks: dict[int, int] = {}
    while not stop.is_set():
        for pid in descendants(driver.pid):
            if pid not in ranks and (rank := rank_of(pid)) is not None:
                ranks[pid] = rank
        now = time.monotonic()
        for pid, rank in ranks.items():
            if (kib := rss_kib(pid)) is not None:
                samples.append((now, rank, kib))
        stop.wait(SAMPLE_S)


def run(args, out_root: Path) -> tuple[Path, list]:
    cmd = [HETBENCH, "run", f"out_root={out_root}",
           f"cluster.groups=[{{device:H100,count:{args.ranks},site:a}}]", "network=rack",
           "emulation.compute=off", "logger=none", f"train.steps={args.steps}",
           f"train.warmup_steps={WARMUP}", "train.micro_batch=2", "train.seq_len=32",
           *args.overrides]
    samples, stop = [], threading.Event()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watcher = threading.Thread(target=sample, args=(proc, samples, stop), daemon=True)
    watcher.start()
    _, err = proc.communicate()
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        sys.exit(f"soak: the run failed (exit {proc.returncode}):\n{err[-3000:]}")
    return run_dirs(out_root)[-1], samples  # the newest: ids are date-stamped


def rss_at(samples: list, rank: int, t: float) -> int:
    before = [kib for at, r, kib in samples if r == rank and at <= t]
    if not before:
        raise SystemExit(f"soak: no RSS sample of rank {rank} before t={t:.1f}")
    return before[-1]


def analyse(run_dir: Path, samples: list, steps: int) -> dict:
    by_step: dict[int, dict[int, dict]] = {}
    for path in (run_dir / "ranks").glob("rank_*.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("kind") == "header":  # the log's clock and D, not a step
                continue
            by_step.setdefault(rec["step"], {})[rec["rank"]] = rec
    ranks = sorted(by_step[0])
    T = {s: max(r["step_ms"] for r in recs.values()) for s, recs in by_step.items()}
    first = statistics.median(T[s] for s in range(WARMUP, WARMUP + WINDOW))
    last = statistics.median(T[s] for s in range(steps - WINDOW, steps))
    growth = {}
    for rank in ranks:
        early = rss_at(samples, rank, by_step[WINDOW - 1][rank]["t_end_s"])
        late = rss_at(samples, rank, by_step[steps - 1][rank]["t_end_s"])
        growth[rank] = {"rss_mib_step_1000": early / 1024, "rss_mib_end": late / 1024,
                        "growth": late / early - 1.0}
    blocks = [statistics.median(T[s] for s in range(b, min(b + WINDOW, steps)))
              for b in range(0, steps, WINDOW)]
    return {"steps": steps, "step_ms_p50_first": first, "step_ms_p50_last": last,
            "step_ms_p50_by_block": blocks,
            "drift": last / first - 1.0, "rss": growth,
            "rss_growth_max": max(g["growth"] for g in growth.values())}


def main(argv=None) -> int:
    args = parse(argv if argv is not None else sys.argv[1:])
    if args.steps < 2 * WINDOW + WARMUP:
        sys.exit(f"soak: use --steps >= {2 * WINDOW + WARMUP}")
    with tempfile.TemporaryDirectory() as tmp:
        out_root = Path(args.out or tmp)
        started = time.monotonic()
        run_dir, samples = run(args, out_root)
        result = analyse(run_dir, samples, args.steps)
    print(f"soak: {args.steps} steps on {args.ranks} ranks in {time.monotonic() - started:.0f} s "
          f"({os.cpu_count()} cores), tiny model, no pacing")
    for rank, g in result["rss"].items():
        print(f"rank {rank}: RSS {g['rss_mib_step_1000']:.1f} MiB at step 1000, "
              f"{g['rss_mib_end']:.1f} MiB at the end: {g['growth']:+.2%}")
    print(f"step p50 {result['step_ms_p50_first']:.3f} ms (steps {WARMUP}..{WARMUP + WINDOW - 1}) "
          f"-> {result['step_ms_p50_last']:.3f} ms (last {WINDOW})")
    print(f"step p50 per {WINDOW} steps (a trend is drift; swings both ways are this machine's "
          f"load): {' '.join(f'{ms:.2f}' for ms in result['step_ms_p50_by_block'])} ms")
    print(f"rss_growth_max={result['rss_growth_max']:+.4f}")
    print(f"drift={result['drift']:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
