"""Sweeps: expansion with Hydra's grammar, validation before any start, the sweep table, failed
points, resuming a killed sweep, and the sweep report."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main as cli_main
from bench.config import ConfigError
from bench.sweeps import multirun, timescale
from bench.sweeps import plan as sweep

TWO_SITES = "cluster.groups=[{device:H100,count:1,site:a},{device:H100,count:1,site:b}]"
TINY = ["experiment=none", "train.steps=16", "train.warmup_steps=4", "train.log_every=4", "logger=none"]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def hetbench(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True,
                          text=True, timeout=240, **kwargs)


# ---------------------------------------------------------------------------------------------
# Expansion and validation (no process starts).


def test_expand_is_the_cartesian_product_in_hydra_order():
    points = sweep.expand(["network.inter_site.latency_ms=0,5,20", "cluster=h100x2,mixed4",
                           "train.steps=30"])
    assert [p.swept for p in points] == [
        {"network.inter_site.latency_ms": lat, "cluster": c}
        for lat in ("0", "5", "20") for c in ("h100x2", "mixed4")]
    assert points[3].name == "003_latency_ms=5,cluster=mixed4"
    assert points[3].overrides == ["network.inter_site.latency_ms=5", "cluster=mixed4",
                                   "train.steps=30"]


def test_list_values_are_not_sweeps_and_names_are_path_safe():
    points = sweep.expand([TWO_SITES, "data.path=a/b c,x"])
    assert len(points) == 2 and points[0].overrides[0] == TWO_SITES
    assert "/" not in points[0].name and " " not in points[0].name


def test_experiment_sweeper_params_expand_and_the_command_line_wins():
    preset = sweep.expand(["experiment=latency_sweep"])
    latencies = [p.swept["network.inter_site.latency_ms"] for p in preset]
    assert latencies == ["0", "5", "10", "20", "50"]
    mine = sweep.expand(["experiment=latency_sweep", "network.inter_site.latency_ms=1,2"])
    assert [p.swept["network.inter_site.latency_ms"] for p in mine] == ["1", "2"]
    mix = sweep.expand(["experiment=mix_sweep"])
    assert [p.swept["cluster"] for p in mix] == ["h100x4", "one_a100", "a100_h100_b200"]


def test_points_get_run_ids_and_the_wandb_group(tmp_path):
    p = sweep.plan(["cluster=h100x2", "train.steps=10,20", "train.warmup_steps=2", "sweep_id=grp",
                    f"out_root={tmp_path}"])
    assert p.sweep_dir == tmp_path / "grp"
    assert [c.run_id for c in p.configs] == ["grp-000", "grp-001"]
    assert {c.logger.wandb.group for c in p.configs} == {"grp"}
    assert [c.train.steps for c in p.configs] == [10, 20]


def test_a_bad_point_stops_the_sweep_before_anything_starts(tmp_path, capsys):
    rc = cli_main(["run", "-m", "cluster=h100x2", "network.inter_site.latency_ms=0,-5",
                   "sweep_id=bad", f"out_root={tmp_path}"])
    assert rc == 2
    assert "network.inter_site.latency_ms" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("args", [["train.steps=interval(1,5)"], ["run_id=x", "train.steps=5,6"],
                                  ["train.steps=[1,2"], ["sweep_id=latest", "train.steps=5,6"]])
def test_unsweepable_input_is_a_config_error(args):
    with pytest.raises(ConfigError):
        sweep.plan(["cluster=h100x2", *args])


def test_a_failed_calibration_fails_every_point_on_record(tmp_path, monkeypatch, capsys):
    """The sweep's shared time scale could not be measured: nothing runs, and the tables say why."""
    def broken(cfg, overrides, run_dir):
        raise RuntimeError("calibration failed (torchrun exit status 1)")

    monkeypatch.setattr(timescale, "calibrate", broken)
    rc = multirun.run_sweep(["cluster=h100x2", "network.inter_site.latency_ms=0,5", "sweep_id=cal",
                          f"out_root={tmp_path}", "logger=none"])
    assert rc == 1 and "calibration failed" in capsys.readouterr().out
    doc = json.loads((tmp_path / "cal" / "sweep.json").read_text())
    assert [p["status"] for p in doc["points"]] == ["failed", "failed"]
    assert all("calibration failed" in p["error"] for p in doc["points"])
    # out_root/latest names the sweep (made before anything ran), never a point
    assert os.readlink(tmp_path / "latest") == "cal"


# ---------------------------------------------------------------------------------------------
# Real sweeps (torchrun, 2 Gloo ranks per point).


@pytest.fixture(scope="module")
def latency_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    proc = hetbench("run", "-m", TWO_SITES, "network.inter_site.latency_ms=0,5,30", *TINY,
                    "sweep_id=lat", f"out_root={out}")
    return proc, out / "lat"


@pytest.mark.slow
def test_sweep_writes_one_row_and_one_run_dir_per_point(latency_sweep):
    proc, sweep_dir = latency_sweep
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = read_csv(sweep_dir / "sweep.csv")
    assert [r["overrides"] for r in rows] == ["network.inter_site.latency_ms=0",
                                              "network.inter_site.latency_ms=5",
                                              "network.inter_site.latency_ms=30"]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    assert [r["run_id"] for r in rows] == ["lat-000", "lat-001", "lat-002"]
    for row in rows:
        summary = json.loads((sweep_dir / row["point"] / "summary.json").read_text())
        assert summary["run_id"] == row["run_id"] and summary["status"] == "ok"
        assert float(row["efficiency"]) == pytest.approx(summary["efficiency"])
        assert float(row["step_ms_p50"]) == pytest.approx(summary["step_ms"]["p50"])
    doc = json.loads((sweep_dir / "sweep.json").read_text())
    assert doc["swept_keys"] == ["network.inter_site.latency_ms"]
    assert [p["swept"] for p in doc["points"]] == [{"network.inter_site.latency_ms": v}
                                                   for v in ("0", "5", "30")]
    assert "point 3 of 3" in proc.stdout and "to go" in proc.stdout


@pytest.mark.slow
def test_every_point_shares_one_time_scale(latency_sweep):
    """Points differ only by what was swept: one D for all, recorded in sweep.json."""
    _, sweep_dir = latency_sweep
    doc = json.loads((sweep_dir / "sweep.json").read_text())
    assert doc["time_scale"] > 1 and doc["time_base"] == "device"
    for point in doc["points"]:
        summary = json.loads((sweep_dir / point["point"] / "summary.json").read_text())
        assert summary["time_scale"] == doc["time_scale"] == point["time_scale"]
    calibration = json.loads((sweep_dir / "time_scale.json").read_text())
    assert calibration["time_scale"] == doc["time_scale"] and len(calibration["calibrations"]) == 1


@pytest.mark.slow
def test_efficiency_falls_monotonically_with_inter_site_latency(latency_sweep):
    _, sweep_dir = latency_sweep
    rows = read_csv(sweep_dir / "sweep.csv")
    efficiency = [float(r["efficiency"]) for r in rows]
    assert efficiency[0] > efficiency[1] > efficiency[2]
    assert 1.0 < float(rows[1]["slowdown_network"]) < float(rows[2]["slowdown_network"])


@pytest.mark.slow
def test_the_sweep_is_out_roots_latest_and_its_report_reads_through_it(latency_sweep):
    _, sweep_dir = latency_sweep
    latest = sweep_dir.parent / "latest"
    assert os.readlink(latest) == sweep_dir.name  # the sweep, not its last point
    rep = hetbench("report", str(latest))
    assert rep.returncode == 0, rep.stdout[-2000:] + rep.stderr[-2000:]
    assert (sweep_dir / "report.html").exists() and (sweep_dir / "plots").is_dir()


@pytest.mark.slow
def test_a_failed_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    proc = hetbench("run", "-m", "cluster=h100x2", "faults=[{kind:crash,rank:1,start_step:2}],[]",
                    *TINY, "sweep_id=f", f"out_root={tmp_path}")
    assert proc.returncode == 1
    rows = read_csv(tmp_path / "f" / "sweep.csv")
    assert [r["status"] for r in rows] == ["failed", "ok"]
    assert rows[0]["error"] and rows[1]["efficiency"]


def _files_state(run_dir: Path) -> dict:
    return {str(p.relative_to(run_dir)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _wait_for_ok_summary(path: Path, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and json.loads(path.read_text()).get("status") == "ok":
            return
        assert proc.poll() is None, "the sweep ended before its first point finished"
        time.sleep(0.2)
    raise AssertionError(f"no ok summary at {path} after {timeout_s} s")


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_redoing_finished_points(tmp_path):
    args = ["run", "-m", "cluster=h100x2", "train.seed=0,1", *TINY, "sweep_id=k",
            f"out_root={tmp_path}"]
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / "k" / "000_seed=0"
    try:
        _wait_for_ok_summary(first / "summary.json", proc, timeout_s=90)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, torchrun and every rank
        proc.wait()
    time.sleep(0.5)  # let the killed ranks' files settle before taking the snapshot
    before = _files_state(first)
    second = tmp_path / "k" / "001_seed=1" / "summary.json"  # killed before it finished
    assert not second.exists() or json.loads(second.read_text()).get("status") != "ok"

    rerun = hetbench(*args)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "already done, skipped" in rerun.stdout
    assert _files_state(first) == before
    rows = read_csv(tmp_path / "k" / "sweep.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert [r["reused"] for r in rows] == ["True", "False"]


# ---------------------------------------------------------------------------------------------
# The sweep report (from a sweep.json, no processes).


def _fake_sweep(tmp_path: Path) -> Path:
    points = []
    for i, (lat, cluster) in enumerate([(0, "a"), (20, "a"), (0, "b"), (20, "b")]):
        points.append({"index": i, "point": f"{i:03d}_latency_ms={lat},cluster={cluster}",
                       "status": "ok" if i != 3 else "failed",
                       "swept": {"network.inter_site.latency_ms": str(lat), "cluster": cluster},
                       "step_ms_p50": 50.0 + lat, "tokens_per_s": 1000.0,
                       "efficiency": 0.8 - lat / 100,
                       "slowdown_balance": 1.2, "slowdown_network": 1.0 + lat / 50,
                       "slowdown_total": 1.2 * (1.0 + lat / 50), "final_loss": 3.0})
    doc = {"schema_version": 1, "sweep_id": "fake", "points_total": 4, "points": points,
           "swept_keys": ["network.inter_site.latency_ms", "cluster"]}
    (tmp_path / "sweep.json").write_text(json.dumps(doc))
    return tmp_path


def test_sweep_report_is_one_self_contained_html_with_plots(tmp_path):
    from bench.analysis import sweep_report

    assert sweep_report.main(str(_fake_sweep(tmp_path))) == 0
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["sweep_efficiency.png", "sweep_slowdown.png", "sweep_step_ms_p50.png"]
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert "<link" not in page and "src=\"plots/" not in page  # nothing outside the file
    assert "003_latency_ms=20,cluster=b" in page and "failed" in page


def test_sweep_report_axes_and_lines():
    from bench.analysis import sweep_report

    rows = [{"swept": {"cluster": c, "network.inter_site.latency_ms": lat}}
            for c in ("a", "b") for lat in ("0", "5")]
    x_key, others = sweep_report.choose_axes(["cluster", "network.inter_site.latency_ms"], rows)
    assert (x_key, others) == ("network.inter_site.latency_ms", ["cluster"])
    assert list(sweep_report.lines(rows, x_key, others)) == ["cluster=a", "cluster=b"]


def test_slowdown_parts_add_up_to_the_total():
    from bench.analysis.sweep_report import slowdown_parts

    imbalance, network = slowdown_parts({"slowdown_total": 1.5, "slowdown_balance": 1.2})
    assert imbalance + network == pytest.approx(0.5)
    assert imbalance == pytest.approx(0.5 * 0.18232 / 0.40547, rel=1e-3)  # ln 1.2 / ln 1.5
    assert slowdown_parts({"slowdown_total": 1.0, "slowdown_balance": 1.0}) == (0.0, 0.0)
