"""train.precision: one choice for the fleet from every rank's capability, the device model's
precision, and the validation that names the fix."""
from __future__ import annotations

import pytest

from bench import config
from bench.config import ConfigError
from bench.costs import device_times
from bench.rank import precision

H100, A100, V100 = (precision.capability("cuda", d) for d in ("H100-SXM", "A100-80GB", "V100"))
CPU = precision.capability("cpu", None)


def test_catalog_says_which_gpus_have_native_bf16():
    assert H100 == {"gpu": True, "bf16": True, "tf32": True}
    assert V100 == {"gpu": True, "bf16": False, "tf32": False}


def test_unknown_gpu_falls_back_to_its_compute_capability():
    assert precision.capability("cuda", None, (9, 0))["bf16"] is True
    assert precision.capability("cuda", None, (7, 5))["bf16"] is False


@pytest.mark.parametrize("fleet, expected", [([H100, A100], "bf16"), ([H100, V100], "fp16"),
                                             ([H100, CPU], "fp32"), ([CPU, CPU], "fp32")])
def test_auto_is_bf16_only_where_every_rank_has_it(fleet, expected):
    assert precision.choose("auto", fleet) == expected


def test_every_rank_reaches_the_same_choice_from_the_same_gathered_list():
    """agree() applies choose() to the all-gathered capabilities: an H100 and a V100 rank both
    settle on fp16, not each on its own best."""
    gathered = [H100, V100]
    mine = [precision.agree("auto", "cuda", name, lambda _cap: gathered)
            for name in ("H100-SXM", "V100")]
    assert mine == ["fp16", "fp16"]


def test_bf16_on_a_fleet_with_a_v100_names_the_rank_and_the_fix():
    with pytest.raises(precision.PrecisionError, match=r"ranks \[1\].*train.precision=auto"):
        precision.choose("bf16", [H100, V100])


def test_explicit_precisions_pass_through_on_capable_gpus():
    assert precision.choose("tf32", [H100, A100]) == "tf32"
    assert precision.choose("fp16", [H100, V100]) == "fp16"


def test_cpu_ranks_compute_fp32_but_the_device_model_times_the_configured_precision():
    cfg = config.compose(["train.precision=fp16"])
    assert precision.choose("fp16", [CPU] * 4) == "fp32"
    assert device_times.precision(cfg) == "fp16"
    assert device_times.workload(cfg).precision == "fp16"


def test_emulation_precision_still_wins_where_set():
    cfg = config.compose(["train.precision=fp16", "emulation.precision=tf32"])
    assert device_times.precision(cfg) == "tf32"


def test_auto_device_model_precision_follows_the_emulated_fleet():
    assert device_times.precision(config.compose([])) == "bf16"  # mixed4: H100, B200, A100
    cfg = config.compose(["cluster.groups=[{device:H100,count:1},{device:V100,count:1}]"])
    assert device_times.precision(cfg) == "fp16"


def test_fp32_on_cpu_is_a_no_op_context_and_plain_backward():
    p = precision.Precision("bf16", "cpu")  # CPU ranks never autocast
    assert p.scaler is None
    with p.autocast():
        pass


@pytest.mark.parametrize("overrides, key", [
    (["train.precision=fp8"], "train.precision"),
    (["cluster.groups=[{device:V100,count:2}]", "train.precision=bf16"], "train.precision"),
    (["train.prefetch=sometimes"], "train.prefetch"),
])
def test_bad_precision_settings_are_refused_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as err:
        config.compose(overrides)
    assert err.value.key == key
