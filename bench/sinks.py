"""Where measurements go: per-rank JSONL, metadata.json, summary.json, the console.
The W&B logger lives in bench/wandb_logger.py behind the same no-op interface (NullLogger)."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Environment variables worth recording. An allow-list, never a dump: a dump leaks keys.
ENV_ALLOW = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
             "HETBENCH_RUN_ID", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "NCCL_DEBUG",
             "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE", "NCCL_ALGO", "NCCL_PROTO", "GLOO_SOCKET_IFNAME",
             "SLURM_JOB_ID", "SLURM_NNODES", "WANDB_MODE")


def write_json_atomic(path: Path, obj) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    text = json.dumps(obj, indent=2, default=_jsonable) + "\n"  # a bad value fails before any write
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        # A full disk (or anything else) leaves the old file whole and no temporary behind.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def allowed_env() -> dict:
    return {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}


class RankLog:
    """rank_XXXXX.jsonl: one JSON object per step, appended and flushed window by window."""

    def __init__(self, run_dir: Path, rank: int):
        path = Path(run_dir) / "ranks" / f"rank_{rank:05d}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", buffering=1 << 16)

    def write(self, records) -> None:
        for rec in records:
            self._file.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def abandon(self) -> None:
        """Close without writing what is buffered (the disk refused it)."""
        try:
            os.close(self._file.fileno())
        except (OSError, ValueError):
            pass


def read_rank_logs(run_dir: Path) -> list[dict]:
    records = []
    for path in sorted((Path(run_dir) / "ranks").glob("rank_*.jsonl")):
        with open(path) as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


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
    if value is None:
        return "-"
    return f"{value:.2%}" if value < 0.01 else f"{value:.1%}"  # a launch-bound rank's is tiny


def flag_text(row: dict) -> str:
    """STRAGGLER: slower than its own device should be; expected: slow only because its device
    is slower than the fastest (not news on a mixed fleet); blank otherwise."""
    if row["flagged"]:
        return "STRAGGLER"
    return "expected" if row.get("reason") == "device" else ""


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


class NullLogger:
    """Does nothing: the loop calls the same interface whatever logger is configured."""

    def log_window(self, step: int, window_records: list[dict], ranks: list[dict]) -> None: ...

    def finish(self, summary: dict, ok: bool) -> None: ...
