"""ranks/rank_XXXXX.jsonl: each rank's per-step records, appended as the run goes, and read
back in the clock they were written in (host time; bench.results.rundir converts).

The first line of a log is its header (`kind: header`): the clock the records are in and the D
that turns them into device ms, so that a file read on its own says how to read it. Logs written
before the header existed have none and read the same."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HEADER, STEP = "header", "step"  # a line's `kind` (step records written before kinds had none)
HEADER_SCHEMA = 1
TO_DEVICE = ("divide every *_ms and *_s field of a step record by that record's time_scale "
             "(the D it ran at: D can rise mid-run); `hetbench export RUN` writes the table so")


def header(rank: int, run_id: str, time_base: str, time_scale: float) -> dict:
    """A rank log's first line (docs/metrics.md, 'Rank logs'). `time_scale`: the D the run
    started at; every step record carries the D it ran at."""
    return {"kind": HEADER, "schema": HEADER_SCHEMA, "rank": rank, "run_id": run_id,
            "clock": "host", "time_base": time_base, "time_scale": time_scale,
            "to_device": TO_DEVICE}


class RankLog:
    """rank_XXXXX.jsonl: a header, then one JSON object per step, appended and flushed window
    by window."""

    def __init__(self, run_dir: Path, rank: int):
        path = Path(run_dir) / "ranks" / f"rank_{rank:05d}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", buffering=1 << 16)

    def write_header(self, head: dict) -> None:
        """The header goes first, once: a log that already holds lines keeps them as they are."""
        if self._file.tell() == 0:
            self.write([head])

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


class CorruptLog(ValueError):
    """A record in the middle of a rank log does not parse (not a cut-off last line)."""


def read_rank_logs(run_dir: Path, notes: list | None = None) -> list[dict]:
    """Every rank's step records (headers left out). A last line cut off mid-record (the disk
    filled up while it was written) is skipped, and `notes` (or stderr) says so once per file;
    anything else that does not parse raises CorruptLog naming the file and line."""
    records = []
    for path in log_paths(run_dir):
        records.extend(_read_one(path, notes))
    return records


def read_headers(run_dir: Path) -> dict[int, dict]:
    """{rank: header} of the logs that have one (a log's first line; older logs have none)."""
    out = {}
    for path in log_paths(run_dir):
        with open(path, errors="replace") as f:
            first = f.readline()
        try:
            head = json.loads(first) if first.strip() else None
        except json.JSONDecodeError:
            continue  # a cut-off first line is no header; read_rank_logs says what it skipped
        if is_header(head):
            out[int(head["rank"])] = head
    return out


def is_header(line) -> bool:
    return isinstance(line, dict) and line.get("kind") == HEADER


def log_paths(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / "ranks").glob("rank_*.jsonl"))


def _read_one(path: Path, notes: list | None) -> list[dict]:
    """One log's step records, its header left out."""
    with open(path, errors="replace") as f:
        lines = f.read().split("\n")
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if any(rest.strip() for rest in lines[number:]):
                raise CorruptLog(f"{path}: line {number} is not a JSON record") from None
            note = (f"{path.name}: its last record was cut off (the disk filled up while it was "
                    f"written?); read the {len(out)} complete ones")
            if notes is None:
                print(f"hetbench: {note}", file=sys.stderr)
            else:
                notes.append(note)
            continue
        if not is_header(rec):
            out.append(rec)
    return out
