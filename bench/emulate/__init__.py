"""Emulation of a device mix (compute pacing) and of slow links (delay injection), in dilated
time. The trainer sees only a Pacer and a Link; everything emulation-specific lives here.

One factor D (`time_scale`) stretches everything the emulated cluster sees: pacing targets are
D x device time, link delays D x their formula, slow faults D x their ms. Users read device time
(host ms / D). With `emulation.time=host`, links and faults stay in real ms and users read wall
time (D still sets the pacing targets)."""
from __future__ import annotations

import numpy as np

from bench.costs import links, topology
from bench.costs.fleet import Fleet
from bench.costs.links import Link, link_of
from bench.emulate import compute, gpu, network
from bench.emulate.base import NoLink, NoPacing
from bench.results import metrics, timebase

# Pacing holds when a rank's median compute is within this share of its target. Past it, the
# rank ran slower than the device it emulates (an oversubscribed machine): warn, with the fix.
EXCESS_WARN = 0.05
# Host costs that D does not stretch (real Gloo transfer, Python, data) show up in device time
# shrunk by D; past this share of the device step they colour the results: warn.
HOST_SHARE_WARN = 0.10


def build(cfg, env, fleet: Fleet, total_numel: int):
    """(pacer, link) for this rank; no-ops where emulation is off."""
    me = fleet.ranks[env.rank]
    pacer = NoPacing()
    if me.paced:
        if env.device.type == "cuda":  # real GPUs: spin kernels in the stream, real time
            pacer = gpu.GpuPacer(me.times, total_numel, me.device)
        else:
            pacer = compute.Pacer(me.times, total_numel, me.device)
    link = NoLink()
    if cfg.emulation.network != "off":
        intra, inter = software_links(cfg)
        model = links.of_config(cfg, topology.build(cfg, intra=intra, inter=inter))
        # Ideal links still get the emulated exchange on a paced (timeline) rank: it ends at the
        # last hand-over, and the real loopback transfer rides in the slack instead of the step.
        kernel = cfg.emulation.network == "kernel"
        if model.active or getattr(pacer, "timeline", False) or kernel:
            link = network.DelayedLink(model, env.device)
        if kernel:  # what this host's kernel enforces, for the summary and its warning
            from bench.emulate import (
                kernel_link,  # here: `python -m` runs it as a script too
            )
            link.kernel_tbf = {"expected_gbps": float(cfg.network.inter_site.bandwidth_gbps),
                               "tbf_on_this_host": kernel_link.shaped_here()}
    return pacer, link


def software_links(cfg) -> tuple[Link, Link]:
    """(intra, inter) links as the software model injects them: with emulation.network=kernel
    the inter-site link without its bandwidth, which tc tbf enforces (bench.emulate.kernel_link)."""
    intra, inter = link_of(cfg.network.intra_site), link_of(cfg.network.inter_site)
    if cfg.emulation.network == "kernel":
        inter = Link(inter.latency_ms, None, inter.jitter_ms)
    return intra, inter


def calibrate(pacer, link, faults, trainer, cfg) -> float:
    """Agree on D and stretch the emulated world by it; returns the report scale (1 = wall)."""
    if not pacer.active:
        return 1.0
    e = cfg.emulation
    if isinstance(pacer, gpu.GpuPacer):
        scale = pacer.calibrate(trainer, e.calibration_steps)  # real time: D = 1
    else:
        scale = compute.calibrate(pacer, trainer, e.calibration_steps, e.reference_scale,
                                  e.time_scale)
    world_scale = scale if e.time == "device" else 1.0
    link.time_scale = faults.time_scale = world_scale
    trainer.drop_calibration_state()
    return world_scale


def time_base(cfg, pacer) -> str:
    return timebase.DEVICE if pacer.active and cfg.emulation.time == "device" else timebase.WALL


def summary_section(records, ranks, pacer, link, scale: float) -> dict:
    """What was emulated, and per rank how well pacing held over the measured steps. `records`
    are in the reported time base (device ms when dilated)."""
    section = {**pacer.describe(), **link.describe()}
    if pacer.active and pacer.time_scale is not None:
        section["pacing"] = [_pacing_row(records, info, pacer.time_scale / scale, scale)
                             for info in ranks]
        section["host_share"] = host_share(records, ranks, pacer.time_scale / scale)
        lags = [r.get("lag_ms", 0.0) for r in records if not r["warmup"]]
        section["lag_ms_p50"] = float(np.median(lags)) if lags else None
    return section


def _pacing_row(records, info, extra_scale: float, scale: float) -> dict:
    """target_compute_ms in the reported time base: the device's compute time (x D / scale,
    which is 1 in device time and D in host time). `scale` turns reported ms back into host ms."""
    target = info["device_times"]["compute_ms"] * extra_scale
    mine = [r for r in records if r["rank"] == info["rank"] and not r["warmup"]]
    compute_ms = float(np.median([r["fwd_ms"] + r["bwd_ms"] for r in mine])) if mine else None
    late = [r for r in mine if r.get("overrun_ms", 0.0) * scale > 0.5]  # host ms: sleep granularity
    return {"rank": info["rank"], "target_compute_ms": target, "compute_ms_p50": compute_ms,
            "excess": None if compute_ms is None else compute_ms / target - 1.0,
            "steps_overrun_share": len(late) / len(mine) if mine else 0.0}


def host_share(records, ranks, extra_scale: float):
    """Median share of the step that the emulation did not model: T minus the slowest rank's
    compute, the link delay the step waited for (metrics' `exposed`: link time that overlapped
    backward costs nothing) and the modelled optimizer step, over T."""
    opt = max(info["device_times"]["opt_ms"] for info in ranks) * extra_scale
    steps = metrics.complete_steps(records, len(ranks))
    shares = []
    for recs in steps.values():
        v = metrics.step_values(recs)
        compute_max = max(metrics.compute_ms(r) for r in recs)
        shares.append(max(0.0, v["T"] - compute_max - v["exposed"] - opt) / v["T"])
    return float(np.median(shares)) if shares else None


def warnings(summary: dict) -> list[str]:
    emu = summary.get("emulation", {})
    lines = []
    for row in emu.get("pacing", []):
        if row["excess"] is not None and row["excess"] > EXCESS_WARN:
            lines.append(
                f"rank {row['rank']}: median compute {row['compute_ms_p50']:.2f} ms is "
                f"{row['excess']:.1%} over its pacing target {row['target_compute_ms']:.2f} ms "
                f"(real compute overran in {row['steps_overrun_share']:.0%} of steps), so it ran "
                "slower than the device it emulates. Fix: fewer ranks on this machine, a smaller "
                "model or batch, or more headroom (emulation.reference_scale=2.0, or a larger "
                "emulation.time_scale where it is pinned; `hetbench calibrate` prints the need).")
    share = emu.get("host_share")
    if share is not None and share > HOST_SHARE_WARN:
        lines.append(
            f"this machine's own costs (real transfer, optimizer overrun, Python) are {share:.1%} "
            "of the device step, which the emulated cluster would not pay. Fix: more time "
            "dilation (emulation.reference_scale=2.5, or a larger emulation.time_scale where it "
            "is pinned), or fewer ranks on this machine.")
    lines += _pinned_too_small(emu)
    lines += _kernel_unshaped(emu)
    return lines


def _kernel_unshaped(emu: dict) -> list[str]:
    """emulation.network=kernel on a host (rank 0's) whose interfaces lack the configured tbf."""
    tbf = emu.get("kernel_tbf")
    if not tbf:
        return []
    from bench.emulate import kernel_link  # here: `python -m` runs it as a script too

    line = kernel_link.unshaped_warning(tbf["expected_gbps"], tbf["tbf_on_this_host"])
    return [line] if line else []


def _pinned_too_small(emu: dict) -> list[str]:
    """A pinned time_scale (a sweep's, or the user's) below what this machine measured it needs."""
    scale, needs = emu.get("pacing_time_scale"), emu.get("needed_scale_by_rank")
    if not scale or not needs or max(needs) <= scale:
        return []
    return [f"time_scale {scale:.2f} is below the {max(needs):.2f} this machine measured it needs "
            "to keep up, so expect overruns. Fix: emulation.time_scale=null (calibrate), or pin "
            f"at least {max(needs) * 1.25:.2f}."]
