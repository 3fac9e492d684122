"""Hydra launchers: a sweep's points as submitit local jobs (real processes), resumed without
redoing a point; the Slurm node command built from a Slurm job's environment (no Slurm here)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import SUBMITIT_POINTS, run_in, submitit_sweep_args
from omegaconf import OmegaConf

from bench.config import ConfigError
from bench.sweeps import multirun, slurm

pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                    reason="hydra-submitit-launcher: pip install 'hetbench[cluster]'")


def _files_state(run_dir: Path) -> dict:
    return {str(p.relative_to(run_dir)): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_submitit_local_runs_every_point_as_a_local_job(submitit_sweep):
    proc, sweep_dir = submitit_sweep
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((sweep_dir / "sweep.json").read_text())
    assert [(p["point"], p["status"]) for p in doc["points"]] == \
        [("000_latency_ms=0", "ok"), ("001_latency_ms=20", "ok")]
    assert (sweep_dir / "sweep.csv").read_text().count("\n") == 3  # header + 2 points
    # Each point ran in its own submitit job process, which logged its progress there.
    logs = sorted(sweep_dir.glob(".submitit/*/*_log.out"))
    assert len(logs) == 2
    assert sorted(log.read_text().count("point ") > 0 for log in logs) == [True, True]
    step_ms = [json.loads((sweep_dir / p["point"] / "summary.json").read_text())["step_ms"]["p50"]
               for p in doc["points"]]
    assert step_ms[1] > step_ms[0] + 15  # the 20 ms link is on every step of the second point


@pytest.mark.slow
def test_submitit_local_writes_only_the_run_directories(submitit_sweep):
    proc, sweep_dir = submitit_sweep
    names = {p.name for p in sweep_dir.iterdir()}
    assert names == {*SUBMITIT_POINTS, "sweep.csv", "sweep.json", "multirun.yaml", ".submitit",
                     ".sweep.lock"}
    for point in SUBMITIT_POINTS:
        assert sorted(p.name for p in (sweep_dir / point / ".hydra").iterdir()) == ["overrides.yaml"]
        assert not list((sweep_dir / point).glob("*.log"))  # no Hydra job log
    assert not (sweep_dir.parent.parent / "outputs").exists()  # Hydra's default output dir


@pytest.mark.slow
def test_rerunning_a_finished_submitit_sweep_redoes_no_point(submitit_sweep, tmp_path_factory):
    proc, sweep_dir = submitit_sweep
    assert proc.returncode == 0
    before = {p: _files_state(sweep_dir / p) for p in SUBMITIT_POINTS}
    again = run_in(sweep_dir.parent.parent, submitit_sweep_args(sweep_dir.parent))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rows = json.loads((sweep_dir / "sweep.json").read_text())["points"]
    assert [(r["status"], r["reused"]) for r in rows] == [("ok", True), ("ok", True)]
    assert {p: _files_state(sweep_dir / p) for p in before} == before


# ---------------------------------------------------------------------------------------------
# Slurm: the command each node runs, from a fake Slurm environment.

SLURM_ENV = {"SLURM_JOB_ID": "4242", "SLURM_NNODES": "2", "SLURM_NODEID": "1",
             "SLURM_JOB_NODELIST": "gpu[07-08]"}


def _cfg(world: int):
    return OmegaConf.create({"cluster": {"groups": [{"device": "H100", "count": world,
                                                     "site": "a"}]}})


def test_slurm_node_runs_one_torchrun_agent_with_c10d_on_the_first_node():
    cmd = slurm.torchrun_command(_cfg(16), ["train.steps=5"], SLURM_ENV)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert sorted(cmd[3:10]) == sorted(["--nnodes=2", "--node-rank=1", "--nproc-per-node=8",
                                        "--rdzv-backend=c10d", "--rdzv-endpoint=gpu07:29742",
                                        "--rdzv-id=4242", "--max-restarts=0"])
    assert cmd[10:] == ["-m", "bench.train", "train.steps=5"]


def test_hetbench_rdzv_port_moves_the_base_of_the_slurm_rendezvous_port():
    cmd = slurm.torchrun_command(_cfg(16), [], dict(SLURM_ENV, HETBENCH_RDZV_PORT="31000"))
    assert "--rdzv-endpoint=gpu07:31242" in cmd


def test_a_slurm_nodes_ranks_are_told_the_endpoint_its_torchrun_meets_at():
    """HETBENCH_RDZV_ENDPOINT (recorded in metadata.json) is the --rdzv-endpoint, on every node;
    a local job and a job outside Slurm get none."""
    target = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    for env in (SLURM_ENV, dict(SLURM_ENV, SLURM_NODEID="0", HETBENCH_RDZV_PORT="31000")):
        node = slurm.node_for(target, env)
        assert f"--rdzv-endpoint={node.env['HETBENCH_RDZV_ENDPOINT']}" in node.command(_cfg(4), [])
    assert slurm.node_for(target, SLURM_ENV).env == {"HETBENCH_RDZV_ENDPOINT": "gpu07:29742"}
    assert slurm.node_for(target, dict(SLURM_ENV, SLURM_NODEID="0", HETBENCH_RDZV_PORT="31000")) \
        .env == {"HETBENCH_RDZV_ENDPOINT": "gpu07:31242"}
    assert slurm.node_for(target, {}).env == {}
    assert slurm.node_for(target.replace("Slurm", "Local"), SLURM_ENV).env == {}


@pytest.mark.parametrize("nodes, gpus, worlds, key", [
    (2, 8, [16, 15], "hydra.launcher.nodes"), (2, 8, [16, 8], "hydra.launcher.gpus_per_node")])
def test_slurm_allocation_is_checked_against_every_point(nodes, gpus, worlds, key):
    launcher = OmegaConf.create({"nodes": nodes, "gpus_per_node": gpus})
    slurm.check_allocation(launcher, worlds[:1])  # 16 ranks: 8 per node, one GPU each
    with pytest.raises(ConfigError, match=key):
        slurm.check_allocation(launcher, worlds)
    slurm.check_allocation(OmegaConf.create({"nodes": 2, "gpus_per_node": None}), [16, 8])  # CPU


def test_only_the_first_slurm_node_leads_and_a_local_job_runs_standalone():
    slurm_target = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    first, second = (slurm.node_for(slurm_target, dict(SLURM_ENV, SLURM_NODEID=n)) for n in "01")
    assert (first.leader, second.leader) == (True, False)
    assert "--node-rank=1" in second.command(_cfg(16), [])
    local = slurm.node_for("hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
                           SLURM_ENV)  # a Slurm allocation around a local sweep changes nothing
    assert local.leader and "--standalone" in local.command(_cfg(2), [])
    assert (first.nodes, first.local, local.nodes, local.local) == (2, False, 1, True)


def test_a_slurm_node_places_its_own_ranks_not_the_whole_world(monkeypatch):
    """2 nodes x 4 GPUs, 8 ranks: each node runs 4 GPU ranks (one thread each, unpaced), where
    the whole world on one node would be 8 ranks on 4 GPUs (CPU, paced)."""
    from bench import config
    from bench.costs import cluster, placement
    from bench.driver import command
    from bench.sweeps import timescale

    monkeypatch.setattr(placement, "visible_gpus", lambda: 4)
    cfg = config.compose(["cluster=mixed4", "cluster.groups.0.count=6"])  # 8 ranks
    assert cluster.world_size(cfg) == 8
    assert command.cpu_threads(cfg, local_ranks=4) == 1 and not timescale.paces(cfg, nodes=2)
    assert timescale.paces(cfg)  # all 8 here: CPU emulation


@pytest.mark.parametrize("nodelist, first", [("gpu[07-08]", "gpu07"), ("n1,n2", "n1"),
                                             ("a[3,5-9]-ib,b1", "a3-ib"), ("solo", "solo"),
                                             ("rack[1-2]-node[01-04]", "rack1-node01"),
                                             ("[a]", "a"), ("gpu[007-010]", "gpu007")])
def test_first_host_of_a_slurm_node_list(nodelist, first):
    assert slurm.first_host(nodelist) == first


@pytest.mark.parametrize("nodelist", ["", "gpu[07-"])
def test_a_bad_node_list_names_the_variable(nodelist):
    with pytest.raises(ConfigError, match="SLURM_JOB_NODELIST"):
        slurm.first_host(nodelist)


def test_slurm_command_names_the_fix_for_a_bad_split_or_a_missing_environment():
    with pytest.raises(ConfigError, match="hydra.launcher.nodes"):
        slurm.torchrun_command(_cfg(3), [], SLURM_ENV)
    with pytest.raises(ConfigError, match="SLURM_JOB_NODELIST"):
        slurm.torchrun_command(_cfg(4), [], {k: v for k, v in SLURM_ENV.items()
                                             if k != "SLURM_JOB_NODELIST"})


def test_the_slurm_preset_composes_with_one_task_per_node(tmp_path):
    from hydra import compose, initialize_config_dir

    from bench.config import config_dir, register_schema

    register_schema()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("config", ["hydra/launcher=slurm", "hydra.launcher.nodes=2"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 1, 8)


def test_a_submitit_launcher_without_the_plugin_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "hydra_plugins.hydra_submitit_launcher", None)
    with pytest.raises(ConfigError, match=r"hetbench\[cluster\]"):
        multirun._launcher(["hydra/launcher=submitit_local"])


# ---------------------------------------------------------------------------------------------
# The plan hetbench validates is the sweep Hydra runs; the table survives parallel job ends.


@pytest.mark.parametrize("overrides", [
    ["network.inter_site.latency_ms=0,5", "cluster=h100x2,mixed4", "train.steps=30"],
    ["experiment=latency_sweep", "network.inter_site.latency_ms=1,2", "train.seed=3"],
    ["experiment=mix_sweep"]])
def test_hydra_names_each_job_as_the_plan_named_its_point(overrides):
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from bench.sweeps import job as sweep_job
    from bench.sweeps import plan as sweep
    from bench.sweeps import table

    points = sweep.expand(overrides)
    exp = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), None)
    params = [f"{k}={v}" for k, v in sweep.experiment_params(exp).items()] if exp else []
    (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(
        params + overrides), None)
    keys = table.swept_keys(points)
    assert [sweep_job._point_dir(i, keys, job) for i, job in enumerate(jobs)] == \
        [p.name for p in points]


def _upsert(args):
    sweep_dir, index = args
    from bench.sweeps import table

    table.upsert_row(Path(sweep_dir), {"index": index, "point": f"{index:03d}", "status": "ok",
                                       "swept": {}, "time_base": "device"})


def test_rows_written_by_parallel_jobs_all_reach_the_table(tmp_path):
    import multiprocessing

    from bench.sweeps import table

    table.write_doc(tmp_path, table.new_doc("par", [], 24, None, []))
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        pool.map(_upsert, [(str(tmp_path), i) for i in reversed(range(24))])
    rows = json.loads((tmp_path / "sweep.json").read_text())["points"]
    assert [r["index"] for r in rows] == list(range(24))
    assert (tmp_path / "sweep.csv").read_text().count("\n") == 25


def test_a_misspelt_launcher_stops_the_sweep_before_anything_starts(tmp_path, capsys):
    from bench.cli import main as cli_main

    rc = cli_main(["run", "-m", "cluster=h100x2", "train.seed=0,1", "hydra/launcher=submitit_locl",
                   "sweep_id=typo", f"out_root={tmp_path}"])
    assert rc == 2
    assert "submitit_locl" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()
