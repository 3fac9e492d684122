"""Atomic writes leave files with the mode a plain open() would give (0666 less the umask), so
that colleagues sharing a runs/ folder can read summaries as they read rank logs."""
from __future__ import annotations

import os
import stat

import pytest

from bench.results import files


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        files.write_json_atomic(tmp_path / "summary.json", {"status": "ok"})
        files.write_text_atomic(tmp_path / "sweep.csv", "a,b\n1,2\n")
        # What a rank log gets; also shows the helpers put the umask back after reading it.
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"summary.json": mode, "sweep.csv": mode, "plain.txt": mode}
    assert files.read_json(tmp_path / "summary.json") == {"status": "ok"}
