"""Checks that need a real GPU (marked `gpu`; skipped with the reason where CUDA is absent).
scripts/gpu_check.sh runs them with the benchmarks; docs/gpu.md records what they measured."""
from __future__ import annotations

import statistics
import subprocess

import pytest
import torch

from tests.conftest import HETBENCH, read_json, read_records, run_hetbench

GPUS = torch.cuda.device_count() if torch.cuda.is_available() else 0
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(GPUS == 0, reason="needs a CUDA GPU")]

ONE_GPU = ["cluster.groups=[{device:H100,count:1}]", "network=rack", "emulation.network=off"]
SMALL = ["model=small", "train.micro_batch=16", "train.seq_len=256"]


def _median(records, key, warm=True):
    return statistics.median(r[key] for r in records if not (warm and r["warmup"]))


def test_gpu_sleep_takes_the_milliseconds_asked_for_in_cuda_event_time():
    from bench.rank import gpu_sleep

    sleep = gpu_sleep.calibrate()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        start.record()
        sleep(25.0)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    assert statistics.median(times) == pytest.approx(25.0, rel=0.03)


def test_prefetched_batches_on_cuda_are_the_drawn_ones():
    from bench.rank.data import Batches, MarkovLanguage
    from bench.rank.prefetch import Prefetcher

    lang, dev = MarkovLanguage(256, 4, seed=0), torch.device("cuda")
    direct, ahead = Batches(lang, 0, 0, 4, 64, dev), Prefetcher(Batches(lang, 0, 0, 4, 64, dev))
    try:
        for step in range(6):
            assert all(torch.equal(a, b) for a, b in zip(ahead.batch(step), direct.batch(step)))
    finally:
        ahead.close()


def test_one_gpu_run_defaults_to_bf16_and_reports_mfu_bound_and_data_share(tmp_path):
    rc, run_dir, out = run_hetbench(tmp_path, *ONE_GPU, *SMALL, "train.steps=80", timeout=600)
    assert rc == 0, out
    meta, summary = read_json(run_dir / "metadata.json"), read_json(run_dir / "summary.json")
    assert meta["backend"] == "nccl"
    capable = torch.cuda.get_device_capability() >= (8, 0)
    assert meta["precision"]["compute"] == ("bf16" if capable else "fp16")
    assert meta["precision"]["prefetch"] is True
    row = summary["ranks"][0]
    assert 0 < row["mfu"] <= 1 and summary["mfu"] == pytest.approx(row["mfu"])
    assert row["bound"] in ("launch-bound", "compute-bound") and 0 < row["gpu_busy_share"] <= 1
    recs = read_records(run_dir)
    assert _median(recs, "data_ms") <= 0.02 * _median(recs, "step_ms")


def test_slow_fault_on_a_gpu_shows_in_its_cuda_event_times(tmp_path):
    rc, run_dir, out = run_hetbench(tmp_path, *ONE_GPU, "train.steps=60", "train.warmup_steps=5",
                                    "faults=[{kind:slow,rank:0,start_step:30,end_step:60,ms:30}]",
                                    timeout=600)
    assert rc == 0, out
    recs = [r for r in read_records(run_dir) if r["step"] >= 10]
    slow = statistics.median(r["fwd_ms"] for r in recs if r["step"] >= 30)
    normal = statistics.median(r["fwd_ms"] for r in recs if r["step"] < 30)
    assert slow - normal == pytest.approx(30.0, abs=1.5)
    row = read_json(run_dir / "summary.json")["ranks"][0]  # the tiny model at 2 x 32 tokens
    assert row["bound"] == "launch-bound" and row["gpu_busy_share"] < 0.5, row


def test_gpu_pacing_turns_this_gpu_into_an_a100(tmp_path):
    """emulation.compute=on on a real GPU: compute paced by in-stream sleeps to the A100's
    modelled time (compute-bound at 64 x 1024, slower than this GPU)."""
    rc, run_dir, out = run_hetbench(tmp_path, "cluster.groups=[{device:A100,count:1}]", "network=rack",
                                    "emulation.network=off", "emulation.compute=on", "model=small",
                                    "train.micro_batch=64", "train.seq_len=1024", "train.steps=30",
                                    "train.warmup_steps=10", timeout=600)
    assert rc == 0, out
    summary, meta = read_json(run_dir / "summary.json"), read_json(run_dir / "metadata.json")
    assert meta["emulation"]["pacing"] == "gpu-sleep"
    pacing = summary["emulation"]["pacing"][0]
    assert meta["emulation"]["pad_bwd_ms"] > 0, meta["emulation"]
    assert pacing["compute_ms_p50"] == pytest.approx(pacing["target_compute_ms"], rel=0.05)


@pytest.mark.skipif(GPUS >= 4, reason="needs fewer GPUs than the default 4 ranks")
def test_default_command_on_a_machine_with_too_few_gpus_emulates_on_cpu(tmp_path):
    rc, run_dir, out = run_hetbench(tmp_path, "train.steps=30", "train.warmup_steps=5", timeout=600)
    assert rc == 0, out
    assert f"4 ranks, {GPUS} GPU" in out and "emulating on CPU" in out
    assert read_json(run_dir / "metadata.json")["backend"] == "gloo"


@pytest.mark.skipif(GPUS >= 4, reason="needs fewer GPUs than the default 4 ranks")
def test_train_device_cuda_with_too_few_gpus_exits_2_naming_both_numbers(tmp_path):
    proc = subprocess.run([HETBENCH, "run", f"out_root={tmp_path}", "train.device=cuda"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert f"4 ranks on this machine but {GPUS} GPU" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.skipif(GPUS < 2, reason="NCCL across devices needs 2 GPUs; this machine has fewer")
def test_two_gpus_exchange_over_nccl(tmp_path):
    rc, run_dir, out = run_hetbench(tmp_path, "cluster.groups=[{device:H100,count:2}]", "network=rack",
                                    "emulation.network=off", "train.steps=30", timeout=600)
    assert rc == 0, out
    assert read_json(run_dir / "metadata.json")["backend"] == "nccl"
