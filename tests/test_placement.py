"""Where the ranks run: CUDA only when every local rank gets a GPU of its own."""
from __future__ import annotations

import os

import pytest

from bench import cli
from bench.config import ConfigError
from bench.costs import placement
from bench.driver import launch as driver_launch
from bench.driver import run as driver


def test_auto_with_four_ranks_and_one_gpu_emulates_on_cpu_and_says_so():
    placed = placement.place("auto", 4, 1)
    assert placed.device == "cpu"
    assert placed.notice.startswith("4 ranks, 1 GPU visible: emulating on CPU")


def test_auto_uses_cuda_when_each_rank_has_a_gpu():
    assert placement.place("auto", 2, 2) == placement.Placement("cuda")
    assert placement.place("auto", 1, 8) == placement.Placement("cuda")


def test_no_gpu_is_plain_cpu_without_a_notice():
    assert placement.place("auto", 4, 0) == placement.Placement("cpu")
    assert placement.place("cpu", 4, 8) == placement.Placement("cpu")


def test_cuda_with_too_few_gpus_names_both_numbers_and_the_fix():
    with pytest.raises(ConfigError) as err:
        placement.place("cuda", 4, 1)
    assert err.value.key == "train.device"
    assert "4 ranks" in str(err.value) and "1 GPU visible" in str(err.value)
    assert "train.device=cpu" in str(err.value) and "cluster" in str(err.value)


def test_hetbench_run_exits_2_before_launch_when_cuda_is_short(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(placement, "visible_gpus", lambda: 1)
    launched = []
    monkeypatch.setattr(driver, "launch", lambda *a, **k: launched.append(a) or 0)
    rc = cli.main(["run", f"out_root={tmp_path}", "train.device=cuda"])
    err = capsys.readouterr().err
    assert rc == 2 and not launched
    assert "4 ranks on this machine but 1 GPU visible" in err
    assert "Traceback" not in err


def test_driver_tells_the_workers_to_emulate_when_gpus_are_short(monkeypatch, capsys):
    monkeypatch.setattr(placement, "visible_gpus", lambda: 1)
    from bench import config

    cfg = config.compose([])
    overrides = driver_launch.place_ranks(cfg, ["train.steps=5"])
    assert overrides == ["train.steps=5", "train.device=cpu"] and cfg.train.device == "cpu"
    assert capsys.readouterr().out.strip() == (
        "hetbench: 4 ranks, 1 GPU visible: emulating on CPU (each rank needs a GPU of its own; "
        "for the GPU, use a cluster with at most 1 rank per machine, or train.device=cuda to insist)")


def test_driver_leaves_the_overrides_alone_where_gpus_suffice(monkeypatch, capsys):
    monkeypatch.setattr(placement, "visible_gpus", lambda: 4)
    from bench import config

    cfg = config.compose([])
    assert driver_launch.place_ranks(cfg, ["a=1"]) == ["a=1"] and capsys.readouterr().out == ""


@pytest.mark.parametrize("files, expected", [([], 0), (["/dev/nvidia0"], 3)])
def test_a_linux_host_without_gpu_device_files_has_no_gpu_and_torch_is_not_asked(
        monkeypatch, files, expected):
    """torch says 3 here: it is only asked where a GPU driver made its device files."""
    import torch

    monkeypatch.setattr(placement.sys, "platform", "linux")
    monkeypatch.setattr(placement.glob, "glob", lambda pattern: files if "nvidia" in pattern else [])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert placement.visible_gpus() == expected


def test_the_driver_does_not_import_torch_on_a_cpu_only_linux_host(tmp_path):
    """Validation and placement before launch: torch (~3 s) stays unimported on this machine."""
    import subprocess
    import sys

    if any(placement.glob.glob(p) for p in placement.GPU_DEVICE_FILES):
        pytest.skip("this host has GPU device files: torch is asked, as it should be")
    code = ("import sys; from bench import config; "
            f"cfg = config.compose(['out_root={tmp_path}']); config.validate(cfg); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# One rule on a 1-GPU machine with the default 4 ranks: the driver emulates on CPU, so
# `hetbench calibrate`, a sweep's shared D and the ranks' threads all treat the ranks as paced
# CPU ranks (they used to ask torch.cuda or the GPU count, and disagreed).

def _one_gpu(monkeypatch):
    """What a real 1-GPU host answers, to every way of asking."""
    import torch

    monkeypatch.setattr(placement, "visible_gpus", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_on_one_gpu_four_ranks_are_paced_everywhere_they_are_asked(monkeypatch):
    from bench import config
    from bench.driver import command
    from bench.sweeps import timescale

    _one_gpu(monkeypatch)
    cfg = config.compose([])
    assert placement.of_config(cfg, 4).device == "cpu"
    assert placement.paced_here(cfg, 4) and timescale.paces(cfg)
    assert command.cpu_threads(cfg) == max(1, len(os.sched_getaffinity(0)) // 4)


def test_calibrate_works_on_a_one_gpu_machine(monkeypatch, capsys):
    from bench.driver import calibrate

    _one_gpu(monkeypatch)
    seen = []

    def fake(cfg, overrides, run_dir):  # the ranks' host times, as calibration.json has them
        seen.append(cfg.train.device)
        return {"world_size": 4, "host_ms": [[8.0, 16.0, 2.0, 1.0]] * 4}

    monkeypatch.setattr(calibrate, "calibrate", fake)
    assert cli.main(["calibrate"]) == 0
    assert seen == ["auto"] and "emulation.time_scale=" in capsys.readouterr().out


def test_a_sweep_on_a_one_gpu_machine_shares_one_time_scale(monkeypatch, tmp_path):
    from bench.sweeps import plan, timescale

    _one_gpu(monkeypatch)
    monkeypatch.setattr(timescale, "calibrate",
                        lambda cfg, overrides, folder: {"host_ms": [[8.0, 16.0, 2.0, 1.0]] * 4})
    p = plan.plan([f"out_root={tmp_path}", "network.inter_site.latency_ms=0,5", "sweep_id=one"])
    p.sweep_dir.mkdir(parents=True)
    timescale.share_time_scale(p)
    scales = {c.emulation.time_scale for c in p.configs}
    assert len(scales) == 1 and None not in scales and p.time_scale in scales


def test_a_cpu_rank_shares_the_cpus_it_may_run_on_not_the_machines(monkeypatch):
    """A Slurm job given 4 of a node's 64 cores (its affinity): 2 local ranks get 2 threads
    each, not 32; without an affinity API, the machine's count."""
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {8, 9, 10, 11}, raising=False)
    assert placement.usable_cpus() == 4 and placement.cpu_share(2) == 2
    monkeypatch.delattr(os, "sched_getaffinity")
    assert placement.usable_cpus() == 64 and placement.cpu_share(2) == 32
