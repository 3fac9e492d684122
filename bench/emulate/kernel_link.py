"""Kernel link shaping (`emulation.network=kernel`): the inter-site link's bandwidth enforced by
Linux's token bucket filter (`tc qdisc ... tbf`) on each host's inter-site interface, instead of
by the software link model.

Every host shapes the egress of the interface its inter-site traffic leaves by to
`network.inter_site.bandwidth_gbps` (`python -m bench.emulate.kernel_link --dev IFACE
[overrides]`, which launch/torchrun_multinode.sh runs when SHAPE_DEV is set); the software model
(bench.emulate.network) then injects the links' latency and jitter only, so that bandwidth is not
counted twice. Latency stays in software: netem, the qdisc that delays packets, is not in every
kernel (not in the one hetbench's tests run on).

tbf counts every byte the interface sends (IP and TCP headers included), so a TCP stream's
payload gets about 95% of the rate at a 1500-byte MTU. The bucket holds `burst` bytes (2 ms at
the rate, at least 64 KiB, as tbf needs at least rate / HZ); a queue longer than LATENCY_MS is
dropped and TCP backs off, as on a congested link. Not modelled: loss, reordering, a
switch shared with other flows.

The kernel shapes wall-clock bytes per second, so it needs a run in real time: compute pacing
dilates time by D, which would make the link look D times faster (validation says so).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Optional

LATENCY_MS = 50  # longest a packet may queue in the bucket before tbf drops it
RATE_TOLERANCE = 0.10  # a tbf this close to the configured rate counts as the link's shaping
MIN_BURST = 64 * 1024


def burst_bytes(gbps: float) -> int:
    """The bucket: 2 ms at the rate, and never under 64 KiB (tbf's floor is rate / HZ)."""
    return max(MIN_BURST, int(gbps * 1e9 / 8 * 0.002))


def tbf_command(dev: str, gbps: float) -> list[str]:
    """`tc` arguments that shape `dev`'s egress to `gbps` (replacing its root qdisc)."""
    if not gbps or gbps <= 0:
        raise ValueError(f"bandwidth {gbps!r} Gb/s: use a positive number")
    return ["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", f"{int(gbps * 1e9)}bit",
            "burst", str(burst_bytes(gbps)), "latency", f"{LATENCY_MS}ms"]


def shape(dev: str, gbps: float) -> None:
    _tc(tbf_command(dev, gbps))


def unshape(dev: str) -> None:
    """Back to the interface's default qdisc."""
    _tc(["tc", "qdisc", "del", "dev", dev, "root"])


def _tc(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()}. Fix: run as root "
                           "(or with CAP_NET_ADMIN) with iproute2 installed, on the interface "
                           "that carries the inter-site traffic")


def tbf_rates(tc_json: str) -> dict[str, float]:
    """{interface: Gb/s} of every tbf qdisc in `tc -j qdisc show` output (tbf's rate: bytes/s)."""
    return {q["dev"]: q["options"]["rate"] * 8 / 1e9 for q in json.loads(tc_json or "[]")
            if q.get("kind") == "tbf"}


def shaped_here() -> Optional[dict[str, float]]:
    """tbf rates on this host's interfaces; None where tc cannot say (not installed, no rights)."""
    try:
        proc = subprocess.run(["tc", "-j", "qdisc", "show"], capture_output=True, text=True,
                              timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return tbf_rates(proc.stdout) if proc.returncode == 0 else None


def unshaped_warning(expected_gbps: float, found: Optional[dict]) -> Optional[str]:
    """The run expects tbf at the configured rate on the inter-site interface: say so when this
    host has none, since the link then runs at whatever the hardware gives."""
    if found is None:
        return (f"emulation.network=kernel, but tc could not list this host's qdiscs, so the "
                f"{expected_gbps:g} Gb/s inter-site shaping is unverified. Fix: install iproute2 "
                "and check with `tc qdisc show`.")
    near = [dev for dev, gbps in found.items()
            if abs(gbps / expected_gbps - 1) <= RATE_TOLERANCE]
    if near:
        return None
    return (f"emulation.network=kernel, but no interface of this host is shaped to "
            f"{expected_gbps:g} Gb/s (tbf found: {found or 'none'}), so the inter-site bandwidth "
            "was not emulated. Fix: SHAPE_DEV=<inter-site interface> launch/torchrun_multinode.sh, "
            "or `python -m bench.emulate.kernel_link --dev IFACE [overrides]` on every host.")


def main(argv=None) -> int:
    """Shape IFACE for the config the overrides compose (nothing unless emulation.network=kernel)."""
    parser = argparse.ArgumentParser(prog="python -m bench.emulate.kernel_link",
                                     description=main.__doc__)
    parser.add_argument("--dev", required=True, help="the interface inter-site traffic leaves by")
    parser.add_argument("--clear", action="store_true", help="remove the shaping instead")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as given to bench.train")
    args = parser.parse_args(argv)
    if args.clear:
        unshape(args.dev)
        return 0
    from bench import config as config_mod

    try:
        cfg = config_mod.compose(args.overrides)
    except config_mod.ConfigError as err:  # the worker would refuse the same config: say so now
        print(f"kernel_link: {err}", file=sys.stderr)
        return 2
    if cfg.emulation.network != "kernel":
        print(f"kernel_link: emulation.network={cfg.emulation.network}: {args.dev} left as it is")
        return 0
    gbps = float(cfg.network.inter_site.bandwidth_gbps)
    shape(args.dev, gbps)
    print(f"kernel_link: {args.dev} egress shaped to {gbps:g} Gb/s (tbf)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
