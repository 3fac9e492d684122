"""emulation.network=kernel without processes: the tc command, the validation that keeps the
kernel's bandwidth in real time, and the software model left with latency and jitter only.
(tests/test_multinode.py shapes a real link and measures it.)"""
from __future__ import annotations

import pytest

from bench import cli
from bench import config as config_mod
from bench.costs import cluster
from bench.costs.links import LinkModel
from bench.emulate import kernel_link, software_links
from bench.emulate import warnings as emulate_warnings

KERNEL = ["emulation.network=kernel", "emulation.compute=off"]


def test_tbf_command_rate_and_bucket():
    cmd = kernel_link.tbf_command("eth1", 0.2)
    assert cmd[:7] == ["tc", "qdisc", "replace", "dev", "eth1", "root", "tbf"]
    args = dict(zip(cmd[7::2], cmd[8::2]))
    assert args["rate"] == "200000000bit"
    assert int(args["burst"]) == kernel_link.MIN_BURST  # 2 ms at 0.2 Gb/s is under the floor
    assert int(kernel_link.tbf_command("eth1", 100)[10]) == 25_000_000  # 2 ms at 100 Gb/s
    with pytest.raises(ValueError, match="positive"):
        kernel_link.tbf_command("eth1", 0)


def test_kernel_mode_drops_only_the_inter_site_bandwidth_from_the_software_model():
    cfg = config_mod.compose(["cluster=mixed4", "network.inter_site.bandwidth_gbps=1",
                              "network.inter_site.latency_ms=2", "network.inter_site.jitter_ms=0",
                              *KERNEL])
    intra, inter = software_links(cfg)
    assert (inter.latency_ms, inter.bandwidth_gbps) == (2.0, None)
    sites = [r["site"] for r in cluster.rank_table(cfg)]
    nbytes = 4_000_000
    kernel = LinkModel.flat(sites, intra, inter, 0).allreduce_ms(nbytes)
    cfg.emulation.network = "auto"
    full = LinkModel.flat(sites, *software_links(cfg), 0).allreduce_ms(nbytes)
    # Without the uplink's bandwidth the model keeps its latency (the uplink crossed on the way
    # there and back, 2 ms each); the full model adds the 1 Gb/s transfer, which tbf enforces.
    assert 4.0 <= kernel < 7.0
    transfer = full - kernel
    assert transfer >= nbytes * 8 / 1e6  # at least the whole gradient once through 1 Gb/s


@pytest.mark.parametrize("overrides, key, fix", [
    (["emulation.network=kernel"], "emulation.compute", "emulation.compute=off"),
    (["emulation.network=kernel", "emulation.compute=on"], "emulation.compute", "train.device=cuda"),
    ([*KERNEL, "network.inter_site.bandwidth_gbps=null"], "network.inter_site.bandwidth_gbps",
     "emulation.network=auto"),
])
def test_kernel_mode_rejects_what_it_cannot_shape(tmp_path, capsys, overrides, key, fix):
    rc = cli.main(["run", f"out_root={tmp_path}/runs", *overrides])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_BAD_INPUT
    assert key in err and fix in err
    assert not (tmp_path / "runs").exists()


def test_kernel_mode_is_valid_in_real_time():
    cfg = config_mod.compose(KERNEL)
    assert cfg.emulation.network == "kernel"


def test_collectives_refuse_a_kernel_shaped_link(capsys):
    rc = cli.main(["collectives", *KERNEL])
    assert rc == cli.EXIT_BAD_INPUT
    assert "emulation.network=off" in capsys.readouterr().err


TC_JSON = ('[{"kind":"noqueue","dev":"lo","options":{}},'
           '{"kind":"tbf","dev":"eth1","options":{"rate":62500000,"burst":65525,"lat":50000}}]')


def test_tbf_rates_read_from_tc_json():
    assert kernel_link.tbf_rates(TC_JSON) == {"eth1": 0.5}  # tbf's rate is in bytes/s


@pytest.mark.parametrize("expected, found, warned", [
    (0.5, {"eth1": 0.5}, False),
    (0.5, {"eth1": 0.52}, False),           # tc rounds rates; within 10% is the link's shaping
    (0.5, {"eth1": 1.0}, True),             # shaped, but to another rate
    (0.5, {}, True),                         # nothing shaped: the launcher was not told SHAPE_DEV
    (0.5, None, True),                       # tc could not tell
])
def test_a_run_expecting_tbf_warns_when_this_host_lacks_it(expected, found, warned):
    summary = {"emulation": {"kernel_tbf": {"expected_gbps": expected, "tbf_on_this_host": found}}}
    lines = [line for line in emulate_warnings(summary) if "emulation.network=kernel" in line]
    assert bool(lines) == warned
    if found == {}:
        assert "SHAPE_DEV" in lines[0]
