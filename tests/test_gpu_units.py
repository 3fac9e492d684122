"""The real-GPU pieces that need no GPU: the launch-bound verdict of an emulated rank,
in-stream fault delays and the GPU pacer's pads."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from bench.costs.devices import PhaseTimes
from bench.emulate import gpu as gpu_pacing
from bench.rank import boundness
from bench.rank.faults import Faults


def test_verdict_from_the_device_model_for_an_emulated_rank():
    launch = PhaseTimes(1, 2, 0.5, "launch-bound", "model")
    assert boundness.verdict(None, launch, "cpu") == {
        "bound": "launch-bound", "gpu_busy_share": None, "bound_source": "device model"}
    assert boundness.verdict(None, None, "cpu")["bound"] is None


def test_slow_fault_uses_the_rank_s_delay_function_in_device_ms():
    faults = Faults(OmegaConf.create([{"kind": "slow", "rank": 0, "start_step": 2, "end_step": 4,
                                       "ms": 30.0}]), rank=0)
    queued = []
    faults.delay = queued.append  # a GPU rank queues a spin kernel instead of a host sleep
    assert [faults.before_backward(s) for s in range(5)] == [0.0, 0.0, 30.0, 30.0, 0.0]
    assert queued == [30.0, 30.0]


class FakeSleep:
    cycles_per_ms = 1.9e6

    def __init__(self):
        self.queued = []

    def __call__(self, ms):
        self.queued.append(ms)


def test_gpu_pacer_pads_each_phase_to_its_target_in_the_stream(monkeypatch):
    """Targets (the configured device) 10 / 20 / 2 ms; this GPU measured 4 / 8 / 3 ms: pads
    6 after forward, 12 over backward (split by bucket size), none after the optimizer (the
    real one is slower than its target: shown as excess, never negative)."""
    monkeypatch.setattr(gpu_pacing, "measure_host", lambda trainer, passes: (4.0, 8.0, 3.0, 1.0))
    pacer = gpu_pacing.GpuPacer(PhaseTimes(10.0, 20.0, 2.0, "compute-bound", "model"), 1000, "A100-80GB")
    sleep = FakeSleep()
    trainer = type("T", (), {"gpu_sleep": sleep})()
    assert pacer.calibrate(trainer, passes=3) == 1.0
    assert pacer.pads == (6.0, 12.0, 0.0)
    pacer.start_step(0, 0.0)
    pacer.pad_forward()
    for numel in (250, 750):
        pacer.pad_bucket(numel)
    pacer.pad_optimizer(0.0)
    assert sleep.queued == pytest.approx([6.0, 3.0, 9.0])
    assert pacer.pad_ms() == pytest.approx(18.0)
    assert pacer.describe()["pacing"] == "gpu-sleep"


def test_report_names_launch_bound_gpus_with_their_measured_busy_share():
    """Two real CUDA ranks, one launch-bound at 19% busy: the sentence names it, its measured
    share and the way out, after the cluster MFU the summary holds."""
    from types import SimpleNamespace

    from bench.analysis import narrative

    summary = {"mfu": 0.232, "mfu_compute": 0.259, "achieved_tflops": 459.0, "peak_tflops": 1978.0,
               "precision": {"device_model": "bf16"},
               "ranks": [{"rank": 0, "bound": "compute-bound", "gpu_busy_share": 0.97},
                         {"rank": 1, "bound": "launch-bound", "gpu_busy_share": 0.19}]}
    text = narrative.mfu_sentence(SimpleNamespace(summary=summary))
    assert text.startswith("Cluster MFU 23.2%: 459.00 TFLOP/s achieved against 1,978 TFLOP/s")
    assert "Rank 1 is launch-bound" in text and "Rank 0" not in text
    assert "ran kernels 19.0% of forward + backward at most, by CUDA events)" in text
    assert "train.compile=true" in text
