"""The first thing a user runs: the default experiment (gpt2_small on mixed4 over campus) shows
both effects a mixed fleet suffers, and the remedy pointer under the headline is the predictor's
own ranking of the run's config."""
from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import HETBENCH, read_json

from bench import config as config_mod
from bench.costs import device_times
from bench.predict import predict, remedy
from bench.results.outroot import run_dirs


def test_the_default_experiment_times_gpt2_small_where_the_generations_differ():
    cfg = config_mod.compose([])
    assert device_times.workload_applies(cfg, "cpu")
    assert (cfg.emulation.workload.n_layer, cfg.emulation.workload.n_embd) == (12, 768)
    compute = {g["device"]: g["compute_ms_p50"] for g in predict(cfg)["groups"]}
    assert compute["A100-80GB"] > 1.5 * compute["H100-SXM"] > 1.5 * compute["B200"]
    plain = config_mod.compose(["experiment=none"])  # the tiny model, launch-bound everywhere
    assert not device_times.workload_applies(plain, "cpu")
    compute = [g["compute_ms_p50"] for g in predict(plain)["groups"]]
    assert max(compute) < 1.1 * min(compute)


def test_the_remedy_line_is_the_predictors_ranking():
    cfg = config_mod.compose(["logger=none"])
    rows = remedy.ranked(cfg)
    own = predict(cfg)["tokens_per_s"]
    for r in rows:  # every ratio is prediction over prediction, recomputed here
        assert r["speedup"] == pytest.approx(r["tokens_per_s"] / own, rel=1e-12)
    assert [r["tokens_per_s"] for r in rows] == sorted((r["tokens_per_s"] for r in rows), reverse=True)
    text = remedy.line(cfg)
    best = rows[0]
    assert text.startswith(f"remedy: {best['overrides']} x{best['speedup']:.2f} tokens/s predicted")
    if not best["same_maths"]:  # an outer sync wins on speed: the exact alternative is named too
        safe = next(r for r in rows if r["same_maths"] and r["speedup"] > 1.005)
        assert f"{safe['overrides']} x{safe['speedup']:.2f} (same maths)" in text
    assert "hetbench advise --from RUN_DIR" in text


def test_no_remedy_line_where_the_run_already_uses_the_fastest():
    cfg = config_mod.compose(["logger=none", "experiment=none", "cluster=h100x2",
                              "network=rack"])
    best = remedy.ranked(cfg)[0]
    name, _, split = best["overrides"].replace("strategy=", "").partition(" strategy.split=")
    fastest = config_mod.compose(["logger=none", "experiment=none", "cluster=h100x2",
                                  "network=rack", f"strategy={name}",
                                  *([f"strategy.split={split}"] if split else [])])
    assert remedy.line(fastest) is None


@pytest.mark.slow
def test_the_default_run_shows_the_straggler_and_the_link(tmp_path):
    """The default run, shortened: the A100 computes while the others wait for it, the link's
    exposed time shows, the headline names both costs, and the remedy line follows."""
    env = {k: v for k, v in os.environ.items() if k != "HETBENCH_CONFIG_DIR"}
    proc = subprocess.run([HETBENCH, "run", f"out_root={tmp_path}", "logger=none",
                           "train.steps=30", "train.warmup_steps=6"],
                          capture_output=True, text=True, timeout=300, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    (run_dir,) = run_dirs(tmp_path)
    summary = read_json(run_dir / "summary.json")
    ranks = {r["emulated_device"]: r for r in summary["ranks"]}
    a100 = ranks.pop("A100-80GB")
    assert a100["wait_ms_p50"] < 0.5 < min(r["wait_ms_p50"] for r in ranks.values())
    assert a100["compute_ms_p50"] > 1.5 * max(r["compute_ms_p50"] for r in ranks.values())
    assert summary["slowdown"]["balance"] > 1.2 and summary["slowdown"]["network"] > 1.2
    headline = re.search(r"slowdown balance x([\d.]+) network x([\d.]+)", out)
    assert headline and float(headline.group(1)) == pytest.approx(summary["slowdown"]["balance"], abs=0.006)
    lines = [ln for ln in out.splitlines() if ln.startswith("remedy: ")]
    assert lines == remedy.for_run(run_dir)
