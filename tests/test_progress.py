"""The live progress line: tok/s and step in device time, ETA in this machine's time."""
from __future__ import annotations

import io

from bench.sinks import Progress
from bench.worker import _show_progress


def _window(step_ms: list[float], tokens: int = 128) -> list[dict]:
    return [{"step": 9, "rank": r, "step_ms": ms, "tokens": tokens, "loss": 2.0 + r}
            for r, ms in enumerate(step_ms)]


def test_progress_line_reads_device_time_and_a_wall_clock_eta():
    out = io.StringIO()
    progress = Progress(100, stream=out, time_base="device")
    # 4 ranks of 128 tokens; the slowest took 20 device ms; this machine runs 5x slower
    _show_progress(progress, _window([18.0, 20.0, 19.0, 17.5]), step=9, scale=5.0)
    line = out.getvalue()
    assert "step    10/100" in line
    assert f"{4 * 128 / 20.0 * 1000:>9,.0f} tok/s" in line  # 25,600 device tok/s
    assert "step   20.00 device ms" in line and "loss  3.500" in line
    assert f"ETA {90 * 20.0 * 5.0 / 1000:5.0f}s" in line  # 90 steps left x 100 host ms = 9 s


def test_wall_clock_runs_say_ms():
    out = io.StringIO()
    Progress(10, stream=out).update(4, 1000.0, 12.5, 1.0)
    assert "step   12.50 ms" in out.getvalue() and "ETA     0s" in out.getvalue()
