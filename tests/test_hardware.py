"""The GPU catalog: required devices, aliases, peaks, unknowns, driver names."""
from __future__ import annotations

import pytest

from bench import hardware
from bench.hardware import CATALOG, canonical_name, lookup, match_driver_name

REQUIRED = ["V100", "A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H200", "B200", "GB200",
            "L40S", "MI300X"]


def test_required_devices_present_with_sane_figures():
    for name in REQUIRED:
        spec = CATALOG[name]
        assert spec.name == name
        assert spec.fp16_tflops > spec.fp32_tflops > 0
        assert spec.mem_bw_gbs > 0 and spec.mem_gb > 0
        if spec.tf32_tflops is not None:
            assert spec.fp32_tflops < spec.tf32_tflops < spec.fp16_tflops


@pytest.mark.parametrize("alias, key", [("A100", "A100-80GB"), ("H100", "H100-SXM"),
                                        ("h100", "H100-SXM"), ("a100", "A100-80GB"),
                                        ("H100-SXM5", "H100-SXM"), (" B200 ", "B200"),
                                        ("H200-SXM", "H200"), ("mi300x", "MI300X")])
def test_aliases_resolve(alias, key):
    assert canonical_name(alias) == key
    assert lookup(alias) is CATALOG[key]


def test_every_known_name_resolves():
    names = hardware.known_names()
    assert set(REQUIRED) <= set(names)
    for name in names:
        assert canonical_name(name) in CATALOG


def test_bf16_is_native_except_on_v100():
    for spec in CATALOG.values():
        assert (spec.bf16_tflops is not None) == spec.bf16_native
    v100 = CATALOG["V100"]
    assert not v100.bf16_native and v100.peak_tflops("bf16") is None
    assert v100.peak_tflops("fp16") == 125.0
    assert CATALOG["B200"].peak_tflops("bf16") > CATALOG["H100-SXM"].peak_tflops("bf16") \
        > CATALOG["A100-80GB"].peak_tflops("bf16")


def test_peak_by_dtype():
    h100 = CATALOG["H100-SXM"]
    assert (h100.peak_tflops("bf16"), h100.peak_tflops("fp16"), h100.peak_tflops("tf32"),
            h100.peak_tflops("fp32")) == (989.0, 989.0, 494.0, 67.0)
    assert h100.peak_tflops("int8") is None


@pytest.mark.parametrize("name", ["Z100", "H300", "", "   ", "RTX 4090"])
def test_unknown_is_none(name):
    assert canonical_name(name) is None
    assert lookup(name) is None


def test_lookup_none():
    assert lookup(None) is None


@pytest.mark.parametrize("driver, key", [
    ("NVIDIA H100 80GB HBM3", "H100-SXM"),
    ("NVIDIA H100 PCIe", "H100-PCIe"),
    ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
    ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
    ("NVIDIA A100 80GB PCIe", "A100-80GB"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA B200", "B200"),
    ("NVIDIA GB200", "GB200"),
    ("Tesla V100-SXM2-32GB", "V100"),
    ("NVIDIA L40S", "L40S"),
    ("AMD Instinct MI300X", "MI300X"),
])
def test_driver_name_matching(driver, key):
    assert match_driver_name(driver) == key


@pytest.mark.parametrize("driver", ["NVIDIA GeForce RTX 4090", "Tesla T4", "Intel Xeon"])
def test_unknown_driver_name_is_none(driver):
    assert match_driver_name(driver) is None


def test_detect_cpu_has_no_catalog_entry():
    found = hardware.detect_local_device("cpu")
    assert found["type"] == "cpu" and found["catalog"] is None
