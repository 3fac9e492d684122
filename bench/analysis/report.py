"""`hetbench report RUN_DIR`: analysis.json, plots/, report.html and trace.json from a run
directory alone. A sweep directory (one holding sweep.json) goes to bench.analysis.sweep_report."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.analysis import (
    html,
    narrative,
    plots,
    plots_time,
    stragglers,
    trace,
    transients,
    whatif,
)
from bench.results import files, metrics, rundir

EXIT_NOT_A_RUN = 2


def _status(run: rundir.Run) -> str | None:
    """The run's status; `incomplete` for one whose metadata still says running but which left
    no summary.json (killed, or still going): its records are read as far as they go."""
    status = run.summary.get("status") or run.metadata.get("status")
    return "incomplete" if status == "running" and not run.summary else status


def analyse(run: rundir.Run) -> dict:
    """The numbers of analysis.json (docs/design.md, 'What the numbers mean'; docs/report.md)."""
    return {
        "schema_version": metrics.SCHEMA_VERSION,
        "run_id": run.metadata.get("run_id", run.path.name),
        "status": _status(run),
        "world_size": run.world_size,
        "steps_measured": len(run.steps),
        "straggler_threshold": run.threshold,
        "stragglers": stragglers.analyse(run.steps, run.ranks, run.threshold, run.targets),
        "transients": transients.find(run.steps),
        "whatif": whatif.analyse(run.steps),
    }


def timeline_caption(run: rundir.Run, analysis: dict, internals: bool) -> str:
    """What the timeline shows; without `internals`, a word where its steps hold lagged ones."""
    text = f"Phases of each rank on one clock ({run.ms})"
    if internals:
        return (text + "; black bars: the pad compute pacing put inside forward + backward; "
                "red step labels: steps in which this machine fell behind the emulated timeline.")
    shown = plots_time.window_steps(run, analysis["transients"])
    lagged = sorted(plots_time.lagged_steps(run).intersection(shown))
    if lagged:
        return (text + f". In step{'s' if len(lagged) > 1 else ''} "
                f"{', '.join(map(str, lagged))} this machine fell behind the emulated timeline, "
                "so their phases are longer than the devices' own; --internals marks them.")
    return text + "."


def make_plots(run: rundir.Run, analysis: dict, folder: Path,
               internals: bool = False) -> list[tuple[Path, str]]:
    """[(png path, caption)] in the order the report shows them. `internals`: the timeline
    shows the emulation's own marks too (pad, lagged steps), docs/report.md."""
    folder.mkdir(exist_ok=True)
    return [
        (plots_time.timeline(run, analysis["transients"], folder / "timeline.png", internals),
         timeline_caption(run, analysis, internals)),
        (plots.wait_heatmap(run, folder / "wait_heatmap.png"),
         "wait_ms per rank and measured step."),
        (plots.waterfall(run, analysis["whatif"]["breakdown"], folder / "waterfall.png"),
         "Medians over measured steps: ideal = balanced compute and no injected link delay."),
        (plots.compute_distributions(run, folder / "compute_distributions.png"),
         "Compute = forward + backward per measured step; whiskers at 1.5 IQR, dots beyond."),
        (plots_time.loss_curves(run, folder / "loss.png"),
         "Mean training loss over ranks; grey = warmup steps (excluded from statistics)."),
    ]


def build_report(run_dir, internals: bool = False) -> dict:
    """Write analysis.json, plots/, report.html and trace.json; return what was written.
    `internals`: the timeline and the trace show the emulation's own marks too."""
    run = rundir.load(run_dir)
    analysis = analyse(run)
    sentences = narrative.sentences(run, analysis)
    analysis["verdict"] = sentences
    files.write_json_atomic(run.path / "analysis.json", analysis)
    figures = make_plots(run, analysis, run.path / "plots", internals)
    page = html.write(run, analysis, sentences, figures, run.path / "report.html")
    trace_path = trace.write(run, run.path / "trace.json", internals)
    return {"analysis": analysis, "plots": [path for path, _ in figures], "html": page,
            "trace": trace_path, "verdict": sentences, "notes": run.notes}


def main(run_dir: str, internals: bool = False) -> int:
    path = Path(run_dir)
    if (path / "sweep.json").exists():
        from bench.analysis.sweep_report import main as sweep_main

        return sweep_main(run_dir)
    started = time.monotonic()
    try:
        result = build_report(path, internals)
    except rundir.NotARunDir as err:
        print(f"hetbench report: error: {err}", file=sys.stderr)
        return EXIT_NOT_A_RUN
    for note in result["notes"]:
        print(f"note: {note}")
    for line in result["verdict"]:
        print(line)
    print(f"\nwrote {path / 'analysis.json'}\n      {result['html']}\n      {result['trace']}\n"
          f"      {path / 'plots'}/ ({len(result['plots'])} plots) "
          f"in {time.monotonic() - started:.1f} s")
    return 0
