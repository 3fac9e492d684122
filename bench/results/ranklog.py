"""ranks/rank_XXXXX.jsonl: each rank's per-step records, appended as the run goes, and read
back in the clock they were written in (host time; bench.results.rundir converts)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


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


class CorruptLog(ValueError):
    """A record in the middle of a rank log does not parse (not a cut-off last line)."""


def read_rank_logs(run_dir: Path, notes: list | None = None) -> list[dict]:
    """Every rank's records. A last line cut off mid-record (the disk filled up while it was
    written) is skipped, and `notes` (or stderr) says so once per file; anything else that does
    not parse raises CorruptLog naming the file and line."""
    records = []
    for path in sorted((Path(run_dir) / "ranks").glob("rank_*.jsonl")):
        records.extend(_read_one(path, notes))
    return records


def _read_one(path: Path, notes: list | None) -> list[dict]:
    with open(path, errors="replace") as f:
        lines = f.read().split("\n")
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if any(rest.strip() for rest in lines[number:]):
                raise CorruptLog(f"{path}: line {number} is not a JSON record") from None
            note = (f"{path.name}: its last record was cut off (the disk filled up while it was "
                    f"written?); read the {len(out)} complete ones")
            if notes is None:
                print(f"hetbench: {note}", file=sys.stderr)
            else:
                notes.append(note)
    return out
