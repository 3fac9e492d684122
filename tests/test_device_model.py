"""The device time model (bench.costs.devices) and its use per rank (bench.costs.device_times), against
arithmetic done again here and the measurements the defaults cite."""
from __future__ import annotations

import pytest

from bench import config as config_mod
from bench import hardware
from bench.config import ConfigError
from bench.costs import device_times, devices
from bench.rank.model import build_model
from bench.results import timebase


def _cfg(*overrides):
    return config_mod.compose(["logger=none", *overrides])


@pytest.mark.parametrize("dims", [(256, 64, 4, 128), (256, 256, 8, 512), (97, 33, 2, 48)])
def test_parameter_and_flop_counts_match_the_real_model(dims):
    vocab, seq, layers, embd = dims
    from omegaconf import OmegaConf

    model = build_model(OmegaConf.create({"n_layer": layers, "n_head": 4, "n_embd": embd}), vocab, seq)
    assert devices.gpt_params(vocab, seq, layers, embd) == model.num_params(non_embedding=False)
    assert devices.gpt_flops_per_token(vocab, seq, layers, embd) == \
        6 * model.num_params() + 6 * layers * seq * embd


def _work(flops_per_token=5.2e6, tokens=128, layers=4, params=830_000, precision="fp32"):
    return devices.Workload(flops_per_token, tokens, layers, params, precision)


def test_tiny_model_on_an_h200_in_fp32_meets_the_measured_floor():
    """Measured: forward 2.1 ms, backward 4.3 ms (tiny, 2 x 64, fp32, one H200)."""
    t = devices.phase_times("H200", _work())
    assert t.regime == "launch-bound"
    assert t.fwd_ms == pytest.approx(2.1, rel=0.05) and t.bwd_ms == pytest.approx(4.3, rel=0.05)


def test_small_model_on_an_h200_in_fp32_meets_the_measurement():
    """Measured: forward 6.6 ms, backward 12.3 ms (small, 16 x 256, fp32, one H200)."""
    vocab, seq, layers, embd = 256, 256, 8, 512
    work = devices.Workload(devices.gpt_flops_per_token(vocab, seq, layers, embd), 16 * seq, layers,
                            devices.gpt_params(vocab, seq, layers, embd), "fp32")
    t = devices.phase_times("H200", work)
    assert t.regime == "compute-bound"
    assert t.fwd_ms == pytest.approx(6.6, rel=0.05) and t.bwd_ms == pytest.approx(12.3, rel=0.06)


def test_compute_bound_phase_is_flops_over_achieved_throughput():
    work = _work(flops_per_token=1e9, tokens=4096, precision="bf16")  # 4.1 TFLOP a step
    t = devices.phase_times("A100", work)
    achieved = 312e12 * 0.60
    assert t.fwd_ms == pytest.approx(work.flops / 3 / achieved * 1e3)
    assert t.bwd_ms == pytest.approx(2 * t.fwd_ms)
    h100 = devices.phase_times("H100", work)
    assert t.compute_ms / h100.compute_ms == pytest.approx(989 * 0.40 / (312 * 0.60))  # ~2.1x


def test_overrides_and_speed():
    work = _work(flops_per_token=1e9, tokens=4096, precision="bf16")
    base = devices.phase_times("H100", work)
    assert devices.phase_times("H100", work, efficiency=0.2).compute_ms == pytest.approx(2 * base.compute_ms)
    floor = devices.phase_times("H100", _work(precision="bf16"), floor=30.0)
    assert floor.fwd_ms == pytest.approx(10.0) and floor.bwd_ms == pytest.approx(20.0)
    slow = devices.phase_times("H100", work, speed=0.5)
    assert slow.compute_ms == pytest.approx(2 * base.compute_ms)


def test_optimizer_is_memory_bound_above_its_floor():
    tiny = devices.phase_times("H100", _work())
    assert tiny.opt_ms == devices.OPT_FLOOR_MS
    big = devices.phase_times("A100-40GB", _work(params=1_000_000_000))
    assert big.opt_ms == pytest.approx(1e9 * 28 / (1555e9 * 0.8) * 1e3)


def test_every_catalog_device_has_a_cited_default():
    for key in hardware.CATALOG:
        assert devices.DEFAULTS[key].source and 0 < devices.DEFAULTS[key].default <= 1


def test_auto_precision_is_bf16_unless_a_device_lacks_it():
    assert devices.fleet_precision(["H100", "A100"], "auto") == "bf16"
    assert devices.fleet_precision(["H100", "V100"], "auto") == "fp16"
    assert devices.fleet_precision(["H100"], "tf32") == "tf32"


def test_rank_times_follow_groups_and_their_overrides():
    cfg = _cfg("cluster.groups=[{device:H100,count:2,site:a,speed:0.5},{device:B200,count:1,site:b,"
               "floor_ms:3}]")
    times = device_times.rank_times(cfg)
    assert len(times) == 3 and times[0] == times[1]
    assert times[0].compute_ms == pytest.approx(2 * 4 * 2.2)  # bf16 floor, 4 layers, at half speed
    assert times[2].compute_ms == pytest.approx(3.0)


def test_precision_without_a_peak_is_rejected_with_the_fix():
    with pytest.raises(ConfigError, match="no bf16"):
        _cfg("cluster.groups=[{device:V100,count:2}]", "emulation.precision=bf16")


@pytest.mark.parametrize("override, key", [("emulation.time_scale=0.5", "emulation.time_scale"),
                                           ("emulation.reference_scale=0", "emulation.reference_scale"),
                                           ("cluster.groups.0.efficiency=1.5", "efficiency"),
                                           ("emulation.time=wall", "emulation.time"),
                                           ("emulation.profile=/nonexistent", "emulation.profile")])
def test_bad_emulation_settings_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        _cfg(override)
    assert key in str(err.value)


def test_records_to_device_time_scale_every_time_and_nothing_else():
    rec = {"step": 3, "rank": 1, "warmup": False, "fwd_ms": 40.0, "t_start_s": 8.0, "tokens": 128,
           "loss": 2.0, "bucket_bytes": [100]}
    (dev,) = timebase.to_device([rec], 4.0)
    assert dev == {**rec, "fwd_ms": 10.0, "t_start_s": 2.0}
    assert rec["fwd_ms"] == 40.0  # the input is not touched
