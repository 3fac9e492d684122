"""Checking advice on this machine: the top candidates and ddp, each a short emulated `hetbench
run` of exactly the predicted config (the same overrides, steps and warm-up), side by side with
its prediction. Only where the cluster fits: up to MAX_WORLD ranks, all emulated here (a run's
ranks are processes on this machine's cores).

Each run calibrates its own time dilation D (device-time results do not depend on it); the runs
go under the advise directory, runs/<NN>-<strategy>.

localsgd and diloco runs keep the steps this machine lagged (emulation.lagged_steps=keep): their
measured window holds one sync among H steps, and leaving out any step changes the sync's share
(two lagged plain steps of 8 at H = 8 made the sync weigh 1/6; a lagged sync step, 0). A
lagged step is paced like the others, so keeping it costs far less: at mixed4 over 50 ms, H = 8,
the kept steps gave the prediction to 7 digits, where leaving the lagged ones out came in 7%
under it in one run and 29% over it in another.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.costs import cluster, placement
from bench.results import files

MAX_WORLD = 8
HETBENCH = [sys.executable, "-m", "bench.cli"]
KEEP_LAGGED = "emulation.lagged_steps=keep"


def fits(cfg, max_world: int = MAX_WORLD) -> tuple[bool, str]:
    """(whether advice can be checked by emulation here, why not)."""
    world = cluster.world_size(cfg)
    if cfg.predict.world_size and int(cfg.predict.world_size) != world:
        return False, (f"predict.world_size={cfg.predict.world_size} is a prediction at scale: "
                       f"the cluster as configured has {world} ranks")
    if world > max_world:
        return False, f"{world} ranks: more than the {max_world} this machine emulates"
    if not placement.paced_here(cfg, world):
        return False, (f"the ranks would not be paced here (emulation.compute="
                       f"{cfg.emulation.compute}, or real GPUs): their tokens/s would be this "
                       "machine's, not the cluster's")
    return True, ""


def run_dir_name(index: int, label: str) -> str:
    return f"{index:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', label)}"


def emulate(base: list[str], row: dict, out: Path, index: int, timeout_s: float = 1800) -> dict:
    """One emulated run of row's variant: {run_dir, status, tokens_per_s, efficiency,
    inter_site_bytes_per_step, time_scale} or {run_dir, status: failed, error}."""
    name = run_dir_name(index, row["strategy"])
    overrides = [*base, *row["variant"].overrides(), f"out_root={out}", f"run_id={name}",
                 "logger=none"]
    if row["variant"].outer:  # one sync in the window: see above
        overrides.append(KEEP_LAGGED)
    run_dir = out / name
    try:
        proc = subprocess.run([*HETBENCH, "run", *overrides], capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"run_dir": str(run_dir), "status": "failed", "error": f"over {timeout_s:.0f} s"}
    summary_path = run_dir / "summary.json"
    if proc.returncode != 0 or not summary_path.exists():
        tail = (proc.stdout + proc.stderr)[-2000:]
        return {"run_dir": str(run_dir), "status": "failed",
                "error": f"exit status {proc.returncode}: {tail}"}
    s = files.read_json(summary_path)
    return {"run_dir": str(run_dir), "status": s.get("status", "ok"),
            "tokens_per_s": s["tokens_per_s"], "efficiency": s.get("efficiency_overall"),
            "inter_site_bytes_per_step": s.get("inter_site_bytes_per_step"),
            "step_ms_p50": s["step_ms"]["p50"], "time_scale": s.get("time_scale"),
            "time_base": s.get("time_base")}


def verify(base: list[str], rows: list[dict], out: Path, say=print) -> None:
    """Emulate each row (in place: row["emulated"], row["error_pct"] of the prediction)."""
    out.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        say(f"hetbench advise: emulating {row['strategy']} ({' '.join(row['variant'].overrides())})"
            f" {i + 1}/{len(rows)}")
        row["emulated"] = emulate(base, row, out, i)
        got = row["emulated"].get("tokens_per_s")
        row["error_pct"] = (row["tokens_per_s"] - got) / got * 100.0 if got else None
