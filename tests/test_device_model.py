"""The device time model (bench.costs.devices over bench.costs.kernels and bench.costs.roofline)
and its use per rank (bench.costs.device_times): each term against arithmetic done again here,
the dispatch counts against the real model's, and the fitted constants against their fit."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench import config as config_mod
from bench import hardware
from bench.config import ConfigError
from bench.costs import device_grid, device_times, devices, kernels, roofline
from bench.rank.model import GPT, build_model
from bench.results import timebase

DATA = Path(__file__).resolve().parents[1] / "benchmarks" / "data"
CAL = roofline.CALIBRATION


def _cfg(*overrides):
    """The tiny model timed as itself (experiment=none) unless an override says otherwise."""
    tiny = [] if any(o.startswith("experiment=") for o in overrides) else ["experiment=none"]
    return config_mod.compose(["logger=none", *tiny, *overrides])


@pytest.mark.parametrize("dims", [(256, 64, 4, 128), (256, 256, 8, 512), (97, 33, 2, 48)])
def test_parameter_and_flop_counts_match_the_real_model(dims):
    vocab, seq, layers, embd = dims
    from omegaconf import OmegaConf

    model = build_model(OmegaConf.create({"n_layer": layers, "n_head": 4, "n_embd": embd}), vocab, seq)
    assert devices.gpt_params(vocab, seq, layers, embd) == model.num_params(non_embedding=False)
    assert devices.gpt_flops_per_token(vocab, seq, layers, embd) == \
        6 * model.num_params() + 6 * layers * seq * embd


def _work(layers=8, embd=512, vocab=256, seq=256, batch=16, precision="bf16", stack="eager"):
    return devices.Workload(devices.gpt_flops_per_token(vocab, seq, layers, embd), batch * seq,
                            layers, devices.gpt_params(vocab, seq, layers, embd), precision,
                            embd, seq, vocab, stack)


# --- the eager stack's dispatches are the real model's -------------------------------------

_VIEWS = {"view", "_unsafe_view", "t", "transpose", "split", "expand", "unsqueeze", "permute",
          "as_strided", "slice", "select", "alias", "detach", "_reshape_alias", "reshape",
          "split_with_sizes", "unbind", "squeeze", "lift_fresh"}


class _Dispatches(TorchDispatchMode):
    """Counts the aten ops that do work (views launch nothing); autocast's casts apart."""

    def __init__(self):
        super().__init__()
        self.ops = self.casts = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name == "_to_copy":
            self.casts += 1
        elif name not in _VIEWS:
            self.ops += 1
        return func(*args, **(kwargs or {}))


def _live(layers: int, autocast: bool) -> dict:
    torch.manual_seed(0)
    model = GPT(256, 64, layers, 4, 128)
    x = torch.randint(0, 256, (2, 64))
    out = {}
    with _Dispatches() as fwd, torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(x, x)
    with _Dispatches() as bwd:
        loss.backward()
    out["fwd"], out["bwd"] = (fwd.ops, fwd.casts), (bwd.ops, bwd.casts)
    return out


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("layers", [1, 3])
def test_eager_dispatches_are_the_models_own(layers, precision):
    """Every op the model really dispatches, forward and backward, per layer and once, counted
    live on CPU (autocast to bf16 there casts what CUDA's autocast casts)."""
    live = _live(layers, precision == "bf16")
    ops = kernels.step_ops(kernels.Shape(layers, 128, 256, 64, 2), precision, "eager")
    for phase in ("fwd", "bwd"):
        mine = [op for op in ops if op.phase == phase]
        assert (sum(op.count * op.dispatches for op in mine),
                sum(op.count * op.casts for op in mine)) == live[phase]


def test_the_fused_stack_dispatches_fewer_kernels_and_moves_fewer_bytes():
    shape = kernels.Shape(12, 768, 50257, 1024, 8)
    eager, fused = (kernels.step_ops(shape, "bf16", s) for s in kernels.STACKS)
    for measure in (lambda o: o.dispatches + o.casts, lambda o: o.nbytes):
        assert sum(o.count * measure(o) for o in fused) < 0.5 * sum(o.count * measure(o) for o in eager)
    flops = [sum(o.count * o.flops for o in ops) for ops in (eager, fused)]
    assert flops[0] == flops[1]  # the same model: the same arithmetic


# --- each term by hand, one layer --------------------------------------------------------

def _one_layer(precision="bf16", stack="eager"):
    ops = kernels.step_ops(kernels.Shape(1, 512, 256, 256, 16), precision, stack)
    return {(op.name, op.phase): op for op in ops}


def test_a_matmul_is_its_flops_at_the_sustained_matmul_rate_in_whole_waves():
    """qkv forward on H100 in bf16: 4096 x 1536 x 512; 32 x 12 = 384 tiles of 128 x 128 on 132
    SMs take 3 waves, 384 / 396 of them busy."""
    op = _one_layer()[("qkv", "fwd")]
    dev = roofline.device("H100", "bf16")
    rate = 989e12 * 0.801 * dict(CAL.sustained)["hopper"] * (384 / 396)
    assert op.flops == 2 * 4096 * 1536 * 512
    assert roofline.op_ms(op, dev) == pytest.approx(op.flops / rate * 1e3)


def test_a_small_matmul_splits_k_to_fill_the_sms():
    """proj's weight gradient: 512 x 512 outputs = 16 tiles; K = 4096 splits 8 ways (132 // 16),
    128 of 132 SMs busy."""
    op = _one_layer()[("proj.wgrad", "bwd")]
    assert op.mnk == (512, 512, 4096)
    dev = roofline.device("H100", "bf16")
    assert roofline.wave_fill(dev, *op.mnk) == pytest.approx(128 / 132)


def test_fp32_matmuls_use_the_cuda_core_peak():
    op = _one_layer("fp32")[("qkv", "fwd")]
    dev = roofline.device("H100", "fp32")
    assert dev.peak_tflops == 67.0 and dev.gemm_efficiency == CAL.fp32_gemm
    assert roofline.op_ms(op, dev) == pytest.approx(op.flops / (67e12 * CAL.fp32_gemm * 384 / 396) * 1e3)


def test_memory_bound_work_is_its_bytes_at_the_sustained_bandwidth():
    """GELU forward in bf16 reads and writes 4C activations of 4096 tokens: 16 x 4096 x 512 B."""
    op = _one_layer()[("gelu", "fwd")]
    assert op.nbytes == 8 * 2 * 4096 * 512
    dev = roofline.device("H100", "bf16")
    assert roofline.op_ms(op, dev) == pytest.approx(op.nbytes / (3350e9 * 0.8) * 1e3)


def test_attention_is_its_causal_flops_at_flash_attention_s_rate():
    """Forward: 4 B T^2 C halved by the mask = 2 x 16 x 256^2 x 512; backward 2.5x."""
    ops = _one_layer()
    fwd, bwd = ops[("attention", "fwd")], ops[("attention.bwd", "bwd")]
    assert fwd.flops == 2 * 16 * 256 ** 2 * 512 and bwd.flops == 2.5 * fwd.flops
    dev = roofline.device("A100", "bf16")
    rate = 312e12 * 0.55 * dict(CAL.sustained)["ampere"]
    assert roofline.op_ms(fwd, dev) == pytest.approx(max(fwd.flops / rate, fwd.nbytes / (2039e9 * 0.8)) * 1e3)


def test_host_time_is_dispatches_and_casts_at_their_costs():
    ops = [op for op in kernels.step_ops(kernels.Shape(1, 512, 256, 256, 16), "bf16", "eager")
           if op.phase == "fwd"]
    layer = [op for op in ops if op.count == 1 and op.name in
             ("qkv", "proj", "mlp.up", "mlp.down", "attention", "layer_norm", "residual_add", "gelu")]
    assert sum(op.dispatches for op in layer) == 10
    assert roofline.host_ms(ops) == pytest.approx((10 + 8) * CAL.host_us / 1e3 + (10 + 3) * CAL.cast_us / 1e3)


def test_a_phase_is_the_p_norm_of_host_and_device_time():
    assert roofline.combine(3.0, 4.0) == pytest.approx((27 + 64) ** (1 / 3))
    assert roofline.combine(10.0, 0.1) == pytest.approx(10.0, rel=1e-5)


# --- the whole model ---------------------------------------------------------------------

def test_regime_switches_from_launch_to_compute_bound_as_the_batch_grows():
    regimes = [devices.phase_times("H100", _work(batch=b)).regime for b in (1, 4, 16, 64, 256)]
    assert regimes[0] == "launch-bound" and regimes[-1] == "compute-bound"
    assert regimes == sorted(regimes, key=lambda r: r == "compute-bound")  # one switch
    launch = devices.phase_times("H100", _work(batch=1))
    assert launch.launch_ms_range[0] < launch.compute_ms < launch.launch_ms_range[1] * 1.05


def test_launch_bound_times_are_the_same_on_every_gpu_compute_bound_ones_are_not():
    tiny = [devices.phase_times(d, _work(layers=4, embd=128, batch=2, seq=64)).compute_ms
            for d in ("A100", "H100", "B200")]
    assert max(tiny) / min(tiny) < 1.01
    big = [devices.phase_times(d, _work(layers=12, embd=768, batch=64, seq=1024)).compute_ms
           for d in ("A100", "H100", "B200")]
    assert big[0] > 1.5 * big[1] > 1.5 * 1.2 * big[2]


def test_overrides_and_speed():
    work = _work(layers=12, embd=768, batch=64, seq=1024)
    base = devices.phase_times("H100", work)
    low = devices.phase_times("H100", work, efficiency=0.2)  # the matmuls' share: 0.503 -> 0.2
    assert roofline.device("H100", "bf16", 0.2).gemm_efficiency == 0.2
    assert 1.5 * base.compute_ms < low.compute_ms < 0.503 / 0.2 * base.compute_ms
    floor = devices.phase_times("H100", _work(layers=4, embd=128, batch=2, seq=64), floor=30.0)
    assert floor.compute_ms == pytest.approx(30.0, rel=0.01) and floor.bwd_ms > floor.fwd_ms
    slow = devices.phase_times("H100", work, speed=0.5)
    assert slow.compute_ms == pytest.approx(2 * base.compute_ms)


def test_optimizer_is_memory_bound_above_its_floor():
    assert devices.phase_times("H100", _work()).opt_ms == CAL.opt_floor_ms
    big = devices.phase_times("A100-40GB", devices.Workload(1e9, 1024, 1, 1_000_000_000, "bf16",
                                                            512, 1024, 256))
    assert big.opt_ms == pytest.approx(1e9 * 28 / (1555e9 * 0.8) * 1e3)


def test_every_catalog_device_has_cited_efficiencies():
    for key in hardware.CATALOG:
        eff = roofline.EFFICIENCY[key]
        assert eff.source and 0 < eff.gemm <= 1 and 0 < eff.attention <= 1
        assert hardware.CATALOG[key].sms > 0


# --- calibration: the constants are their fit, and the must-show points pass ---------------

def test_the_constants_in_code_are_what_the_calibration_rows_give():
    fitted = device_grid.fit(device_grid.load(sorted(DATA.glob("*.json"))))
    assert fitted.host_us == pytest.approx(CAL.host_us, abs=0.15)
    assert fitted.host_us_range == pytest.approx(CAL.host_us_range, abs=0.15)
    assert fitted.cast_us == pytest.approx(CAL.cast_us, abs=0.15)
    assert fitted.fp32_gemm == pytest.approx(CAL.fp32_gemm, abs=0.002)
    assert dict(fitted.sustained) == pytest.approx(dict(CAL.sustained), abs=0.002)


def test_every_calibration_and_checking_point_passes():
    """Compute-bound points within 10%, launch-bound ones inside their runs' range +- 10%, the
    llm.c A100 / H100 step ratio within 10% of 2.14x, MPT-1B (fused) within 10% on H100."""
    points = device_grid.load(sorted(DATA.glob("*.json")))
    results = [device_grid.error(p) for p in points]
    assert all(r["passes"] for r in results if r["role"] != "ratio"), results
    assert abs(device_grid.ratio(points)["error"]) <= 0.10
    mpt = [r for r in results if "24x2048" in r["point"] and r["point"].startswith("H100")]
    assert len(mpt) == 1 and abs(mpt[0]["error"]) <= 0.10


# --- per rank, config, CLI ---------------------------------------------------------------

def test_auto_precision_is_bf16_unless_a_device_lacks_it():
    assert devices.fleet_precision(["H100", "A100"], "auto") == "bf16"
    assert devices.fleet_precision(["H100", "V100"], "auto") == "fp16"
    assert devices.fleet_precision(["H100"], "tf32") == "tf32"


def test_stack_is_eager_for_the_trained_model_fused_for_a_workload_and_in_predict():
    from bench.predict import as_fleet_job

    assert device_times.stack(_cfg()) == "eager"
    assert device_times.stack(_cfg("experiment=remedies")) == "fused"
    assert device_times.stack(as_fleet_job(_cfg())) == "fused"
    assert device_times.stack(as_fleet_job(_cfg("emulation.stack=eager"))) == "eager"
    assert device_times.workload(_cfg("emulation.stack=fused"), own=True).stack == "eager"


def test_rank_times_follow_groups_and_their_overrides():
    cfg = _cfg("cluster.groups=[{device:H100,count:2,site:a,speed:0.5},{device:B200,count:1,site:b,"
               "floor_ms:3}]")
    times = device_times.rank_times(cfg)
    alone = devices.phase_times("H100", device_times.workload(cfg))
    assert len(times) == 3 and times[0] == times[1]
    assert times[0].compute_ms == pytest.approx(2 * alone.compute_ms)
    assert times[2].compute_ms == pytest.approx(3.0, rel=0.01)
    assert all(t.stack == "eager" for t in times)


def test_precision_without_a_peak_is_rejected_with_the_fix():
    with pytest.raises(ConfigError, match="no bf16"):
        _cfg("cluster.groups=[{device:V100,count:2}]", "emulation.precision=bf16")


@pytest.mark.parametrize("override, key", [("emulation.time_scale=0.5", "emulation.time_scale"),
                                           ("emulation.reference_scale=0", "emulation.reference_scale"),
                                           ("cluster.groups.0.efficiency=1.5", "efficiency"),
                                           ("emulation.time=wall", "emulation.time"),
                                           ("emulation.stack=compiled", "emulation.stack"),
                                           ("emulation.profile=/nonexistent", "emulation.profile")])
def test_bad_emulation_settings_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        _cfg(override)
    assert key in str(err.value)


def test_devices_command_prints_every_catalog_device(capsys):
    import json

    from bench.cli import main

    assert main(["devices", "--json", "experiment=none", "model=small", "train.micro_batch=64", "train.seq_len=1024"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["device"]: r for r in out["devices"]}
    assert set(rows) == set(hardware.CATALOG) and out["stack"] == "eager"
    h200 = rows["H200"]
    assert h200["regime"] == "compute-bound" and 0.2 < h200["mfu"] < 0.3  # measured: 26%
    assert "error" in rows["V100"]  # no bf16
    assert main(["devices", "emulation.stack=nope"]) == 2


def test_records_to_device_time_scale_every_time_and_nothing_else():
    rec = {"step": 3, "rank": 1, "warmup": False, "fwd_ms": 40.0, "t_start_s": 8.0, "tokens": 128,
           "loss": 2.0, "bucket_bytes": [100]}
    (dev,) = timebase.to_device([rec], 4.0)
    assert dev == {**rec, "fwd_ms": 10.0, "t_start_s": 2.0}
    assert rec["fwd_ms"] == 40.0  # the input is not touched


def test_no_precision_is_nan():
    assert all(math.isfinite(devices.phase_times(d, _work()).compute_ms)
               for d in hardware.CATALOG if d != "V100")


def test_the_grid_timer_writes_rows_the_model_reads(tmp_path):
    """scripts/time_grid.py on CPU (the GPU step's smoke test): one tiny configuration, timed,
    written in the grid format, read back as a point with its steps' spread."""
    import subprocess
    import sys

    out = tmp_path / "grid.json"
    proc = subprocess.run([sys.executable, "scripts/time_grid.py", "--out", str(out), "--device",
                           "cpu", "--quick", "--steps", "2", "--warmup", "1"],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    (point,) = device_grid.load([out])
    row = point.row
    assert row["model"] == {"n_layer": 4, "n_head": 4, "n_embd": 128, "vocab": 256}
    assert all(row[k] > 0 for k in ("fwd_ms", "bwd_ms", "opt_ms")) and row["n_runs"] == 2
    lo, hi = row["compute_ms_range"]
    assert 0 < lo <= hi and point.measured == [row["fwd_ms"] + row["bwd_ms"], lo, hi]
