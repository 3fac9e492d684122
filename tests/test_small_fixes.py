"""Small things a newcomer trips on: YAML's on/off, printing the composed config, a launch-bound
MFU, and torchrun told which rank failed."""
from __future__ import annotations

import json

import pytest

from bench import config as config_mod
from bench.cli import main


@pytest.mark.parametrize("written, meant", [("true", "on"), ("false", "off"), ("on", "on")])
def test_yaml_booleans_mean_on_and_off_where_a_key_takes_them(written, meant):
    cfg = config_mod.compose([f"emulation.compute={written}", f"train.prefetch={written}"])
    assert cfg.emulation.compute == meant and cfg.train.prefetch == meant


def test_a_boolean_where_on_off_is_not_a_choice_is_still_refused():
    with pytest.raises(config_mod.ConfigError, match="emulation.lagged_steps"):
        config_mod.compose(["emulation.lagged_steps=true"])


def test_config_prints_the_composed_validated_config(capsys):
    assert main(["config", "cluster=one_a100", "emulation.compute=true"]) == 0
    out = capsys.readouterr().out
    assert "name: one_a100" in out and "compute: 'on'" in out
    assert main(["config", "train.steps=-1"]) == 2
    assert "train.steps" in capsys.readouterr().err


def test_a_failing_rank_writes_torchrun_s_error_file(tmp_path, monkeypatch):
    from bench.rank.main import _tell_torchrun

    path = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(path))
    try:
        raise RuntimeError("rank 2 lost its GPU")
    except RuntimeError as err:
        _tell_torchrun(err)
    assert "rank 2 lost its GPU" in json.loads(path.read_text())["message"]["message"]
    monkeypatch.delenv("TORCHELASTIC_ERROR_FILE")
    _tell_torchrun(RuntimeError("no file asked for: nothing written, nothing raised"))


def test_a_launch_bound_mfu_reads_as_a_number_not_zero():
    from bench.results.console import percent

    assert [percent(v) for v in (None, 0.0, 0.00016, 0.0042, 0.232)] == \
        ["-", "0.00%", "0.016%", "0.42%", "23.2%"]
