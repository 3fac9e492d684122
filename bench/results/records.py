"""Rank 0's copy of every rank's attributed records, packed: one float64 row per record
(~200 bytes) instead of a dict (~1.4 kB), so that a long run's memory stays flat. A 10,000-step
run of 2 ranks keeps 4 MB here, not 28 MB (benchmarks/soak.py measures the growth).
Records come back as dicts (bench.results.metrics' shape) only when the summary is computed."""
from __future__ import annotations

import numpy as np

INTS, BOOLS = ("step", "rank", "tokens"), ("warmup",)


class RecordTable:
    def __init__(self, fields: tuple[str, ...]):
        self.fields = fields
        self._blocks: list[np.ndarray] = []  # one (records, fields) block per window

    def extend(self, records: list[dict]) -> None:
        if records:
            self._blocks.append(np.array([[float(r[k]) for k in self.fields] for r in records]))

    def __len__(self) -> int:
        return sum(len(b) for b in self._blocks)

    def records(self) -> list[dict]:
        return [as_record(self.fields, row) for block in self._blocks for row in block.tolist()]


def as_record(fields: tuple[str, ...], row: list[float]) -> dict:
    """A packed row back as a record dict, integers and flags restored."""
    rec = dict(zip(fields, row))
    rec.update({k: int(rec[k]) for k in INTS if k in rec})
    rec.update({k: bool(rec[k]) for k in BOOLS if k in rec})
    return rec
