"""The sweep table: one row per point (its swept values, status and headline numbers from its
summary.json) in sweep.json and sweep.csv, rewritten atomically as each point ends, under a lock
(launchers end points in parallel). A rerun with the same sweep_id skips points whose
summary.json says ok."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from bench.results import files
from bench.sweeps.plan import Plan, Point, run_id_of

SWEEP_SCHEMA_VERSION = 1

HEADLINE = ("step_ms_p50", "tokens_per_s", "efficiency", "efficiency_overall",
            "slowdown_balance", "slowdown_network",
            "slowdown_total", "final_loss", "strategy", "inter_site_bytes_per_step",
            "ideal_share", "time_base", "time_scale")


def finished_ok_row(point: Point, run_id: str, run_dir: Path) -> dict:
    return row_for(point, run_id, run_dir, "ok", None, reused=True)


def not_run(p: Plan, point: Point, reason: str) -> dict:
    row = row_for(point, run_id_of(p.sweep_id, point), p.sweep_dir / point.name, "failed", None,
                  reused=False)
    row["error"] = reason
    return row


def finished_ok(run_dir: Path) -> bool:
    """Done, and trusted: a `degraded` point (its host fell behind) is run again on resume."""
    return summary_status(run_dir) == "ok"


def summary_status(run_dir: Path):
    path = run_dir / "summary.json"
    try:
        return files.read_json(path).get("status") if path.exists() else None
    except ValueError:  # half a file cannot happen (atomic writes), but a hand-edited one can
        return None


def row_for(point: Point, run_id: str, run_dir: Path, status: str, elapsed, reused: bool) -> dict:
    summary = _read_summary(run_dir)
    row = {"index": point.index, "point": point.name, "run_id": run_id, "status": status,
           "overrides": " ".join(f"{k}={v}" for k, v in point.swept.items()),
           "swept": dict(point.swept), "elapsed_s": elapsed, "reused": reused,
           "run_dir": point.name}
    row.update(headline(summary))
    if status != "ok":
        row["error"] = summary.get("error") or f"no summary in {run_dir}"
    return row


def _read_summary(run_dir: Path) -> dict:
    try:
        return files.read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return {}


def headline(summary: dict) -> dict:
    step_ms, slowdown = summary.get("step_ms") or {}, summary.get("slowdown") or {}
    return {"step_ms_p50": step_ms.get("p50"), "tokens_per_s": summary.get("tokens_per_s"),
            "efficiency": summary.get("efficiency"),
            "efficiency_overall": summary.get("efficiency_overall"),
            "slowdown_balance": slowdown.get("balance"),
            "slowdown_network": slowdown.get("network"), "slowdown_total": slowdown.get("total"),
            "final_loss": summary.get("final_loss"),
            "strategy": (summary.get("strategy") or {}).get("name"),
            "inter_site_bytes_per_step": summary.get("inter_site_bytes_per_step"),
            "ideal_share": summary.get("ideal_share"),
            "time_base": summary.get("time_base"), "time_scale": summary.get("time_scale")}


def swept_keys(points: list[Point]) -> list[str]:
    return list(dict.fromkeys(k for p in points for k in p.swept))


def write_tables(p: Plan, rows: list[dict]) -> None:
    write_doc(p.sweep_dir, new_doc(p.sweep_id, swept_keys(p.points), len(p.points), p.time_scale,
                                   rows))


def new_doc(sweep_id: str, keys: list[str], total: int, time_scale, rows: list[dict]) -> dict:
    return {"schema_version": SWEEP_SCHEMA_VERSION, "sweep_id": sweep_id, "swept_keys": keys,
            "points_total": total, "time_scale": time_scale,
            "time_base": next((r["time_base"] for r in rows if r.get("time_base")), None),
            "points": rows}


def write_doc(sweep_dir: Path, doc: dict) -> None:
    files.write_json_atomic(sweep_dir / "sweep.json", doc)
    files.write_text_atomic(sweep_dir / "sweep.csv", _csv_text(doc["points"], doc["swept_keys"]))


def upsert_row(sweep_dir: Path, row: dict) -> dict:
    """Put one point's row into sweep.json / sweep.csv (replacing an older row of the same
    point), under a lock: launchers may end points in parallel processes."""
    import fcntl

    with open(sweep_dir / ".sweep.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        doc = files.read_json(sweep_dir / "sweep.json")
        rows = [r for r in doc["points"] if r["index"] != row["index"]] + [row]
        doc["points"] = sorted(rows, key=lambda r: r["index"])
        doc["time_base"] = doc.get("time_base") or row.get("time_base")
        write_doc(sweep_dir, doc)
    return doc


def _csv_text(rows: list[dict], keys: list[str]) -> str:
    columns = ["index", "point", "run_id", "status", "overrides", *keys, *HEADLINE,
               "elapsed_s", "reused", "error"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **row["swept"]})
    return buf.getvalue()
