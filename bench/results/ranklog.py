"""ranks/rank_XXXXX.jsonl: each rank's per-step records, appended as the run goes, and read
back in the clock they were written in (host time; bench.results.rundir converts)."""
from __future__ import annotations

import json
import os
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


def read_rank_logs(run_dir: Path) -> list[dict]:
    records = []
    for path in sorted((Path(run_dir) / "ranks").glob("rank_*.jsonl")):
        with open(path) as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records
