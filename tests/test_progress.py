"""The live progress line: tok/s and step in the run's time base (device time when emulating),
ETA in this machine's wall time. By hand with a fake clock, then a real run's printed lines
against its records."""
from __future__ import annotations

import io
import re
import subprocess
import time

import numpy as np
import pytest
from conftest import FAST, HETBENCH, read_host_records, read_json, read_records

from bench.rank.window import show_progress as _show_progress
from bench.results.console import Progress
from bench.results.outroot import run_dirs


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _window(steps: dict[int, list[float]], tokens: int = 128) -> list[dict]:
    """{step: [step_ms per rank]} -> records."""
    return [{"step": s, "rank": r, "step_ms": ms, "tokens": tokens, "loss": 2.0 + r}
            for s, per_rank in steps.items() for r, ms in enumerate(per_rank)]


def test_tokens_per_s_over_the_window_and_eta_from_the_wall_clock():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(100, stream=out, time_base="device", clock=clock)
    clock.t += 3.0  # steps 0..9 took 3 wall seconds on this machine
    # steps 8 and 9 of the window (4 ranks x 128 tokens); slowest ranks 30 and 20 device ms
    _show_progress(progress, _window({8: [25.0, 30.0, 10.0, 12.0], 9: [18.0, 20.0, 19.0, 17.5]}),
                   step=9)
    line = out.getvalue()
    assert "step    10/100" in line
    assert f"{2 * 4 * 128 / (30.0 + 20.0) * 1000:>9,.0f} tok/s" in line  # 20,480
    assert "step   20.00 device ms" in line and "loss  3.500" in line
    assert f"ETA {90 * 3.0 / 10:5.0f}s" in line  # 90 steps left at 0.3 s each = 27 s


def test_eta_follows_the_pace_since_the_previous_line():
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(50, stream=out, clock=clock)
    clock.t += 1.0
    progress.update(9, 1000.0, 12.5, 1.0)   # 0.1 s per step, 40 left: 4 s
    clock.t += 5.0
    progress.update(19, 1000.0, 12.5, 1.0)  # now 0.5 s per step, 30 left: 15 s
    first, second = out.getvalue().splitlines()
    assert first.endswith("ETA     4s") and second.endswith("ETA    15s")
    assert "step   12.50 ms" in first  # a wall-clock run says plain ms


# ---------------------------------------------------------------------------------------------
# A real run: every printed number against the rank logs.

LINE = re.compile(r"step\s+(\d+)/(\d+)\s+([\d,]+) tok/s\s+step\s+([\d.]+) device ms\s+"
                  r"loss\s+([\d.]+)\s+ETA\s+(\d+)s")
STEPS, EVERY = 240, 30


@pytest.fixture(scope="module")
def progress_run(tmp_path_factory):
    """Two emulated ranks; the arrival time of each printed line on this machine's clock."""
    out = tmp_path_factory.mktemp("runs")
    proc = subprocess.Popen(
        [HETBENCH, "run", f"out_root={out}", *FAST, "cluster=h100x2", "network=campus",
         f"train.steps={STEPS}", "train.warmup_steps=10", f"train.log_every={EVERY}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for text in proc.stdout:
        lines.append((time.monotonic(), text))
    assert proc.wait(timeout=300) == 0, "".join(t for _, t in lines)[-3000:]
    (run_dir,) = run_dirs(out)
    printed = [(at, LINE.search(text)) for at, text in lines if LINE.search(text)]
    return run_dir, printed


@pytest.mark.slow
def test_printed_tokens_per_s_step_and_loss_match_the_records(progress_run):
    run_dir, printed = progress_run
    assert [int(m.group(1)) for _, m in printed] == list(range(EVERY, STEPS + 1, EVERY))
    records = read_records(run_dir)  # device time, as printed
    for _, m in printed:
        last = int(m.group(1)) - 1
        window = [r for r in records if last - EVERY < r["step"] <= last]
        per_step = {}
        for r in window:
            per_step[r["step"]] = max(per_step.get(r["step"], 0.0), r["step_ms"])
        tok_s = sum(r["tokens"] for r in window) / sum(per_step.values()) * 1000.0
        assert float(m.group(3).replace(",", "")) == pytest.approx(tok_s, abs=0.5)
        assert float(m.group(4)) == pytest.approx(per_step[last], abs=0.005)
        loss = np.mean([r["loss"] for r in window if r["step"] == last])
        assert float(m.group(5)) == pytest.approx(loss, abs=0.0005)


@pytest.mark.slow
def test_printed_eta_predicts_the_rest_of_the_run(progress_run):
    """Ground truth: rank 0's logged end of the last step minus the end of the printed step,
    on this machine's clock (the rank logs hold host time; one host, so offsets are ~0), each
    step's share taken at the time dilation D of the printed step: the ETA is the pace of the
    moment, and a busy host that later raises D (bench.emulate.lag) slows the rest by D'/D."""
    run_dir, printed = progress_run
    host = {r["step"]: r for r in read_host_records(run_dir) if r["rank"] == 0}
    assert read_json(run_dir / "summary.json")["time_scale"] > 1  # host and device differ
    for _, m in printed[1:-1]:  # the first line's pace includes start-up of the loop
        last = int(m.group(1)) - 1
        truth = _rest_at_the_d_of(host, last)
        assert int(m.group(6)) == pytest.approx(truth, rel=0.25, abs=1.0), (last, truth)
    assert int(printed[-1][1].group(6)) == 0


def _rest_at_the_d_of(host: dict, last: int) -> float:
    """Host seconds from the end of step `last` to the end of the run, had every later step run
    at step `last`'s D (records carry the D they ran at)."""
    d = host[last]["time_scale"]
    return sum((host[s]["t_end_s"] - host[s - 1]["t_end_s"]) * d / host[s]["time_scale"]
               for s in range(last + 1, STEPS))
