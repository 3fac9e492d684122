"""The report's pictures are in the user's world: an emulated run's timeline shows the devices'
phases in device time, and the emulation's own marks (pad, lagged steps) only with --internals.
Shares print with meaningful digits (bench.results.console.percent), never a flat 0.0%."""
import json

import numpy as np
import pytest
from analysis_rundir import build_run_dir, make_records

from bench.analysis import (
    narrative,
    plots_time,
    remedies_report,
    report,
    sweep_report,
    trace,
)
from bench.results import rundir
from bench.results.console import milliseconds, percent

D = 4.0            # host ms per device ms
PAD_SHARE = 0.4    # pacing's pad: 40% of each compute, inside forward + backward
GAP_EVERY, GAP_MS = 10, 400.0   # the gather between log windows: host ms before steps 10, 20
WARMUP = 5
PHASE_NAMES = ["data", "forward", "backward", "wait", "transfer", "optimizer"]


def _compute(steps: int = 30) -> list[list[float]]:
    rng = np.random.default_rng(3)
    return (np.array([40.0, 40.0, 90.0]) * rng.lognormal(0, 0.03, size=(steps, 3))).tolist()


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """(run directory, its host-time records): three ranks at D = 4, pad in every step, a
    gather's gap before every tenth step."""
    compute = _compute()
    args = {"warmup": WARMUP, "pad_share": PAD_SHARE, "gap_every": GAP_EVERY, "gap_ms": GAP_MS}
    path = build_run_dir(tmp_path_factory.mktemp("emu"), compute, time_scale=D, **args)
    return path, make_records(compute, **args)


def _bars(fig) -> dict:
    """{(name, rank): [(x, width)]} read back from the drawn collections (gid "name|rank")."""
    out = {}
    for coll in fig.axes[0].collections:
        name, rank = coll.get_gid().split("|")
        rects = [(p.vertices[:, 0].min(), np.ptp(p.vertices[:, 0])) for p in coll.get_paths()]
        out[name, int(rank)] = sorted(rects)
    return out


def _legend(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def _origins(host_records, steps, gaps: bool) -> dict:
    """{step: host instant its x counts from}: the window's first start, plus (gaps=False) the
    gaps before it: the GAP_MS put before every GAP_EVERY-th step."""
    t0 = min(r["t_start_s"] for r in host_records if r["step"] in steps)
    skipped = lambda s: 0.0 if gaps else GAP_MS / 1000.0 * sum(  # noqa: E731
        1 for k in steps[1:] if k <= s and k % GAP_EVERY == 0)
    return {s: t0 + skipped(s) for s in steps}


def _expected_phases(host_records, steps, gaps: bool = False) -> dict:
    """The device-time phases by hand from the host-time records: every instant / D, in ms from
    the window's first start, the gathers' gaps left out unless `gaps`."""
    recs = [r for r in host_records if r["step"] in steps]
    origins = _origins(host_records, steps, gaps)
    last_ready = {s: max(r["t_ready_s"] for r in recs if r["step"] == s) for s in steps}
    out = {}
    for r in sorted(recs, key=lambda r: r["step"]):
        ms = lambda t: (t - origins[r["step"]]) * 1000.0 / D  # noqa: E731
        data_end = r["t_start_s"] + r["data_ms"] / 1000.0
        fwd_end = data_end + r["fwd_ms"] / 1000.0
        edges = [r["t_start_s"], data_end, fwd_end, r["t_ready_s"], last_ready[r["step"]],
                 r["t_synced_s"], r["t_end_s"]]
        for name, a, b in zip(PHASE_NAMES, edges, edges[1:]):
            out.setdefault((name, r["rank"]), []).append((ms(a), ms(b) - ms(a)))
    return {key: sorted(v) for key, v in out.items()}


def test_the_timeline_draws_device_phases_and_no_pad_by_default(emulated):
    path, host = emulated
    run = rundir.load(path)
    fig = plots_time.draw_timeline(run, [])
    drawn = _bars(fig)
    assert {name for name, _ in drawn} == set(PHASE_NAMES)
    assert _legend(fig) == PHASE_NAMES and not any("pad" in t for t in _legend(fig))
    shown = plots_time.window_steps(run, [])
    assert shown == list(range(WARMUP, WARMUP + plots_time.WINDOW_STEPS))
    expected = _expected_phases(host, shown)
    assert drawn.keys() == expected.keys()
    for key, bars in expected.items():
        assert np.array(drawn[key]) == pytest.approx(np.array(bars), abs=1e-6), key
    for rank in range(3):  # the phases tile each step: no gap, no overlap, step_ms / D
        total = sum(w for name in PHASE_NAMES for _, w in drawn[name, rank])
        steps = [r for r in host if r["rank"] == rank and r["step"] in shown]
        assert total == pytest.approx(sum(r["step_ms"] for r in steps) / D, rel=1e-9)
        end = max(x + w for x, w in drawn["optimizer", rank])
        assert end == pytest.approx(total, rel=1e-9)  # steps back to back: no gather's gap
    assert "gaps between log windows left out" in fig.axes[0].get_xlabel()


def test_internals_add_the_pad_ending_at_t_ready_and_leave_the_phases_alone(emulated):
    path, host = emulated
    run = rundir.load(path)
    fig = plots_time.draw_timeline(run, [], internals=True)
    inside = _bars(fig)
    assert plots_time.LABELS[plots_time.PAD] in _legend(fig)
    shown = plots_time.window_steps(run, [])
    phases = {k: v for k, v in inside.items() if k[0] != plots_time.PAD}
    expected = _expected_phases(host, shown, gaps=True)  # this machine's clock as it ran
    assert phases.keys() == expected.keys()
    for key, bars in expected.items():
        assert np.array(phases[key]) == pytest.approx(np.array(bars), abs=1e-6), key
    t0 = min(r["t_start_s"] for r in host if r["step"] in shown)
    for rank in range(3):
        recs = [r for r in host if r["rank"] == rank and r["step"] in shown]
        want = sorted(((r["t_ready_s"] - t0) * 1000.0 / D - r["pad_ms"] / D, r["pad_ms"] / D)
                      for r in recs)
        assert np.array(inside[plots_time.PAD, rank]) == pytest.approx(np.array(want), abs=1e-6)
        assert all(w > 0 for _, w in want)


def test_trace_keeps_pad_for_internals_only(emulated):
    path, _ = emulated
    run = rundir.load(path)
    steps = [e for e in trace.events(run) if e["ph"] == "X" and e["cat"] != "phase"]
    assert steps and not any("pad_ms" in e["args"] or "lagged" in e["args"] for e in steps)
    inside = [e for e in trace.events(run, internals=True) if e["ph"] == "X" and e["cat"] != "phase"]
    rec = run.all_steps[7][1]
    (e,) = [e for e in inside if e["pid"] == 1 and e["name"] == "step 7"]
    assert e["args"]["pad_ms"] == pytest.approx(rec["pad_ms"]) and e["args"]["lagged"] is False


def test_the_loss_against_time_counts_device_step_time_only(emulated, monkeypatch):
    path, host = emulated
    drawn = []
    monkeypatch.setattr(plots_time, "save", lambda fig, out: drawn.append(fig) or out)
    plots_time.loss_curves(rundir.load(path), path / "loss.png")
    axis = drawn[0].axes[1]
    assert axis.get_xlabel() == "cumulative step time (device s)"
    per_step = [max(r["step_ms"] for r in host if r["step"] == s) / D for s in range(30)]
    x = axis.get_lines()[0].get_xdata()
    assert x == pytest.approx(np.cumsum(per_step) / 1000.0, rel=1e-9)  # no gather's gap in it


def test_the_waterfall_prints_a_tiny_network_delay_with_digits(emulated, monkeypatch):
    from bench.analysis import plots

    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, out: drawn.append(fig) or out)
    parts = {"ideal_ms": 9.98, "imbalance_ms": 0.0, "network_ms": 0.0244,
             "other_ms": -7.7e-16, "measured_ms": 10.0045}
    plots.waterfall(rundir.load(emulated[0]), parts, emulated[0] / "w.png")
    assert [t.get_text() for t in drawn[0].axes[0].texts] == \
        ["10.0 ms", "+0.0 ms", "+0.024 ms", "+0.0 ms", "10.0 ms"]


def test_the_window_slides_past_a_lagged_step(tmp_path):
    run = rundir.load(build_run_dir(tmp_path, _compute(), time_scale=D, warmup=WARMUP,
                                    lagged=(9,)))
    assert plots_time.window_steps(run, []) == list(range(10, 20))
    transient = [{"start_step": 12}]  # aim 9..18; the nearest clean start keeps step 12 inside
    assert plots_time.window_steps(run, transient) == list(range(10, 20))


def test_unavoidable_lagged_steps_are_marked_with_internals_and_named_in_the_caption(tmp_path):
    lagged = tuple(range(WARMUP, 30, 4))
    path = build_run_dir(tmp_path, _compute(), time_scale=D, warmup=WARMUP, lagged=lagged)
    run = rundir.load(path)
    shown = plots_time.window_steps(run, [])
    marked = sorted(set(lagged) & set(shown))
    assert marked
    texts = lambda fig: [t.get_text() for t in fig.axes[0].texts]  # noqa: E731
    assert not any("lagged" in t for t in texts(plots_time.draw_timeline(run, [])))
    inside = texts(plots_time.draw_timeline(run, [], internals=True))
    assert {int(t.split()[1].rstrip(",")) for t in inside if "host lagged" in t} <= set(marked)
    assert any("host lagged" in t for t in inside)
    analysis = report.analyse(run)
    caption = report.timeline_caption(run, analysis, internals=False)
    assert f"steps {', '.join(map(str, marked))} this machine fell behind" in caption
    assert "--internals" in caption and "pad" not in caption


def test_report_html_caption_and_a_tiny_efficiency(emulated, tmp_path):
    path, _ = emulated
    summary = json.loads((path / "summary.json").read_text())
    (path / "summary.json").write_text(json.dumps({**summary, "efficiency": 0.00042}))
    try:
        result = report.build_report(path)
        page = result["html"].read_text()
        assert "<td>0.042%</td>" in page
        assert "pad (" not in page and "the pad" not in page  # the caption names no pad
        inside = report.build_report(path, internals=True)["html"].read_text()
        assert "black bars: the pad" in inside
    finally:
        (path / "summary.json").write_text(json.dumps(summary))


def test_shares_and_times_keep_their_digits():
    assert percent(-0.00042) == "-0.042%" and percent(-0.05) == "-5.0%"
    assert [milliseconds(v) for v in (None, 0.0, 3e-4, 0.0244, -0.5, 0.96, 12.34)] == \
        ["-", "0.0", "0.0", "0.024", "-0.5", "1.0", "12.3"]
    parts = {"whatif": {"breakdown": {"network_ms": 0.03, "measured_ms": 100.0}}}
    assert narrative.network_sentence(parts) == \
        "Injected link delay adds 0.03 ms to the median step (0.03% of it)."
    row = {"point": "p", "status": "ok", "efficiency": 0.00042}
    assert "<td class=''>0.042%</td>" in sweep_report._table([row])
    assert remedies_report._signed_percent(-0.042) == "-0.042%"
    assert remedies_report._signed_percent(5.5556) == "+5.6%"
    assert remedies_report._signed_percent(None) == "-"
