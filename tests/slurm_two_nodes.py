"""A two-node Slurm cluster for tests: two slurmd, each in a network namespace of its own (the
veth pair of tests/netns_hosts.py) under a host name of its own, slurmctld on the first, and
munged; config, state and logs in a temp dir; every daemon stopped on teardown, the namespaces
deleted. Any test can use it:

    from netns_hosts import two_hosts  # noqa: F401 (the fixture it stands on)
    from slurm_two_nodes import slurm_two_nodes  # noqa: F401 (the fixture)

    def test_x(slurm_two_nodes):  # submit from the controller's host, where slurmctld listens
        slurm_two_nodes.run(["sbatch", "--wait", "--nodes=2", ...])

The nodes are <prefix>n1 and <prefix>n2: names ending in digits, so that Slurm writes a job's
node list with brackets (<prefix>n[1-2]), the form multi-node code must parse.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import slurm_local
from netns_hosts import TwoHosts

PARTITION = "two"

CONF = """ClusterName=hetbench-two
SlurmctldHost={n1}({a1})
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={dir}/munge.socket
StateSaveLocation={dir}/state
SlurmdSpoolDir={spool}/%n
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd-%n.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
NodeName={n1} NodeAddr={a1} CPUs={cpus} RealMemory=1024 State=UNKNOWN
NodeName={n2} NodeAddr={a2} CPUs={cpus} RealMemory=1024 State=UNKNOWN
PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def missing_reason() -> str | None:
    """Why two Slurm nodes cannot start here, or None."""
    import netns_hosts

    reason = slurm_local.missing_reason() or netns_hosts.missing_reason() or \
        (None if shutil.which("nsenter") else "nsenter missing: apt-get install util-linux")
    if reason:
        return reason
    probe = subprocess.run(["unshare", "--net", "--mount", "--uts", "true"], capture_output=True,
                           text=True, timeout=30)  # root without CAP_SYS_ADMIN (a container)
    return None if probe.returncode == 0 else \
        f"no network namespaces here (unshare --net: {probe.stderr.strip()})"


@dataclass
class TwoNodeSlurm:
    hosts: TwoHosts
    dir: Path
    env: dict  # to submit with: SLURM_CONF, this venv on PATH (sbatch exports it to the jobs)
    daemons: list = field(default_factory=list)
    # slurmstepd's sockets live in the spool, <node>_<job>.<step> (step 4294967291 for a batch
    # script), under the 108-byte limit of a socket path: so not under pytest's long tmp_path
    spool: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="hbs", dir="/tmp")))

    @property
    def nodes(self) -> list[str]:
        return [f"{self.hosts.prefix}n1", f"{self.hosts.prefix}n2"]

    def on(self, side: str, argv: list[str], name: str | None = None) -> list[str]:
        """argv on host `side` under host name `name` (its node's by default). Not `ip netns
        exec`: that mounts a fresh /sys without /sys/fs/cgroup, and slurmd 22.05 will not start
        without one. So: the network namespace, and a mount and UTS namespace of our own, with
        the namespace's hosts file (both nodes' names) over /etc/hosts."""
        ns = self.hosts.ns(side)
        return ["nsenter", f"--net=/run/netns/{ns}", "unshare", "--mount", "--uts", "sh", "-c",
                'mount --bind "/etc/netns/$1/hosts" /etc/hosts && hostname "$0" && shift && '
                'exec "$@"', name or self.nodes["ab".index(side)], ns, *argv]

    def run(self, argv: list[str], timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
        """argv on the first node (where slurmctld listens: clients reach it there)."""
        kwargs.setdefault("env", self.env)
        return subprocess.run(self.on("a", argv), capture_output=True, text=True,
                              timeout=timeout, **kwargs)

    def job(self, job_id: str) -> dict:
        """`scontrol show job` as {field: value} (kept for MinJobAge, 300 s, after the end)."""
        out = self.run(["scontrol", "-o", "show", "job", job_id], check=True).stdout
        return dict(f.split("=", 1) for f in out.split() if "=" in f)

    def submit(self, args: list[str], **kwargs) -> str:
        """sbatch `args`: the job's id."""
        sub = self.run(["sbatch", "--parsable", *args], **kwargs)
        assert sub.returncode == 0, sub.stdout + sub.stderr
        return sub.stdout.strip().split(";")[0]

    def wait(self, job_id: str, timeout: float) -> dict:
        """The job's record once it has ended. Not `sbatch --wait`: that polls at 2, 10, 42,
        74 s..., which would add up to 32 s to a job of 40 s."""
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["JobState"] in ("PENDING", "CONFIGURING", "RUNNING",
                                                         "COMPLETING"):
            assert time.monotonic() < deadline, f"job {job_id} not done after {timeout} s: {job}"
            time.sleep(0.5)
        return job

    def hostnames(self, nodelist: str) -> list[str]:
        """Slurm's own expansion of a node list."""
        return self.run(["scontrol", "show", "hostnames", nodelist], check=True).stdout.split()

    def start(self) -> None:
        self._write_files()
        self._daemon(["munged", "--foreground", "--force", f"--key-file={self.dir}/munge.key",
                      f"--socket={self.dir}/munge.socket", f"--pid-file={self.dir}/munged.pid",
                      f"--log-file={self.dir}/munged.log", f"--seed-file={self.dir}/munged.seed"])
        conf = str(self.dir / "slurm.conf")
        self._daemon(self.on("a", ["slurmctld", "-D", "-f", conf]), "slurmctld")
        for side, node in zip("ab", self.nodes):
            self._daemon(self.on(side, ["slurmd", "-D", "-N", node, "-f", conf]), f"slurmd-{node}")
        self._wait_idle()

    def _write_files(self) -> None:
        (self.dir / "state").mkdir(parents=True)
        for node in self.nodes:
            (self.spool / node).mkdir()
        (self.dir / "spool").symlink_to(self.spool)  # found beside the logs
        os.chmod(self.dir, 0o700)
        (self.dir / "slurm.conf").write_text(CONF.format(
            dir=self.dir, spool=self.spool, n1=self.nodes[0], n2=self.nodes[1], a1=self.hosts.addr("a"),
            a2=self.hosts.addr("b"), cpus=os.cpu_count(), partition=PARTITION))
        # Both nodes' names resolve on both hosts (torchrun and Gloo look host names up).
        names = "".join(f"{self.hosts.addr(s)} {n}\n" for s, n in zip("ab", self.nodes))
        for side in "ab":
            with open(f"/etc/netns/{self.hosts.ns(side)}/hosts", "a") as f:
                f.write(names)
        subprocess.run(["mungekey", "--create", f"--keyfile={self.dir}/munge.key", "--force"],
                       check=True, timeout=30, capture_output=True)
        os.chmod(self.dir / "munge.key", 0o600)

    def _daemon(self, argv: list[str], name: str | None = None) -> None:
        name = name or argv[0]
        with open(self.dir / f"{name}.out", "w") as out:
            self.daemons.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL, env=self.env))
        if name == "munged":  # the others authenticate through its socket
            _wait_for(lambda: (self.dir / "munge.socket").exists(), 10, "munged's socket")

    def _wait_idle(self, timeout: float = 30) -> None:
        def idle() -> bool:
            out = self.run(["sinfo", "-h", "-N", "-o", "%N %T"]).stdout.split("\n")
            return sorted(line.strip() for line in out if line.strip()) == \
                [f"{n} idle" for n in self.nodes]
        try:
            _wait_for(idle, timeout, "both nodes idle")
        except AssertionError as err:
            tails = {f.name: f.read_text()[-1500:] for f in sorted(self.dir.glob("*.log"))}
            raise AssertionError(f"{err}; logs in {self.dir}: {tails}") from None

    def stop(self) -> None:
        """Jobs first (a slurmstepd must end while its slurmd is there), then the daemons,
        newest first. Whatever is left in the namespaces, two_hosts kills."""
        if len(self.daemons) > 1:  # slurmctld was started
            user = pwd.getpwuid(os.getuid()).pw_name
            try:
                self.run(["scancel", "--full", "--quiet", f"--user={user}"])
                _wait_for(lambda: not self.run(["squeue", "-h"]).stdout.strip(), 10, "no jobs")
            except (AssertionError, subprocess.TimeoutExpired):
                pass  # the daemons stop anyway, and two_hosts kills what they leave
        for proc in reversed(self.daemons):
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(self.spool, ignore_errors=True)


def _wait_for(ready, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {timeout} s: {what}")
        time.sleep(0.25)


@pytest.fixture
def slurm_two_nodes(request, tmp_path):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    hosts = request.getfixturevalue("two_hosts")  # after the check: its own skip names less
    state = tmp_path / "slurm2"
    env = dict(os.environ, SLURM_CONF=str(state / "slurm.conf"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cluster = TwoNodeSlurm(hosts, state, env)
    try:
        cluster.start()
        yield cluster
    finally:  # also after a failed start: no daemon outlives the test
        cluster.stop()
