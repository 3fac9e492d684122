"""Where measurements go: per-rank JSONL, metadata.json, summary.json, the console.
The W&B logger lives in bench/wandb_logger.py behind the same no-op interface (NullLogger)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

# Environment variables worth recording. An allow-list, never a dump: a dump leaks keys.
ENV_ALLOW = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
             "HETBENCH_RUN_ID", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "NCCL_DEBUG",
             "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE", "NCCL_ALGO", "NCCL_PROTO", "GLOO_SOCKET_IFNAME",
             "SLURM_JOB_ID", "SLURM_NNODES", "WANDB_MODE")


def write_json_atomic(path: Path, obj) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, default=_jsonable)
        f.write("\n")
    os.replace(tmp, path)


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


def read_rank_logs(run_dir: Path) -> list[dict]:
    records = []
    for path in sorted((Path(run_dir) / "ranks").glob("rank_*.jsonl")):
        with open(path) as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


class Progress:
    """Rank 0's live line: step, tokens/s, ETA. Redraws in place on a terminal."""

    def __init__(self, total_steps: int, stream=None, time_base: str = "wall"):
        self.total, self.stream = total_steps, stream or sys.stdout
        self.tty = self.stream.isatty()
        self.unit = "ms" if time_base == "wall" else f"{time_base} ms"

    def update(self, step: int, tokens_per_s: float, step_ms: float, loss: float,
               host_step_ms: float | None = None) -> None:
        """tok/s and step in the run's time base; the ETA in this machine's wall time."""
        eta = (self.total - step - 1) * (host_step_ms or step_ms) / 1000.0
        line = (f"step {step + 1:>5}/{self.total}  {tokens_per_s:>9,.0f} tok/s  "
                f"step {step_ms:7.2f} {self.unit}  loss {loss:6.3f}  ETA {eta:5.0f}s")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def format_table(summary: dict) -> str:
    """One row per rank: device, site, compute, wait, transfer (ms, p50), score, flagged."""
    head = f"{'rank':>4}  {'device':<12} {'emulates':<10} {'site':<5} {'compute(ms)':>11} " \
           f"{'wait(ms)':>9} {'transfer(ms)':>12} {'score':>6} {'expected':>8}  flagged"
    lines = [head, "-" * len(head)]
    for row in summary.get("ranks", []):
        expected = "-" if row["expected_score"] is None else f"{row['expected_score']:.2f}"
        lines.append(
            f"{row['rank']:>4}  {str(row['device'])[:12]:<12} {str(row['emulated_device'] or '-'):<10} "
            f"{row['site']:<5} {row['compute_ms_p50']:>11.2f} {row['wait_ms_p50']:>9.2f} "
            f"{row['transfer_ms_p50']:>12.2f} {row['relative_score']:>6.2f} {expected:>8}  "
            f"{'YES' if row['flagged'] else ''}")
    return "\n".join(lines)


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
            f"{format_strategy(summary)}{format_time_base(summary)}")


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
