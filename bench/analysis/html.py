"""report.html: one self-contained file. Images are base64 data: URIs, CSS is inline, nothing
is fetched from anywhere."""
from __future__ import annotations

import html
from pathlib import Path

from bench.results.console import flag_text, percent
from bench.results.figures import data_uri
from bench.results.rundir import Run

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1200px; color: #222; line-height: 1.45; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 28px;
     border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
tr.flag td { background: #fff1f0; }
ul.findings li { margin: 4px 0; }
figure { margin: 18px 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; }
.grid { display: flex; gap: 32px; flex-wrap: wrap; align-items: flex-start; }
"""


def _e(value) -> str:
    return html.escape("-" if value is None else str(value))


def _num(value, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def table(head: list[str] | None, rows: list[list], left: int = 0,
          flags: list[bool] | None = None) -> str:
    """Columns before `left` are left-aligned (names); the rest are numbers. No head: no header."""
    cls = lambda i: ' class="l"' if i < left else ""  # noqa: E731
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(head)) + "</tr>")
    for n, row in enumerate(rows):
        mark = ' class="flag"' if flags and flags[n] else ""
        out.append(f"<tr{mark}>" + "".join(f"<td{cls(i)}>{_e(v)}</td>" for i, v in enumerate(row))
                   + "</tr>")
    return "".join(out) + "</table>"


def run_section(run: Run) -> str:
    meta = run.metadata
    ranks = table(["rank", "host", "device (real)", "stands for", "site", "device compute (ms)",
                   "regime", "clock offset (ms)"],
                  [[r.get("rank"), r.get("host"), r.get("device"),
                    r.get("emulated_device") or r.get("configured_device"), r.get("site"),
                    _num((r.get("device_times") or {}).get("compute_ms"), ".2f"),
                    (r.get("device_times") or {}).get("regime", "-"),
                    _num(_ms(r.get("clock_offset_s")), ".3f")]
                   for r in meta.get("ranks") or []], left=5)
    links = table(["link", "latency (ms)", "bandwidth (Gbit/s)", "jitter (ms)"],
                  [[name, spec.get("latency_ms"), spec.get("bandwidth_gbps") or "no limit",
                    spec.get("jitter_ms")]
                   for name, spec in (meta.get("network") or {}).items() if isinstance(spec, dict)],
                  left=1)
    versions = ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items())
    model = meta.get("model") or {}
    facts = table(None, [["status", meta.get("status")], ["backend", meta.get("backend")],
                             ["hosts", ", ".join(meta.get("hosts") or [])], ["versions", versions],
                             ["model", f"{model.get('name', '-')}, {model.get('params', '-')} params"],
                             ["network", (meta.get("network") or {}).get("name")],
                             ["time base", _time_base(run)],
                             ["started", meta.get("start_time")], ["ended", meta.get("end_time")]],
                  left=2)
    return (f"<h2>Run</h2><div class='grid'><div>{facts}</div><div>{links}</div></div>"
            f"<h3>Ranks</h3>{ranks}")


def _time_base(run: Run) -> str:
    if run.time_base == "device":
        return (f"emulated device ms; this machine ran x{run.time_scale:.2f} slower "
                "(time_scale D; rank logs keep host time)")
    return "wall-clock ms"


def _ms(seconds):
    return None if seconds is None else seconds * 1000.0


def summary_section(run: Run, analysis: dict) -> str:
    s = run.summary
    head = ""
    if s.get("steps_measured"):
        sd, st = s["slowdown"], s["step_ms"]
        head = table(["step p50 (ms)", "p90 (ms)", "p99 (ms)", "tokens/s", "efficiency",
                      "slowdown balance", "network", "total", "final loss", "entropy floor"],
                     [[_num(st["p50"]), _num(st["p90"]), _num(st["p99"]),
                       _num(s["tokens_per_s"], ",.0f"), percent(s["efficiency"]),
                       _num(sd["balance"], ".2f"), _num(sd["network"], ".2f"),
                       _num(sd["total"], ".2f"), _num(s.get("final_loss"), ".3f"),
                       _num(run.entropy_floor, ".3f")]])
    summary_rows = {r["rank"]: r for r in s.get("ranks") or []}
    whatif = {r["rank"]: r for r in analysis["whatif"]["per_rank"]}
    rows, flags = [], []
    for row in analysis["stragglers"]:
        r = row["rank"]
        srow = summary_rows.get(r, {})
        rows.append([run.label(r), _num(row["compute_ms_p50"]), _num(srow.get("wait_ms_p50")),
                     _num(srow.get("transfer_ms_p50")), _num(row["relative_score"], ".2f"),
                     _num(row["expected_score"], ".2f"), flag_text(row),
                     "yes" if row["anomalous"] else "",
                     f"{row['last_arrivals']} ({percent(row['last_arrival_share'])})",
                     f"x{whatif[r]['slowdown']:.2f}"])
        flags.append(row["flagged"] or row["anomalous"])
    per_rank = table(["rank", "compute p50 (ms)", "wait p50 (ms)", "transfer p50 (ms)", "score",
                      "expected", "flagged", "anomalous", "last ready (steps)",
                      "what-if slowdown"], rows, left=1, flags=flags)
    return f"<h2>Summary</h2>{head}{per_rank}"


def analysis_section(analysis: dict, sentences: list[str]) -> str:
    items = "".join(f"<li>{_e(s)}</li>" for s in sentences)
    top = table(["k", "ranks fixed", "recovered share of gap to ideal", "step p50 after (ms)"],
                [[t["k"], ", ".join(map(str, t["ranks"])), percent(t["recovered_share"]),
                  _num(t["step_ms_p50"])] for t in analysis["whatif"]["top_k"]])
    trans = table(["rank", "start step", "end step (exclusive)", "steps", "extra (ms)"],
                  [[t["rank"], t["start_step"], t["end_step"], t["steps"], _num(t["extra_ms"])]
                   for t in analysis["transients"]]) if analysis["transients"] else ""
    return (f"<h2>Findings</h2><ul class='findings'>{items}</ul>"
            f"<div class='grid'><div><h3>What if the worst k ranks were fixed</h3>{top}</div>"
            + (f"<div><h3>Transients</h3>{trans}</div>" if trans else "") + "</div>")


def image(path: Path, caption: str) -> str:
    return (f"<figure><img alt='{_e(caption)}' src='{data_uri(path)}'>"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def render(run: Run, analysis: dict, sentences: list[str], plots: list[tuple[Path, str]]) -> str:
    run_id = run.metadata.get("run_id", run.path.name)
    figures = "".join(image(path, caption) for path, caption in plots)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>hetbench report {_e(run_id)}</title><style>{CSS}</style></head><body>"
            f"<h1>hetbench report: {_e(run_id)}</h1>"
            f"<p class='sub'>{_e(run.path.resolve())}</p>"
            f"{analysis_section(analysis, sentences)}{summary_section(run, analysis)}"
            f"<h2>Plots</h2>{figures}{run_section(run)}</body></html>")


def write(run: Run, analysis: dict, sentences: list[str], plots, path: Path) -> Path:
    path.write_text(render(run, analysis, sentences, plots), encoding="utf-8")
    return path
