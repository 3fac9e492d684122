"""A run's status in its directory: what a driver writes when no rank could (a rank killed
hard, an interrupt, a full disk), keeping a rank's own error message where it wrote one."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from bench.results import files


def mark_failed(run_dir: Path, reason: str, **where) -> None:
    """A rank killed hard cannot say so itself: the driver makes the run directory tell."""
    mark_status(run_dir, "failed", reason, **where)


def mark_status(run_dir: Path, status: str, reason: str,
                names: tuple[str, ...] = ("metadata.json", "summary.json"),
                kind: Optional[dict] = None) -> None:
    """Set status in each of `names` (creating a minimal one, with `kind`'s keys, where no rank
    could), keeping a rank's own error message when it wrote one."""
    for name in names:
        path = run_dir / name
        try:
            doc = files.read_json(path) if path.exists() else {"run_id": run_dir.name, **(kind or {})}
        except ValueError:  # cannot happen with atomic writes; never lose the status over it
            doc = {"run_id": run_dir.name, **(kind or {})}
        if doc.get("status") != status:
            doc["status"] = status
            doc.setdefault("error", reason)
            try:
                files.write_json_atomic(path, doc)
            except OSError as err:  # a full disk: say so, and which run it was
                print(f"hetbench: error: could not mark {path} {status}: {err}; the run "
                      f"directory is {run_dir}", file=sys.stderr, flush=True)
