"""What a run prints: rank 0's live progress line and the summary table, headline, MFU,
strategy and time-base lines (from summary.json, so `hetbench run` and a reread agree)."""
from __future__ import annotations

import sys
import time


class Progress:
    """Rank 0's live line: step, tokens/s, ETA. Redraws in place on a terminal.

    tok/s and the step time are in the run's time base (device time when emulating); the ETA is
    in this machine's wall time: the steps left x the wall seconds per step since the previous
    line (gathers and pacing included), which is what the rest of the run will cost."""

    def __init__(self, total_steps: int, stream=None, time_base: str = "wall", clock=time.monotonic):
        self.total, self.stream = total_steps, stream or sys.stdout
        self.tty = self.stream.isatty()
        self.unit = "ms" if time_base == "wall" else f"{time_base} ms"
        self.clock = clock
        self.last_step, self.last_time = -1, clock()  # the loop starts right after this

    def eta_s(self, step: int) -> float:
        """Wall seconds left after `step` (0-based), at the pace since the previous line."""
        now = self.clock()
        per_step = (now - self.last_time) / max(1, step - self.last_step)
        self.last_step, self.last_time = step, now
        return (self.total - step - 1) * per_step

    def update(self, step: int, tokens_per_s: float, step_ms: float, loss: float) -> None:
        eta = self.eta_s(step)
        line = (f"step {step + 1:>5}/{self.total}  {tokens_per_s:>9,.0f} tok/s  "
                f"step {step_ms:7.2f} {self.unit}  loss {loss:6.3f}  ETA {eta:5.0f}s")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def format_table(summary: dict) -> str:
    """One row per rank: device, site, compute, wait, transfer (ms, p50), score, flagged
    (flag_text)."""
    head = f"{'rank':>4}  {'device':<12} {'emulates':<10} {'site':<5} {'compute(ms)':>11} " \
           f"{'wait(ms)':>9} {'transfer(ms)':>12} {'score':>6} {'expected':>8} {'mfu':>6} " \
           f"{'bound':<7}  flagged"
    lines = [head, "-" * len(head)]
    for row in summary.get("ranks", []):
        expected = "-" if row["expected_score"] is None else f"{row['expected_score']:.2f}"
        lines.append(
            f"{row['rank']:>4}  {str(row['device'])[:12]:<12} {str(row['emulated_device'] or '-'):<10} "
            f"{row['site']:<5} {row['compute_ms_p50']:>11.2f} {row['wait_ms_p50']:>9.2f} "
            f"{row['transfer_ms_p50']:>12.2f} {row['relative_score']:>6.2f} {expected:>8} "
            f"{percent(row.get('mfu')):>6} {(row.get('bound') or '-').split('-')[0]:<7}  "
            f"{flag_text(row)}")
    return "\n".join(lines)


def percent(value) -> str:
    """A share as people read it: 23.2%, 0.42%, and a launch-bound rank's tiny MFU as two
    significant digits (0.016%), never a flat 0.00%. A negative share keeps its sign."""
    if value is None:
        return "-"
    if value < 0:
        return "-" + percent(-value)
    if value >= 0.01:
        return f"{value:.1%}"
    if value >= 0.001 or value == 0:
        return f"{value:.2%}"
    return f"{value * 100:.2g}%"


def milliseconds(value) -> str:
    """A time in ms as people read it: 12.3, and under a millisecond two significant digits
    (0.024, never a flat 0.0); 0.0 below half a microsecond (float noise, under any timer)."""
    if value is None:
        return "-"
    if abs(value) < 5e-4:
        return "0.0"
    return f"{value:.1f}" if abs(value) >= 0.95 else f"{value:.2g}"


def flag_text(row: dict) -> str:
    """STRAGGLER: slower than its own device should be; expected: slow only because its device
    is slower than the fastest (not news on a mixed fleet); host: slow because this machine fell
    behind the emulated timeline (emulation.lagged_steps=keep), no GPU's doing; blank otherwise."""
    if row["flagged"]:
        return "STRAGGLER"
    return {"device": "expected", "host": "host (this machine lagged)"}.get(row.get("reason"), "")


def format_headline(summary: dict) -> str:
    if not summary.get("steps_measured"):
        return f"status {summary.get('status')}: no measured steps"
    s, sd = summary["step_ms"], summary["slowdown"]
    loss = summary.get("final_loss")
    floor = summary.get("entropy_floor")
    loss_txt = f"loss {loss:.3f}" + (f" (floor {floor:.3f})" if floor is not None else "")
    return (f"step p50 {s['p50']:.2f} ms (p90 {s['p90']:.2f}), {summary['tokens_per_s']:,.0f} tok/s, "
            f"efficiency {summary['efficiency']:.1%}, slowdown balance x{sd['balance']:.2f} "
            f"network x{sd['network']:.2f} total x{sd['total']:.2f}; {loss_txt}\n"
            f"{format_mfu(summary)}{format_strategy(summary)}{format_time_base(summary)}")


def format_mfu(summary: dict) -> str:
    """MFU against the sum of the devices' own peaks (with a newline), or nothing if unknown."""
    if summary.get("mfu") is None:
        return ""
    prec = summary.get("precision") or {}
    return (f"MFU {percent(summary['mfu'])} ({summary['achieved_tflops']:,.2f} of "
            f"{summary['peak_tflops']:,.0f} peak TFLOP/s at {prec.get('device_model', '?')}; "
            f"{percent(summary['mfu_compute'])} while computing)\n")


def format_strategy(summary: dict) -> str:
    """The strategy's line (with a newline), or nothing for plain ddp without a known ideal."""
    name = (summary.get("strategy") or {}).get("name", "ddp")
    sent, share = summary.get("inter_site_bytes_per_step"), summary.get("ideal_share")
    if name == "ddp" and share is None:
        return ""
    parts = [f"strategy {name}"]
    if sent is not None:
        parts.append(f"{sent / 1e6:,.1f} MB over the inter-site link per step")
    if share is not None:
        parts.append(f"{share:.1%} of the sum-of-speeds ideal {summary['ideal_tokens_per_s']:,.0f} tok/s")
    return ", ".join(parts) + "\n"


def format_time_base(summary: dict) -> str:
    """One line saying which clock the numbers above are on."""
    if summary.get("time_base") == "device":
        return (f"times are emulated device ms: this machine ran {summary['time_scale']:.2f}x "
                f"slower (time_scale D; host step p50 {summary.get('host_step_ms_p50', 0):.1f} ms)")
    return "times are wall-clock ms on this machine"
