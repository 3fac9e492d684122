"""Two "hosts" for multi-node tests: network namespaces joined by a veth pair
(scripts/netns_pair.sh), each with a host name of its own (a UTS namespace per command), so that
torchrun agents in them rendezvous over a real link, as on two machines.

    from netns_hosts import two_hosts  # noqa: F401 (the fixture)

    def test_x(two_hosts):
        subprocess.run(two_hosts.cmd("a", ["hostname"]))   # prints the first host's name
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "netns_pair.sh"


def missing_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces and tc need root"
    missing = [t for t in ("ip", "tc", "unshare") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} missing: apt-get install iproute2 util-linux"
    return None


@dataclass
class TwoHosts:
    prefix: str
    net: int

    def ns(self, side: str) -> str:
        return f"{self.prefix}{side}"  # also the host's name: netns_pair.sh resolves it in both

    def addr(self, side: str) -> str:
        return f"10.231.{self.net}.{1 if side == 'a' else 2}"

    def dev(self, side: str) -> str:
        return f"{self.prefix}-{side}"

    def cmd(self, side: str, argv: list[str]) -> list[str]:
        """argv run on that host: in its network namespace, under its own host name."""
        return ["ip", "netns", "exec", self.ns(side), "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', self.ns(side), *argv]

    def kill_leftovers(self) -> None:
        """Whatever still runs in the namespaces (a test that failed halfway): by pid."""
        for side in "ab":
            pids = subprocess.run(["ip", "netns", "pids", self.ns(side)], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture
def two_hosts():
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    hosts = TwoHosts(prefix=f"hb{os.getpid() % 100000}", net=os.getpid() % 250 + 1)
    subprocess.run([str(SCRIPT), "down", hosts.prefix], check=False)
    subprocess.run([str(SCRIPT), "up", hosts.prefix, str(hosts.net)], check=True, timeout=30)
    try:
        yield hosts
    finally:
        hosts.kill_leftovers()
        subprocess.run([str(SCRIPT), "down", hosts.prefix], check=False, timeout=30)
