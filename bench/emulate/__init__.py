"""Emulation of a device mix (compute pacing) and of slow links (delay injection).
The trainer sees only a Pacer and a Link; everything emulation-specific lives here."""
from __future__ import annotations

import numpy as np

from bench import config as config_mod
from bench.emulate import compute, network
from bench.trainer import NoLink, NoPacing

# Pacing holds when a rank's median compute is within this share of its target. Past it, the
# rank ran slower than the device it emulates (an oversubscribed machine): warn, with the fix.
EXCESS_WARN = 0.05


def pacing_enabled(cfg, device_type: str) -> bool:
    mode = cfg.emulation.compute
    return mode == "on" or (mode == "auto" and device_type == "cpu")


def build(cfg, env, total_numel: int):
    """(pacer, link) for this rank; no-ops where emulation is off."""
    table = config_mod.rank_table(cfg)
    pacer = NoPacing()
    if pacing_enabled(cfg, env.device.type):
        fastest = max(r["speed"] for r in table)
        mine = table[env.rank]
        pacer = compute.Pacer(fastest / mine["speed"], total_numel, mine["device"])
    link = NoLink()
    if cfg.emulation.network != "off":
        model = network.LinkModel([r["site"] for r in table], _link(cfg.network.intra_site),
                                  _link(cfg.network.inter_site), cfg.train.seed)
        if model.active:
            link = network.DelayedLink(model, env.device)
    return pacer, link


def _link(spec) -> network.Link:
    return network.Link(float(spec.latency_ms), spec.bandwidth_gbps and float(spec.bandwidth_gbps),
                        float(spec.jitter_ms))


def calibrate(pacer, trainer, cfg) -> None:
    if pacer.active:
        compute.calibrate(pacer, trainer, cfg.emulation.calibration_steps,
                          cfg.emulation.reference_scale)


def summary_section(records, ranks, pacer, link) -> dict:
    """What was emulated, and per rank how well pacing held over the measured steps."""
    section = {**pacer.describe(), **link.describe()}
    if pacer.active and pacer.ref_fwd_s is not None:
        section["pacing"] = [_pacing_row(records, info, pacer, ranks) for info in ranks]
    return section


def _pacing_row(records, info, pacer, ranks) -> dict:
    fastest = max(r["speed"] for r in ranks)
    target = (pacer.ref_fwd_s + pacer.ref_bwd_s) * 1000.0 * fastest / info["speed"]
    mine = [r for r in records if r["rank"] == info["rank"] and not r["warmup"]]
    compute = float(np.median([r["fwd_ms"] + r["bwd_ms"] for r in mine])) if mine else None
    late = [r for r in mine if r.get("overrun_ms", 0.0) > 0.5]  # under 0.5 ms: sleep granularity
    return {"rank": info["rank"], "target_compute_ms": target, "compute_ms_p50": compute,
            "excess": None if compute is None else compute / target - 1.0,
            "steps_overrun_share": len(late) / len(mine) if mine else 0.0}


def warnings(summary: dict) -> list[str]:
    lines = []
    for row in summary.get("emulation", {}).get("pacing", []):
        if row["excess"] is not None and row["excess"] > EXCESS_WARN:
            lines.append(
                f"rank {row['rank']}: median compute {row['compute_ms_p50']:.1f} ms is "
                f"{row['excess']:.1%} over its pacing target {row['target_compute_ms']:.1f} ms "
                f"(real compute overran in {row['steps_overrun_share']:.0%} of steps), so it ran "
                "slower than the device it emulates. Fix: fewer ranks on this machine, a smaller "
                "model or batch, or a slower reference (emulation.reference_scale=1.5).")
    return lines
