"""Multi-node torchrun for real: two hosts (network namespaces joined by a veth pair, each with
its own host name), one launch/torchrun_multinode.sh agent in each, c10d rendezvous across the
link. And the kernel-shaped link of emulation.network=kernel: tc tbf, measured."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import read_json
from netns_hosts import two_hosts  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]
RUN = ["experiment=none", "train.device=cpu", "logger=none", "train.steps=12", "train.warmup_steps=2",
       "train.micro_batch=2", "train.seq_len=32"]
PORT = 29500  # each namespace has its own ports: no clash with runs outside

# A bulk TCP transfer between the hosts, timed at the receiver from first byte to last.
RECEIVE = """
import json, socket, sys, time
srv = socket.create_server((sys.argv[1], int(sys.argv[2])))
conn, _ = srv.accept()
total, first = 0, None
while chunk := conn.recv(1 << 20):
    first = first or time.monotonic()
    total += len(chunk)
print(json.dumps({"bytes": total, "seconds": time.monotonic() - first}))
"""
SEND = """
import socket, sys, time
for _ in range(100):  # the receiver may not listen yet
    try:
        conn = socket.create_connection((sys.argv[1], int(sys.argv[2])))
        break
    except ConnectionRefusedError:
        time.sleep(0.05)
conn.sendall(bytes(int(sys.argv[3])))
conn.close()
"""


def _env() -> dict:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                PYTHONUNBUFFERED="1")


def _measure_gbps(hosts, nbytes: int, port: int) -> float:
    """Payload rate of one TCP stream from host a to host b, in Gb/s."""
    recv = subprocess.Popen(hosts.cmd("b", [sys.executable, "-c", RECEIVE, hosts.addr("b"),
                                            str(port)]), stdout=subprocess.PIPE, text=True)
    subprocess.run(hosts.cmd("a", [sys.executable, "-c", SEND, hosts.addr("b"), str(port),
                                   str(nbytes)]), check=True, timeout=60)
    out, _ = recv.communicate(timeout=60)
    got = json.loads(out)
    assert got["bytes"] == nbytes
    return got["bytes"] * 8 / got["seconds"] / 1e9


@pytest.mark.slow
def test_tbf_shapes_the_link_to_the_configured_rate(two_hosts):
    """kernel_link shapes host a's egress to network.inter_site.bandwidth_gbps, as the launcher
    does with SHAPE_DEV; a bulk transfer across the link then runs at that rate (TCP payload,
    about 95% of tbf's wire rate at MTU 1500), where the bare veth runs far faster."""
    gbps = 0.1  # well under what the bare veth does even on a loaded machine (0.6-5 Gb/s here)
    bare = _measure_gbps(two_hosts, 10_000_000, 5001)
    subprocess.run(two_hosts.cmd("a", [sys.executable, "-m", "bench.emulate.kernel_link", "--dev",
                                       two_hosts.dev("a"), "emulation.network=kernel",
                                       "emulation.compute=off",
                                       f"network.inter_site.bandwidth_gbps={gbps}"]),
                   check=True, env=_env(), timeout=60)
    shaped = _measure_gbps(two_hosts, 10_000_000, 5002)  # 0.8 s at the rate
    print(f"bare veth {bare:.3f} Gb/s; shaped {shaped:.4f} Gb/s, configured {gbps} Gb/s "
          f"({shaped / gbps - 1:+.1%})")
    assert bare > 2 * gbps, "the bare link is too slow here to tell shaping from the link"
    assert abs(shaped / gbps - 1) < 0.10


def _start_agents(hosts, run_id: str, overrides: list[str], extra_env=None) -> list:
    env = dict(_env(), HEAD=hosts.ns("a"), NNODES="2", NPROC="2", RUN_ID=run_id,
               PORT=str(PORT), **(extra_env or {}))
    agents = []
    for side in "ab":
        side_env = dict(env, **({"SHAPE_DEV": hosts.dev(side)} if "SHAPE_DEV" in env else {}))
        agents.append(subprocess.Popen(
            hosts.cmd(side, ["launch/torchrun_multinode.sh", *overrides]), cwd=REPO,
            env=side_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return agents


def _wait(agents, timeout: float = 300) -> list[str]:
    """Both agents' output; each must exit 0. The timeout is generous: on 2 shared cores under
    load a 4-rank run took 140 s instead of 45."""
    deadline, logs = time.monotonic() + timeout, []
    for agent in agents:
        out, _ = agent.communicate(timeout=max(1.0, deadline - time.monotonic()))
        logs.append(out)
        assert agent.returncode == 0, "\n".join(logs)[-4000:]
    return logs


@pytest.mark.slow
def test_four_ranks_on_two_hosts_rendezvous_and_record_both(two_hosts, tmp_path):
    """mixed4 (sites a and b, 2 ranks each) on two hosts: one run directory, written by rank 0,
    that names both hosts, the host of every rank, and a clock offset measured to each."""
    out = tmp_path / "runs"
    _wait(_start_agents(two_hosts, "two-hosts", ["cluster=mixed4", *RUN, f"out_root={out}"]))
    run_dir = out / "two-hosts"
    meta, summary = read_json(run_dir / "metadata.json"), read_json(run_dir / "summary.json")
    assert summary["status"] == "ok" and summary["world_size"] == 4
    assert meta["hosts"] == sorted([two_hosts.ns("a"), two_hosts.ns("b")])
    per_host = {h: [r["rank"] for r in meta["ranks"] if r["host"] == h] for h in meta["hosts"]}
    assert sorted(len(ranks) for ranks in per_host.values()) == [2, 2]
    offsets = {o["rank"]: o for o in meta["clock_offsets"]}
    assert sorted(offsets) == [0, 1, 2, 3]
    # One kernel, one monotonic clock: the offsets measured across the link are ~0 within
    # their own uncertainty (half the best round trip), which is positive for every peer.
    for rank in (1, 2, 3):
        assert 0 < offsets[rank]["uncertainty_s"] < 0.05
        assert abs(offsets[rank]["offset_s"]) <= offsets[rank]["uncertainty_s"] + 0.002


@pytest.mark.slow
def test_kernel_mode_shapes_the_link_and_injects_only_latency(two_hosts, tmp_path):
    """emulation.network=kernel across two hosts: each agent shapes its inter-site interface
    (SHAPE_DEV), the gradients cross the shaped link, the measured exchange pays the kernel's
    bandwidth, and the software injects the latency alone (bandwidth is not counted twice)."""
    gbps, out = 0.5, tmp_path / "runs"
    overrides = ["cluster=mixed4", *RUN, f"out_root={out}", "emulation.network=kernel",
                 "emulation.compute=off", f"network.inter_site.bandwidth_gbps={gbps}",
                 "network.inter_site.latency_ms=1", "network.inter_site.jitter_ms=0"]
    logs = _wait(_start_agents(two_hosts, "kernel", overrides, {"SHAPE_DEV": "1"}))
    assert "emulation.network=kernel, but" not in "".join(logs)  # no "unshaped" warning
    summary = read_json(out / "kernel" / "summary.json")
    sent = [_tbf_sent_bytes(two_hosts, side) for side in "ab"]
    wire_ms = summary["inter_site_bytes_per_step"] * 8 / (gbps * 1e9) * 1e3
    transfer = max(r["transfer_ms_p50"] for r in summary["ranks"])
    print(f"tbf sent {sent} B; bandwidth term {wire_ms:.1f} ms/step; exposed transfer p50 "
          f"{transfer:.1f} ms; injected {summary.get('injected_ms_p50')}")
    assert summary["status"] == "ok"
    assert summary["emulation"]["inter_site_bandwidth_by"] == "kernel (tbf)"
    # rank 0 found its host's inter-site interface shaped to the configured rate (else: a warning)
    found = summary["emulation"]["kernel_tbf"]["tbf_on_this_host"]
    assert len(found) == 1 and set(found) <= {two_hosts.dev("a"), two_hosts.dev("b")}
    assert list(found.values()) == [pytest.approx(gbps)]
    assert all(s >= 12 * summary["inter_site_bytes_per_step"] for s in sent)
    assert transfer >= 0.8 * wire_ms  # the kernel's bandwidth, measured in the exchange
    assert 0 < summary["injected_ms_p50"] < 0.1 * wire_ms  # latency only: no bandwidth term


def _tbf_sent_bytes(hosts, side: str) -> int:
    """Bytes tbf passed on that host's inter-site interface (tc -s -j qdisc)."""
    proc = subprocess.run(["ip", "netns", "exec", hosts.ns(side), "tc", "-s", "-j", "qdisc",
                           "show", "dev", hosts.dev(side)], capture_output=True, text=True,
                          check=True)
    tbf = [q for q in json.loads(proc.stdout) if q["kind"] == "tbf"]
    assert tbf, f"no tbf on {hosts.dev(side)}: {proc.stdout}"
    return tbf[0]["bytes"]
