"""`hetbench export` and the rank logs' header: the exported table is the summary's numbers,
in its time base, for new logs (a header, a D per record), old ones (neither) and unfinished runs.

Fast tests build an emulated run by hand: analysis_rundir's records are device time with every
number known, and its summary.json is computed from them; the rank logs then get them in host
time (x D) with a header, as a run writes them."""
from __future__ import annotations

import csv
import json
import re
import statistics
import sys
from pathlib import Path

import pytest
from analysis_rundir import build_run_dir
from conftest import read_json, run_hetbench

from bench import cli
from bench.analysis import export
from bench.results import ranklog, timebase

DOCS = Path(__file__).resolve().parents[1] / "docs" / "metrics.md"
D = 8.0
COMPUTE = [[10.0, 10.0, 20.0, 40.0 + (s % 3)] for s in range(12)]  # 4 ranks, 12 steps
WARMUP = 3


def to_host(run: Path, scales: dict[int, float], header: bool = True) -> list[dict]:
    """Rewrite the fixture's rank logs as a run writes them: host ms (x the step's D, from
    `scales` {first step: D}), a time_scale per record, a header line. Returns the device-time
    records it started from."""
    device = []
    for path in sorted((run / "ranks").glob("rank_*.jsonl")):
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        device += recs
        rank = recs[0]["rank"]
        lines = [ranklog.header(rank, "hand-made", "device", scales[0])] if header else []
        for rec in recs:
            d = [scale for first, scale in sorted(scales.items()) if rec["step"] >= first][-1]
            host = {k: (v * d if timebase.is_time_key(k) else v) for k, v in rec.items()}
            lines.append({"kind": ranklog.STEP, **host, "time_scale": d})
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    meta, summary = read_json(run / "metadata.json"), read_json(run / "summary.json")
    meta["emulation"] = {"time_base": "device", "time_scale": scales[0]}
    summary.update(time_base="device", time_scale=max(scales.values()))  # the last D
    (run / "metadata.json").write_text(json.dumps(meta))
    (run / "summary.json").write_text(json.dumps(summary))
    return device


@pytest.fixture
def emulated(tmp_path) -> tuple[Path, list[dict]]:
    run = build_run_dir(tmp_path, COMPUTE, warmup=WARMUP, transfer_ms=5.0, injected_ms=3.0)
    return run, to_host(run, {0: D})


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def num(cell: str):
    return None if cell == "" else float(cell)


def test_columns_are_the_documented_ones(emulated):
    documented = re.findall(r"^\| `(\w+)` \| (\w+) \|", DOCS.read_text().split(
        "<!-- export-columns:start -->")[1].split("<!-- export-columns:end -->")[0], re.M)
    assert tuple(documented) == export.COLUMNS
    run, _ = emulated
    assert cli.main(["export", str(run)]) == 0
    names, rows = read_csv(run / "steps.csv")
    assert tuple(names) == export.NAMES
    assert len(rows) == 12 * 4


def test_the_export_is_the_summary_in_device_ms(emulated, capsys):
    run, device = emulated
    assert cli.main(["export", str(run)]) == 0
    assert "48 rows, 12 steps of 4 ranks, times in device ms" in capsys.readouterr().out
    _, rows = read_csv(run / "steps.csv")
    summary = read_json(run / "summary.json")  # computed from the device-time records
    kept = [r for r in rows if r["in_summary"] == "True"]
    assert {int(r["step"]) for r in kept} == set(range(WARMUP, 12))
    t = [num(r["cluster_step_ms"]) for r in kept if r["rank"] == "0"]
    assert statistics.median(t) == pytest.approx(summary["step_ms"]["p50"], rel=1e-12)
    assert statistics.fmean(t) == pytest.approx(summary["step_ms"]["mean"], rel=1e-12)
    tokens = sum(int(r["tokens"]) for r in kept)
    assert tokens / sum(t) * 1000 == pytest.approx(summary["tokens_per_s"], rel=1e-12)
    for row in summary["ranks"]:
        mine = [r for r in kept if int(r["rank"]) == row["rank"]]
        for column, key in (("compute_ms", "compute_ms_p50"), ("wait_ms", "wait_ms_p50"),
                            ("transfer_ms", "transfer_ms_p50")):
            assert statistics.median(num(r[column]) for r in mine) == \
                pytest.approx(row[key], rel=1e-12, abs=1e-9), (row["rank"], column)
    # every row is its device-time record, with the fixture's known numbers
    by_key = {(r["step"], r["rank"]): r for r in device}
    for r in rows:
        rec = by_key[(int(r["step"]), int(r["rank"]))]
        for key in ("data_ms", "fwd_ms", "bwd_ms", "wait_ms", "transfer_ms", "opt_ms", "step_ms"):
            assert num(r[key]) == pytest.approx(rec[key], rel=1e-12, abs=1e-9)
        assert num(r["compute_ms"]) == pytest.approx(COMPUTE[rec["step"]][rec["rank"]], rel=1e-12)
        assert num(r["exposed_ms"]) == pytest.approx(3.0)  # min(injected 3, transfer 5)
        assert (r["time_base"], num(r["time_scale"]), r["device"], r["real_device"]) == \
            ("device", D, "H100-SXM", "cpu")


def test_each_step_is_divided_by_the_d_it_ran_at(tmp_path):
    run = build_run_dir(tmp_path, COMPUTE, warmup=WARMUP)
    device = to_host(run, {0: 4.0, 7: 6.0})  # D rose from step 7
    tab = export.table(run)
    truth = {(r["step"], r["rank"]): r["step_ms"] for r in device}
    assert [row["step_ms"] for row in tab.rows] == \
        pytest.approx([truth[(row["step"], row["rank"])] for row in tab.rows], rel=1e-12)
    assert {row["step"]: row["time_scale"] for row in tab.rows}[6] == 4.0
    assert {row["step"]: row["time_scale"] for row in tab.rows}[7] == 6.0


def test_the_header_is_first_once_and_readers_skip_it(tmp_path):
    log = ranklog.RankLog(tmp_path, 3)
    log.write_header(ranklog.header(3, "r", "device", 2.5))
    log.write([{"step": 0, "rank": 3, "step_ms": 5.0}])
    log.close()
    again = ranklog.RankLog(tmp_path, 3)  # reopened: appends, no second header
    again.write_header(ranklog.header(3, "r", "device", 9.0))
    again.write([{"step": 1, "rank": 3, "step_ms": 5.0}])
    again.close()
    lines = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [line.get("kind") for line in lines] == ["header", None, None]
    assert lines[0]["clock"] == "host" and lines[0]["time_scale"] == 2.5
    assert [r["step"] for r in ranklog.read_rank_logs(tmp_path)] == [0, 1]
    assert ranklog.read_headers(tmp_path) == {3: lines[0]}


def test_old_logs_without_header_or_d_read_by_the_runs_d(tmp_path):
    run = build_run_dir(tmp_path, COMPUTE, warmup=WARMUP)
    device = to_host(run, {0: D}, header=False)
    for path in (run / "ranks").glob("*.jsonl"):  # before records carried their D
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in r.items()
                                            if k not in ("time_scale", "kind")}) + "\n"
                                for r in recs))
    assert ranklog.read_headers(run) == {}
    tab = export.table(run)
    assert [row["step_ms"] for row in tab.rows] == \
        pytest.approx([r["step_ms"] for r in sorted(device, key=lambda r: (r["step"], r["rank"]))])
    assert {row["time_scale"] for row in tab.rows} == {D}


def test_an_unfinished_run_exports_what_is_on_disk(emulated, capsys):
    run, _ = emulated
    (run / "summary.json").unlink()
    meta = read_json(run / "metadata.json")
    (run / "metadata.json").write_text(json.dumps({**meta, "status": "running"}))
    path = run / "ranks" / "rank_00002.jsonl"
    lines = path.read_text().splitlines()
    last = json.loads(lines[-2])
    last.update(wait_ms=None, transfer_ms=None)  # a window cut short: not attributed
    path.write_text("\n".join(lines[:-2] + [json.dumps(last)]) + '\n{"step": 11, "ra')
    assert cli.main(["export", str(run), "--out", str(run / "partial.csv")]) == 0
    out = capsys.readouterr().out
    assert "rank_00002.jsonl: its last record was cut off" in out  # the header is no record:
    assert "read the 11 complete ones" in out  # steps 0-10
    assert "1 of the records (of a window the run did not finish) have no wait_ms" in out
    assert "47 rows, 12 steps of 4 ranks" in out and "status is incomplete" in out
    _, rows = read_csv(run / "partial.csv")
    assert len(rows) == 12 * 4 - 1
    step10 = [r for r in rows if r["step"] == "10"]
    assert [r["cluster_step_ms"] for r in step10] == [""] * 4
    assert [r["in_summary"] for r in step10] == ["False"] * 4
    assert step10[2]["wait_ms"] == "" and num(step10[2]["step_ms"]) > 0
    assert {r["in_summary"] for r in rows if r["step"] == "9"} == {"True"}


def test_lagged_steps_leave_the_summary_unless_kept(emulated):
    run, _ = emulated
    for path in (run / "ranks").glob("*.jsonl"):
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        for rec in lines[1:]:
            rec["lagged"] = rec["step"] == 5
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    kept = {row["step"] for row in export.table(run).rows if row["in_summary"]}
    assert kept == set(range(WARMUP, 12)) - {5}
    (run / "config.yaml").write_text("emulation: {lagged_steps: keep}\n")
    assert {row["step"] for row in export.table(run).rows if row["in_summary"]} == \
        set(range(WARMUP, 12))


@pytest.mark.parametrize("what, says", [
    ("absent", "no such directory (give a run directory, runs/<run_id>"),
    ("empty", "not a run directory: missing config.yaml, metadata.json, ranks"),
    ("sweep", "a sweep directory: give one of its points"),
])
def test_what_is_not_a_run_directory_exits_2_naming_the_fix(tmp_path, capsys, what, says):
    if what == "sweep":
        (tmp_path / "sweep.json").write_text("{}")
    assert cli.main(["export", str(tmp_path / "absent" if what == "absent" else tmp_path)]) == 2
    err = capsys.readouterr().err
    assert says in err and "hetbench export: error" in err


def test_an_out_folder_that_does_not_exist_is_named(emulated, capsys):
    run, _ = emulated
    assert cli.main(["export", str(run), "--out", str(run / "no" / "x.csv")]) == 2
    assert "no folder" in capsys.readouterr().err


def test_parquet_without_pyarrow_names_the_install(emulated, capsys, monkeypatch):
    run, _ = emulated
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import fails as if not installed
    assert cli.main(["export", str(run), "--format", "parquet"]) == 2
    assert "pip install pyarrow" in capsys.readouterr().err
    assert not (run / "steps.parquet").exists()


def test_parquet_holds_the_csv_rows(emulated):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow: pip install pyarrow")
    run, _ = emulated
    assert cli.main(["export", str(run), "--out", str(run / "steps.parquet")]) == 0
    table = pq.read_table(run / "steps.parquet")
    assert tuple(table.column_names) == export.NAMES
    assert table.to_pylist() == export.table(run).rows


@pytest.mark.slow
def test_a_real_run_exports_its_summary(tmp_path):
    """Two emulated ranks of different devices: the header's D is the run's, and the export's
    statistics are summary.json's."""
    rc, run_dir, output = run_hetbench(
        tmp_path, "cluster.groups=[{device:H100,count:1,site:a},{device:A100,count:1,site:a}]",
        "network=rack", "train.steps=24", "train.warmup_steps=4", "train.log_every=8")
    assert rc == 0, output
    meta, summary = read_json(run_dir / "metadata.json"), read_json(run_dir / "summary.json")
    heads = ranklog.read_headers(run_dir)
    changes = summary["emulation"].get("time_scale_changes")
    assert sorted(heads) == [0, 1]
    for rank, head in heads.items():
        assert head["clock"] == "host" and head["time_base"] == "device" == summary["time_base"]
        assert head["rank"] == rank and head["run_id"] == meta["run_id"]
        # the D the run started at: the metadata's unless it rose mid-run
        start = changes[0]["from"] if changes else meta["emulation"]["time_scale"]
        assert head["time_scale"] == start > 1
    assert export.main(str(run_dir)) == 0
    _, rows = read_csv(run_dir / "steps.csv")
    assert len(rows) == 2 * 24
    kept = [r for r in rows if r["in_summary"] == "True"]
    assert {r["step"] for r in kept} == \
        {r["step"] for r in rows if r["warmup"] == "False" and r["lagged"] == "False"}
    assert len(kept) == 2 * summary["steps_measured"]
    t = [num(r["cluster_step_ms"]) for r in kept if r["rank"] == "0"]
    assert statistics.median(t) == pytest.approx(summary["step_ms"]["p50"], rel=1e-9)
    for row in summary["ranks"]:
        mine = [r for r in kept if int(r["rank"]) == row["rank"]]
        assert statistics.median(num(r["compute_ms"]) for r in mine) == \
            pytest.approx(row["compute_ms_p50"], rel=1e-9)
        assert statistics.median(num(r["wait_ms"]) for r in mine) == \
            pytest.approx(row["wait_ms_p50"], rel=1e-9, abs=1e-9)
    assert {(r["rank"], r["device"]) for r in rows} == {("0", "H100-SXM"), ("1", "A100-80GB")}
    assert {r["real_device"] for r in rows} == {m["device"] for m in meta["ranks"]}
