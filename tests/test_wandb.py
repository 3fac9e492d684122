"""The W&B sink: an offline run is read back from its .wandb file and every logged number is
checked against what hetbench wrote to ranks/*.jsonl, summary.json and config.yaml."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import read_records

from bench.rank.wandb_logger import RUN_SETTINGS, flatten, wandb_id
from bench.results import files

FAKE_KEY = "local-0123456789abcdef0123456789abcdef01234567"  # must never reach a file
LOG_EVERY, STEPS, WARMUP = 5, 20, 5

# ---------------------------------------------------------------------------------------------
# Reading a .wandb file: LevelDB log format (32 KiB blocks of records with a 7-byte header:
# crc32, length, type), after a 7-byte file header (":W&B", magic, version).

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def scan_wandb_file(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B datastore"
    records, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, FIRST):
            pending = chunk
        elif kind in (MIDDLE, LAST):
            pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def items_to_dict(items) -> dict:
    """History/summary items: `key`, or `nested_key` for names with a slash or nesting."""
    out = {}
    for item in items:
        path = list(item.nested_key) or [item.key]
        value = json.loads(item.value_json)
        if len(path) == 1:
            out[path[0]] = value
        else:
            out.setdefault(path[0], {})[path[1]] = value
    return out


# ---------------------------------------------------------------------------------------------
# What the windows must hold, recomputed here from the rank logs (independently of the logger).


def expected_window(records: list[dict], world: int) -> dict:
    measured = [r for r in records if not r["warmup"]]
    used = measured or records
    by_step = defaultdict(dict)
    for r in used:
        by_step[r["step"]][r["rank"]] = r
    steps = [by_step[s] for s in sorted(by_step)]
    T = np.array([max(r["step_ms"] for r in s.values()) for s in steps])
    compute = np.array([[s[k]["fwd_ms"] + s[k]["bwd_ms"] for k in range(world)] for s in steps])
    injected = np.array([max(r["injected_ms"] for r in s.values()) for s in steps])
    T_bal = T - compute.max(axis=1) + world / (1.0 / compute).sum(axis=1)
    out = {"cluster/warmup": int(not measured), "cluster/steps": len(steps),
           "cluster/step_ms_p50": float(np.median(T)),
           "cluster/tokens_per_s": sum(r["tokens"] for r in used) / T.sum() * 1000.0,
           "cluster/efficiency": float(np.median(compute.sum(axis=1) / (world * T))),
           "cluster/slowdown_balance": float(np.median(T / T_bal)),
           "cluster/slowdown_network": float(np.median(T / (T - injected))),
           "cluster/slowdown_total": float(np.median(T / (T_bal - injected)))}
    last = max(r["step"] for r in records)
    for k in range(world):
        mine = [s[k] for s in steps]
        out[f"rank_{k}/compute_ms"] = float(np.median([r["fwd_ms"] + r["bwd_ms"] for r in mine]))
        out[f"rank_{k}/wait_ms"] = float(np.median([r["wait_ms"] for r in mine]))
        out[f"rank_{k}/transfer_ms"] = float(np.median([r["transfer_ms"] for r in mine]))
        out[f"rank_{k}/loss"] = next(r["loss"] for r in records
                                     if r["rank"] == k and r["step"] == last)
    out["cluster/loss"] = float(np.mean([out[f"rank_{k}/loss"] for k in range(world)]))
    return out


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["WANDB_API_KEY"] = FAKE_KEY
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", "experiment=none", "cluster=h100x2", f"train.steps={STEPS}",
         f"train.warmup_steps={WARMUP}", f"train.log_every={LOG_EVERY}", "run_id='wb:run#1'",
         "logger.wandb.group=grp", f"out_root={out}"],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run_dir = out / "wb:run#1"
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, f"expected one offline W&B run under {run_dir}/wandb"
    return run_dir, scan_wandb_file(files[0]), proc


def _of_kind(records, kind: str) -> list:
    return [r for r in records if r.WhichOneof("record_type") == kind]


@pytest.mark.slow
def test_run_identity_and_config(offline_run):
    run_dir, records, _ = offline_run
    (run,) = [r.run for r in _of_kind(records, "run")]
    assert (run.run_id, run.display_name, run.run_group, run.project) == \
        ("wb-run-1", "wb:run#1", "grp", "hetbench")
    logged = {i.key: json.loads(i.value_json) for i in run.config.update if i.key != "_wandb"}
    assert logged == yaml.safe_load((run_dir / "config.yaml").read_text())


@pytest.mark.slow
def test_every_window_logs_what_the_rank_logs_imply(offline_run):
    run_dir, records, _ = offline_run
    rank_records = read_records(run_dir)  # W&B logs device time, as the summary does
    world = 1 + max(r["rank"] for r in rank_records)
    rows = [items_to_dict(h.history.item) for h in _of_kind(records, "history")]
    assert [row["_step"] for row in rows] == list(range(LOG_EVERY - 1, STEPS, LOG_EVERY))
    for row in rows:
        window = [r for r in rank_records if row["_step"] - LOG_EVERY < r["step"] <= row["_step"]]
        expected = expected_window(window, world)
        got = {k: v for k, v in row.items() if k.startswith(("cluster/", "rank_"))}
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), f"step {row['_step']}"
    assert rows[0]["cluster/warmup"] == 1 and rows[1]["cluster/warmup"] == 0


@pytest.mark.slow
def test_the_end_logs_summary_table_and_exit_code(offline_run):
    run_dir, records, _ = offline_run
    summary = files.read_json(run_dir / "summary.json")
    final = {}
    for rec in _of_kind(records, "summary"):
        final.update(items_to_dict(rec.summary.update))
    expected = flatten({k: v for k, v in summary.items() if k != "ranks"})
    assert {k: final[k] for k in expected} == expected  # JSON round trip: exact
    assert final["ranks"]["_type"] == "table-file" and final["ranks"]["nrows"] == world_of(summary)
    table = next(run_dir.glob("wandb/offline-run-*/files/" + final["ranks"]["path"]))
    doc = json.loads(table.read_text())
    assert [dict(zip(doc["columns"], row)) for row in doc["data"]] == summary["ranks"]
    assert [r.exit.exit_code for r in _of_kind(records, "exit")] == [0]


def world_of(summary: dict) -> int:
    return summary["world_size"]


@pytest.mark.slow
def test_no_api_key_reaches_any_file(offline_run):
    run_dir, _, _ = offline_run
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


# ---------------------------------------------------------------------------------------------
# Fast checks.


def test_wandb_ids_are_sanitised():
    assert wandb_id("20260101-120000-ab12") == "20260101-120000-ab12"
    assert wandb_id("sweep/a:b#c?d%e") == "sweep-a-b-c-d-e"
    assert len(wandb_id("x" * 200)) == 64


def test_the_installed_wandb_takes_the_run_settings():
    """wandb.Settings refuses names it does not know (x_disable_stats came in 0.19): this fails at
    once on a wandb below pyproject.toml's floor, where only the slow offline runs would."""
    import wandb

    settings = wandb.Settings(**RUN_SETTINGS)
    assert {key: getattr(settings, key) for key in RUN_SETTINGS} == RUN_SETTINGS


def test_mode_disabled_or_wandb_mode_env_gives_the_null_logger(monkeypatch, tmp_path):
    from bench.config import compose
    from bench.rank.loggers import make_logger as _make_logger

    cfg = compose(["cluster=h100x2"])
    monkeypatch.setenv("WANDB_MODE", "disabled")  # wins over the config's offline
    assert type(_make_logger(cfg, tmp_path, "r")).__name__ == "NullLogger"
    monkeypatch.delenv("WANDB_MODE")
    cfg = compose(["cluster=h100x2", "logger=none"])
    assert type(_make_logger(cfg, tmp_path, "r")).__name__ == "NullLogger"
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# A sweep point's run (submitit_local launcher, conftest.submitit_sweep): swept keys at the top
# of its config, define_metric axes and summaries, one panel per quantity with every rank.


def _point_run(sweep_dir: Path, point: str) -> tuple[Path, list]:
    files = list((sweep_dir / point).glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, f"a launcher job must log exactly one W&B run, found {files}"
    return files[0].parent, scan_wandb_file(files[0])


def _config(records) -> dict:
    """The run's config, from its run record and later config updates (`nested_key`: a path)."""
    config = {}
    items = [i for r in _of_kind(records, "run") for i in r.run.config.update]
    items += [i for r in _of_kind(records, "config") for i in r.config.update]
    for item in items:
        *parents, leaf = list(item.nested_key) or [item.key]
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = json.loads(item.value_json)
    return config


@pytest.mark.slow
@pytest.mark.parametrize("point, latency", [("000_latency_ms=0", 0), ("001_latency_ms=20", 20)])
def test_a_sweep_point_has_its_swept_keys_at_the_top_of_its_config(submitit_sweep, point, latency):
    proc, sweep_dir = submitit_sweep
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    _, records = _point_run(sweep_dir, point)
    config = _config(records)
    assert config["swept/network.inter_site.latency_ms"] == latency
    assert config["network"]["inter_site"]["latency_ms"] == latency
    (run,) = [r.run for r in _of_kind(records, "run")]
    assert run.run_group == "sub" and run.display_name == f"sub-{point[:3]}"


@pytest.mark.slow
def test_step_axis_and_summaries_are_defined(submitit_sweep):
    _, records = _point_run(submitit_sweep[1], "000_latency_ms=0")
    metrics = {m.metric.name: m.metric for m in _of_kind(records, "metric") if m.metric.name}
    assert "step" in metrics
    step_ms = metrics["cluster/step_ms_p50"]
    assert step_ms.step_metric == "step"
    assert (step_ms.summary.min, step_ms.summary.max, step_ms.summary.last) == (True, True, True)
    wait = metrics["rank_1/wait_ms"]
    assert (wait.step_metric, wait.summary.max, wait.summary.min) == ("step", True, False)
    rows = [items_to_dict(h.history.item) for h in _of_kind(records, "history")]
    assert [r["step"] for r in rows if "step" in r] == [3, 7, 11, 15]


@pytest.mark.slow
@pytest.mark.parametrize("quantity", ["wait_ms", "compute_ms"])
def test_per_rank_line_series_panels_hold_every_rank_per_step(submitit_sweep, quantity):
    sweep_dir = submitit_sweep[1]
    files, records = _point_run(sweep_dir, "001_latency_ms=20")
    panel = _config(records)["_wandb"]["visualize"][f"per_rank/{quantity}"]
    assert panel["panel_config"]["panelDefId"] == "wandb/lineseries/v0"
    final = {}
    for rec in _of_kind(records, "summary"):
        final.update(items_to_dict(rec.summary.update))
    table = json.loads(next(files.glob("files/" + final[f"per_rank/{quantity}_table"]["path"]))
                       .read_text())
    assert table["columns"] == ["step", "lineKey", "lineVal"]
    got = {(key, step): value for step, key, value in table["data"]}
    measured = [r for r in read_records(sweep_dir / "001_latency_ms=20") if not r["warmup"]]
    value = (lambda r: r["wait_ms"]) if quantity == "wait_ms" else \
        (lambda r: r["fwd_ms"] + r["bwd_ms"])
    assert got == pytest.approx({(f"rank {r['rank']}", r["step"]): value(r) for r in measured})
