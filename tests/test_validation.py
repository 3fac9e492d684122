"""Bad input: exit status 2 and one message naming the key, the value and the fix, before any
process starts (driver) or before the process group is joined (torchrun worker)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli
from bench import config as config_mod
from bench.costs import cluster
from bench.rank import dist as dist_mod
from bench.rank import main as train_mod

# (overrides, key the message must name, value it must show, words of the fix)
CASES = [
    pytest.param(["cluster.groups.0.device=Z100"], "cluster.groups[0].device", "Z100",
                 ["unknown device", "known:", "H100", "B200", "A100-40GB", "MI300X", "V100"],
                 id="unknown-device"),
    pytest.param(["cluster.world_size=3"], "cluster.world_size", "3",
                 ["2 (H100) + 1 (B200) + 1 (A100) = 4", "make them agree"], id="world-size-sum"),
    pytest.param(["train.steps=-5"], "train.steps", "-5", ["positive integer"], id="negative-steps"),
    pytest.param(["train.steps=0"], "train.steps", "0", ["positive integer"], id="zero-steps"),
    pytest.param(["train.steps=20", "train.warmup_steps=20"], "train.warmup_steps", "20",
                 ["warmup_steps < train.steps (20)"], id="warmup-equals-steps"),
    pytest.param(["train.steps=10", "train.warmup_steps=30"], "train.warmup_steps", "30",
                 ["warmup_steps < train.steps (10)"], id="warmup-over-steps"),
    pytest.param(["cluster=nope"], "cluster/nope", "cluster=nope",
                 ["Available options in 'cluster'", "mixed4", "h100x2"], id="unknown-group-option"),
    pytest.param(["train.nope=1"], "train.nope", "train.nope=1",
                 ["Key 'nope' not in 'TrainConfig'", "known groups and keys"], id="unknown-key"),
    pytest.param(["+train.nope=1"], "train.nope", "1",
                 ["unknown key", "known keys here", "warmup_steps"], id="unknown-key-appended"),
    pytest.param(["train.steps=abc"], "train.steps", "abc",
                 ["could not be converted to Integer"], id="not-an-integer"),
    pytest.param(["network.inter_site.latency_ms=-1"], "network.inter_site.latency_ms", "-1.0",
                 ["use 0 or a positive number"], id="negative-latency"),
    pytest.param(["network.intra_site.jitter_ms=-0.5"], "network.intra_site.jitter_ms", "-0.5",
                 ["use 0 or a positive number"], id="negative-jitter"),
    pytest.param(["network.inter_site.bandwidth_gbps=0"], "network.inter_site.bandwidth_gbps", "0.0",
                 ["positive number", "null for no limit"], id="zero-bandwidth"),
    pytest.param(["faults=[{kind: slow, rank: 4, ms: 10}]"], "faults[0].rank", "4",
                 ["ranks 0..3"], id="fault-rank-missing"),
    pytest.param(["faults=[{kind: crash, rank: -1}]"], "faults[0].rank", "-1",
                 ["ranks 0..3"], id="fault-rank-negative"),
    pytest.param(["faults=[{kind: explode, rank: 1}]"], "faults[0].kind", "explode",
                 ["slow, crash or hang"], id="fault-unknown-kind"),
    pytest.param(["faults=[{kind: slow, rank: 1, ms: 0}]"], "faults[0].ms", "0.0",
                 ["ms > 0"], id="slow-fault-zero-ms"),
    pytest.param(["emulation.compute=maybe"], "emulation.compute", "maybe",
                 ["auto, on, off"], id="bad-choice-compute"),
    pytest.param(["logger.wandb.mode=sometimes"], "logger.wandb.mode", "sometimes",
                 ["offline, online, disabled"], id="bad-choice-wandb-mode"),
    pytest.param(["data.branching=0"], "data.branching", "0", ["positive integer"],
                 id="zero-branching"),
    pytest.param(["data.vocab_size=300000"], "data.vocab_size", "300000",
                 ["at most 262,144 tokens"], id="markov-vocab-too-large"),
    pytest.param(["data.vocab_size=50304", "data.branching=84"], "data.branching", "84",
                 ["at most 83 successors", "data.vocab_size=50304", "<= 4,194,304"],
                 id="markov-too-many-transitions"),
    pytest.param(["strategy.split=fast"], "strategy.split", "fast",
                 ["use uniform or balanced", "strategy=diloco strategy.split=balanced"],
                 id="bad-split"),
    pytest.param(["strategy=balanced", "strategy.split=uniform"], "strategy.split", "uniform",
                 ["ddp with the balanced split", "use strategy=ddp"], id="balanced-uniform"),
    pytest.param(["data.kind=text", "data.path=/no/such/file.txt"], "data.path", "/no/such/file.txt",
                 ["no such file"], id="text-file-missing"),
    pytest.param(["run_id=latest"], "run_id", "latest", ["link to the newest run", "another name"],
                 id="run-id-latest"),
]


@pytest.fixture
def no_launch(monkeypatch):
    """Record any attempt to start torchrun or join a process group; none may happen."""
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(("subprocess.run", a)))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(("Popen", a)))
    monkeypatch.setattr(dist_mod, "init", lambda *a, **k: calls.append(("dist.init", a)))
    return calls


@pytest.mark.parametrize("overrides, key, value, fix", CASES)
def test_cli_rejects_bad_input(tmp_path, capsys, no_launch, overrides, key, value, fix):
    out_root = tmp_path / "runs"
    rc = cli.main(["run", f"out_root={out_root}", *overrides])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_BAD_INPUT == 2
    assert err.startswith("hetbench: error: ") and err.count("hetbench: error:") == 1
    assert key in err and value in err
    for words in fix:
        assert words in err, f"fix {words!r} missing from: {err}"
    assert no_launch == []
    assert not out_root.exists()


def test_good_default_config_passes_validation():
    # The control for the cases above: the default experiment is valid, so each rejection
    # comes from the one bad value.
    cfg = config_mod.compose([])
    assert cluster.world_size(cfg) == 4
    config_mod.validate(cfg, launched_world_size=4)


@pytest.mark.parametrize("overrides", [["data.vocab_size=50304"],
                                       ["data.vocab_size=50304", "data.branching=83"],
                                       ["data.vocab_size=262144", "data.branching=16"],
                                       ["data.vocab_size=16", "data.branching=1000"]])
def test_large_markov_vocabularies_up_to_the_limits_pass_validation(overrides):
    # The last: branching over the vocabulary means every token follows every token (k = V).
    config_mod.validate(config_mod.compose(overrides), launched_world_size=4)


def test_text_file_too_short(tmp_path, capsys, no_launch):
    short = tmp_path / "short.txt"
    short.write_text("hello\n" * 10)
    rc = cli.main(["run", f"out_root={tmp_path / 'runs'}", "data.kind=text", f"data.path={short}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "data.path=" in err and "short.txt" in err and "at least 1024 bytes" in err
    assert no_launch == []


@pytest.fixture
def sigterm_restored():
    saved = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, saved)


def test_worker_rejects_launched_world_size_before_joining(monkeypatch, capsys, no_launch,
                                                           sigterm_restored):
    monkeypatch.setenv("WORLD_SIZE", "3")
    rc = train_mod.main([])
    err = capsys.readouterr().err
    assert rc == 2
    assert no_launch == []  # dist.init (init_process_group) never called
    assert "cluster.groups=" in err
    assert "2 (H100) + 1 (B200) + 1 (A100) = 4" in err
    assert "torchrun started 3 ranks (WORLD_SIZE)" in err
    assert "--nproc-per-node" in err


def test_worker_rejects_bad_override_before_joining(monkeypatch, capsys, no_launch, sigterm_restored):
    monkeypatch.setenv("WORLD_SIZE", "4")
    rc = train_mod.main(["network.inter_site.latency_ms=-2"])
    err = capsys.readouterr().err
    assert rc == 2
    assert no_launch == []
    assert "network.inter_site.latency_ms=-2.0" in err


def _hetbench() -> list[str]:
    script = Path(sys.executable).parent / "hetbench"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bench.cli"]


@pytest.mark.parametrize("override, expected", [
    ("cluster.groups.0.device=Z100", "cluster.groups[0].device='Z100': unknown device; known: "),
    ("cluster.world_size=3", "cluster.world_size=3: the groups add up to "
                             "2 (H100) + 1 (B200) + 1 (A100) = 4"),
])
def test_console_script_exits_2_and_leaves_nothing(tmp_path, override, expected):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    out_root = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "HETBENCH_RUN_ID")}
    # Should validation ever let the run through, these keep it short and the cleanup reaches
    # torchrun and its ranks (own session, killed as a group).
    short = ["train.steps=2", "train.warmup_steps=1", "emulation.calibration_steps=1", "logger=none"]
    proc = subprocess.Popen([*_hetbench(), "run", f"out_root={out_root}", *short, override],
                            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 2, stderr
    assert expected in stderr
    assert stderr.count("hetbench: error:") == 1
    assert "hetbench: run " not in stdout  # the line printed just before torchrun starts
    assert not out_root.exists()
    assert list(workdir.iterdir()) == []  # no runs/, outputs/ or .hydra/ in the working dir


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("overrides,key", [(["train.device=cuda"], "train.device"),
                                           (["dist.backend=nccl"], "dist.backend")])
def test_cuda_settings_without_a_gpu_are_refused_before_launch(overrides, key, capsys, tmp_path):
    assert cli.main(["run", f"out_root={tmp_path / 'runs'}", *overrides]) == 2
    err = capsys.readouterr().err
    assert key in err and ("cpu" in err or "gloo" in err)
    assert not (tmp_path / "runs").exists()

