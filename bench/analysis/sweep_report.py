"""Report of a sweep directory (runs/<sweep_id>/ with sweep.json): efficiency and step time
against the swept value (one line per combination of the other swept keys) and a stacked
slowdown decomposition per point, in one self-contained report.html plus plots/*.png.

The x axis is the first swept key whose values are all numbers (latency, bandwidth, ...), else the
first swept key, shown as categories (cluster presets, ...).
"""
from __future__ import annotations

import html
import math
import sys
from pathlib import Path

from bench.analysis import remedies_report
from bench.analysis.remedies import number, strategy_swept
from bench.results import files
from bench.results.console import percent
from bench.results.figures import data_uri, pyplot, save

METRICS = (("efficiency", "efficiency (share of device time computing)"),
           ("step_ms_p50", "step time p50 (ms; device ms for emulated points)"))


def main(sweep_dir: str) -> int:
    sweep_dir = Path(sweep_dir)
    doc = files.read_json(sweep_dir / "sweep.json")
    rows = [r for r in doc["points"] if r["status"] == "ok" and r.get("efficiency") is not None]
    if not rows:
        print(f"hetbench: sweep {doc['sweep_id']}: no finished point to report", file=sys.stderr)
        return 1
    x_key, others = choose_axes(doc["swept_keys"], rows)
    plots = sweep_dir / "plots"
    plots.mkdir(exist_ok=True)
    images = [plot_metric(rows, x_key, others, key, label, plots / f"sweep_{key}.png")
              for key, label in METRICS]
    images.append(plot_slowdown(rows, plots / "sweep_slowdown.png"))
    extra = ""
    if strategy_swept(doc["swept_keys"]):  # a remedies sweep: which strategy wins, at what loss
        extra = remedies_report.report(sweep_dir, doc, plots)
    out = sweep_dir / "report.html"
    out.write_text(render_html(doc, x_key, images, extra))
    print(f"hetbench: sweep report -> {out}", flush=True)
    return 0


def choose_axes(keys: list[str], rows: list[dict]) -> tuple[str | None, list[str]]:
    if not keys:
        return None, []
    numeric = [k for k in keys if all(number(r["swept"].get(k)) is not None for r in rows)]
    x_key = numeric[0] if numeric else keys[0]
    return x_key, [k for k in keys if k != x_key]


def lines(rows: list[dict], x_key: str | None, others: list[str]) -> dict[str, list[dict]]:
    """Label of the other swept values -> the rows on that line, in sweep order."""
    out: dict[str, list[dict]] = {}
    for row in rows:
        label = ", ".join(f"{_short(k)}={row['swept'].get(k)}" for k in others) or "all points"
        out.setdefault(label, []).append(row)
    return out


def _short(key: str) -> str:
    return key.split(".")[-1]


def _x_positions(rows: list[dict], x_key: str | None) -> tuple[list[float], list[str] | None]:
    """Numbers when the swept values are numbers, else category indexes plus their labels."""
    if x_key is None:
        return [float(r["index"]) for r in rows], None
    values = [r["swept"].get(x_key) for r in rows]
    if all(number(v) is not None for v in values):
        return [number(v) for v in values], None
    cats = list(dict.fromkeys(values))
    return [float(cats.index(v)) for v in values], cats


def plot_metric(rows, x_key, others, metric: str, label: str, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    categories = None
    for name, line in lines(rows, x_key, others).items():
        line = [r for r in line if r.get(metric) is not None]
        xs, cats = _x_positions(line, x_key)
        categories = categories or cats
        pairs = sorted(zip(xs, [r[metric] for r in line]))
        ax.plot([p[0] for p in pairs], [p[1] for p in pairs], marker="o", label=name)
    if categories:
        ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(x_key or "point")
    ax.set_ylabel(label)
    if metric == "efficiency":
        ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    if len(ax.get_lines()) > 1:
        ax.legend(fontsize=8)
    return save(fig, path)


def slowdown_parts(row: dict) -> tuple[float, float]:
    """Split the extra time over the ideal (total - 1) into imbalance and network shares.
    total = balance x (total / balance): the shares follow the logs of the two factors, so they
    add up to total - 1 even though each factor is a median over steps."""
    total, balance = row["slowdown_total"], row["slowdown_balance"]
    extra = max(total - 1.0, 0.0)
    log_bal, log_rest = max(math.log(balance), 0.0), max(math.log(total / balance), 0.0)
    if extra == 0.0 or log_bal + log_rest == 0.0:
        return 0.0, 0.0
    share = log_bal / (log_bal + log_rest)
    return extra * share, extra * (1.0 - share)


def plot_slowdown(rows: list[dict], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.4, 0.8 * len(rows)), 4.0))
    parts = [slowdown_parts(r) for r in rows]
    xs = range(len(rows))
    ax.bar(xs, [p[0] for p in parts], label="imbalance (slowest rank)", color="#d62728")
    ax.bar(xs, [p[1] for p in parts], bottom=[p[0] for p in parts],
           label="network (exposed link delay)", color="#1f77b4")
    ax.set_xticks(list(xs), [r["point"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("extra step time over ideal (x - 1)")
    ax.set_title("slowdown decomposition per point")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # never over the bars
    ax.grid(axis="y", alpha=0.3)
    return save(fig, path)


# ---------------------------------------------------------------------------------------------
# HTML: one file, images inline as data: URIs.

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td.l{text-align:left}.failed{color:#b00}
img{max-width:100%;margin:0.5em 0}"""

COLUMNS = (("point", None), ("status", None), ("step_ms_p50", "{:.1f}"),
           ("tokens_per_s", "{:,.0f}"), ("efficiency", percent), ("slowdown_balance", "x{:.2f}"),
           ("slowdown_network", "x{:.2f}"), ("slowdown_total", "x{:.2f}"), ("final_loss", "{:.3f}"))


def render_html(doc: dict, x_key: str | None, images: list[Path], extra: str = "") -> str:
    """`extra`: HTML put between the summary line and the table (the remedies section)."""
    title = f"hetbench sweep {doc['sweep_id']}"
    figures = "\n".join(f'<img alt="{html.escape(p.stem)}" src="{data_uri(p)}">' for p in images)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{len(doc['points'])} of {doc['points_total']} points recorded; swept: "
            f"{html.escape(', '.join(doc['swept_keys']) or '-')}; x axis: "
            f"{html.escape(x_key or 'point')}.</p>{extra}{_table(doc['points'])}{figures}"
            "</body></html>\n")


def _format(fmt, value) -> str:
    """A cell: a format string, a formatter (percent: tiny shares keep their digits), or str."""
    if fmt is None:
        return str(value)
    return fmt(value) if callable(fmt) else fmt.format(value)


def _table(rows: list[dict]) -> str:
    head = "".join(f"<th>{name}</th>" for name, _ in COLUMNS)
    body = []
    for row in rows:
        cells = []
        for name, fmt in COLUMNS:
            value = row.get(name)
            text = "-" if value is None else _format(fmt, value)
            cls = "l" + (" failed" if name == "status" and value != "ok" else "")
            cells.append(f"<td class='{cls if fmt is None else ''}'>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"
