"""`hetbench report` outputs: analysis.json, a self-contained report.html, a valid trace.json."""
import json
import re
import sys
import time
import types

import numpy as np
import pytest
from analysis_rundir import build_run_dir

from bench.analysis import report

REQUIRED = {"stragglers": {"rank", "relative_score", "expected_score", "anomalous", "last_arrivals"},
            "transients": {"rank", "start_step", "end_step", "extra_ms"}}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    rng = np.random.default_rng(1)
    compute = (np.array([30.0, 30.0, 40.0, 75.0]) * rng.lognormal(0, 0.05, size=(60, 4))).tolist()
    for s in range(30, 42):
        compute[s][0] += 40.0
    run = build_run_dir(tmp_path_factory.mktemp("r"), compute, warmup=10,
                        speeds=[989.0, 989.0, 2250.0, 312.0], sites=["a", "a", "b", "b"])
    return run, report.build_report(run)


def test_analysis_json_has_the_contract_keys(built):
    run, result = built
    doc = json.loads((run / "analysis.json").read_text())
    for key, fields in REQUIRED.items():
        assert doc[key] and all(fields <= set(row) for row in doc[key])
    assert {"total", "per_rank", "top_k"} <= set(doc["whatif"])
    assert [t["k"] for t in doc["whatif"]["top_k"]] == [1, 2, 3, 4]
    assert [(t["rank"], t["start_step"], t["end_step"]) for t in doc["transients"]] == [(0, 30, 42)]
    assert result["analysis"]["whatif"] == doc["whatif"]


def test_verdict_names_the_straggler_and_the_transient(built):
    _, result = built
    text = "\n".join(result["verdict"])
    assert "rank 3 (H100-SXM, site b) was last ready in" in text
    assert "rank 0 (H100-SXM, site a) ran" in text and "steps 30-41" in text


def test_report_html_is_self_contained(built):
    run, result = built
    page = result["html"].read_text()
    images = re.findall(r"<img[^>]*\ssrc='([^']*)'", page)
    assert len(images) == len(result["plots"]) == 5
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:|//)", page)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    for word in ("site b", "inter_site", "gloo", "Findings", "entropy floor"):
        assert word in page


def test_plots_are_png_files(built):
    _, result = built
    for path in result["plots"]:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_trace_is_chrome_trace_events_with_one_track_per_rank(built):
    run, result = built
    doc = json.loads(result["trace"].read_text())
    events = doc["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "process_name"}
    assert sorted(names) == [0, 1, 2, 3] and "site b" in names[3]
    complete = [e for e in events if e["ph"] == "X"]
    assert {e["pid"] for e in complete} == {0, 1, 2, 3}
    assert all(isinstance(e["ts"], (int, float)) and e["dur"] >= 0 for e in complete)
    per_step = [e for e in complete if e["pid"] == 2 and e["name"] == "step 30"]
    phases = [e for e in complete if e["pid"] == 2 and e.get("args", {}).get("step") == 30]
    assert len(per_step) == 1 and {e["name"] for e in phases} == \
        {"data", "forward", "backward", "wait", "transfer", "optimizer"}
    parent = per_step[0]
    for e in phases:  # phases nest inside their step (to a nanosecond of rounding)
        assert e["ts"] >= parent["ts"] - 1e-3
        assert e["ts"] + e["dur"] <= parent["ts"] + parent["dur"] + 1e-3


def test_main_prints_the_verdict_and_returns_zero(built, capsys):
    run, _ = built
    assert report.main(str(run)) == 0
    out = capsys.readouterr().out
    assert "was last ready in" in out and "report.html" in out


def test_main_returns_2_for_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert report.main(str(tmp_path)) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert report.main(str(tmp_path / "absent")) == 2


def test_main_hands_a_sweep_directory_to_the_sweep_report(tmp_path, monkeypatch):
    (tmp_path / "sweep.json").write_text("{}")
    seen = []
    fake = types.ModuleType("bench.analysis.sweep_report")
    fake.main = lambda run_dir: seen.append(run_dir) or 7
    monkeypatch.setitem(sys.modules, "bench.analysis.sweep_report", fake)
    assert report.main(str(tmp_path)) == 7 and seen == [str(tmp_path)]


def test_a_default_size_run_reports_in_under_ten_seconds(tmp_path):
    rng = np.random.default_rng(2)
    compute = (np.array([35.0, 35.0, 20.0, 90.0]) * rng.lognormal(0, 0.1, size=(200, 4))).tolist()
    run = build_run_dir(tmp_path, compute, warmup=20)
    started = time.monotonic()
    report.build_report(run)
    assert time.monotonic() - started < 10.0
