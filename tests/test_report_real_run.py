"""A real 2-rank run with an injected slowdown, then `hetbench report`, both through the CLI."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FAULT_RANK, FAULT_START, FAULT_END = 1, 25, 40


@pytest.mark.slow
def test_report_names_the_slowed_rank_and_its_window(tmp_path):
    # Pacing holds compute to its target, so 60 ms stands well clear of the step-to-step noise.
    fault = f"{{kind:slow,rank:{FAULT_RANK},start_step:{FAULT_START},end_step:{FAULT_END},ms:60}}"
    hetbench = [shutil.which("hetbench", path=str(Path(sys.executable).parent)) or "hetbench"]
    run = subprocess.run(hetbench + ["run", "experiment=none", "cluster=h100x2", "network=rack", "train.steps=60",
                                     "train.warmup_steps=5", f"faults=[{fault}]",
                                     f"out_root={tmp_path}", "run_id=faulty"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    run_dir = Path(tmp_path) / "faulty"
    # out_root/latest names the run, relative to out_root, and the report reads it through it
    latest = Path(tmp_path) / "latest"
    assert os.readlink(latest) == "faulty" and latest.resolve() == run_dir.resolve()
    rep = subprocess.run(hetbench + ["report", str(latest)], capture_output=True, text=True,
                         timeout=120)
    assert rep.returncode == 0, rep.stderr[-2000:]
    found = json.loads((run_dir / "analysis.json").read_text())["transients"]
    assert len(found) == 1, found
    t = found[0]
    assert t["rank"] == FAULT_RANK
    assert abs(t["start_step"] - FAULT_START) <= 2 and abs(t["end_step"] - FAULT_END) <= 2
    assert t["extra_ms"] == pytest.approx(60.0, rel=0.2)
    assert f"rank {FAULT_RANK} (H100-SXM, site a) ran" in rep.stdout
    for name in ("report.html", "trace.json", "plots/timeline.png"):
        assert (run_dir / name).exists()
