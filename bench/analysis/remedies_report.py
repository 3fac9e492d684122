"""The remedies section of a sweep report: load each ok point's loss curve (in device time),
write remedies.json, print one sentence per group, draw the plots and return the HTML section
that the sweep report puts above its own table. The numbers come from bench.analysis.remedies."""
from __future__ import annotations

import html
import re
from pathlib import Path

from bench.analysis import remedies_plots as draw
from bench.analysis.remedies import (
    BASELINE,
    SMOOTH_SHARE,
    curve_of,
    human_bytes,
    summarize,
)
from bench.results import files, rundir
from bench.results.console import percent
from bench.results.figures import data_uri


def load_curves(sweep_dir: Path, rows: list[dict]) -> tuple[dict, dict]:
    """({index: curve or None}, {index: entropy floor or None}) of the ok points. The loader
    (rundir.load) turns the host-time records into device time; a point whose directory cannot
    be read gets None and shows "-" rather than stopping the report."""
    curves, floors = {}, {}
    for row in rows:
        try:
            run = rundir.load(sweep_dir / (row.get("run_dir") or row["point"]))
        except (rundir.NotARunDir, OSError, ValueError, KeyError):
            curves[row["index"]], floors[row["index"]] = None, None
            continue
        curves[row["index"]], floors[row["index"]] = curve_of(run.all_steps), run.entropy_floor
    return curves, floors


def report(sweep_dir: Path, doc: dict, plots: Path) -> str:
    """Write remedies.json and plots/remedies_*.png, print one sentence per group; return the
    HTML section that sweep_report puts above its own table."""
    ok = [r for r in doc["points"] if r.get("status") == "ok"]
    curves, floors = load_curves(Path(sweep_dir), ok)
    result = summarize(doc, curves)
    files.write_json_atomic(Path(sweep_dir) / "remedies.json", result)
    for verdict in result["groups"]:
        print(verdict["sentence"])
    images = [draw.throughput(result, plots / "remedies_tokens_per_s.png")]
    for verdict in result["groups"]:
        members = [p for p in result["points"] if p["group"] == verdict["group"]]
        path = plots / f"remedies_loss_{_slug(verdict['group'])}.png"
        images.append(draw.losses(verdict["group"], members, curves, floors, doc, path))
    failed = [r["point"] for r in doc["points"] if r.get("status") != "ok"]
    return _html(result, [p for p in images if p is not None], failed)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", label).strip("_")


COLUMNS = ("strategy", "group", "tokens/s", "speedup vs ddp", "efficiency",
           "inter-site bytes/step", "final loss", "loss gap vs ddp at equal tokens")


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _signed_percent(pct) -> str:
    """A loss gap in per cent with its sign: +5.6%, -0.042% (tiny gaps keep their digits)."""
    if pct is None:
        return "-"
    return ("+" if pct > 0 else "") + percent(pct / 100.0)


def _html(result: dict, images: list[Path], failed: list[str]) -> str:
    items = "".join(f"<li>{html.escape(v['sentence'])}</li>" for v in result["groups"])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = []
    for p in result["points"]:
        gap = "0" if p["strategy"] == BASELINE and p["loss_gap_pct"] is not None \
            else _signed_percent(p["loss_gap_pct"])
        cells = [p["strategy"], p["group"], _fmt(p["tokens_per_s"], ",.0f"),
                 _fmt(p["speedup_vs_ddp"], ".2f") + ("x" if p["speedup_vs_ddp"] else ""),
                 percent(p["efficiency"]), human_bytes(p["inter_site_bytes_per_step"]),
                 _fmt(p["final_loss"], ".3f"), gap]
        left = " class='l'"
        body.append("<tr>" + "".join(f"<td{left if i < 2 else ''}>{html.escape(c)}</td>"
                                     for i, c in enumerate(cells)) + "</tr>")
    note = (f"<p class='failed'>Not in this table (not ok): {html.escape(', '.join(failed))}.</p>"
            if failed else "")
    figures = "".join(f'<img alt="{html.escape(p.stem)}" src="{data_uri(p)}">'
                      for p in images)
    return (f"<h2>Remedies</h2><ul>{items}</ul><table><tr>{head}</tr>{''.join(body)}</table>"
            f"{note}<p>Speedup: tokens/s over ddp's at the same latency. Loss gap: the loss "
            f"averaged over the last {SMOOTH_SHARE:.0%} of steps up to the largest token count "
            f"both runs reached, relative to ddp's (+ = worse).</p>{figures}<h2>All points</h2>")
