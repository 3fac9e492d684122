"""Emulation of a device mix (compute pacing) and of slow links (delay injection).
The trainer sees only a Pacer and a Link; everything emulation-specific lives here."""
from __future__ import annotations

import numpy as np

from bench import config as config_mod
from bench.emulate import compute, network
from bench.trainer import NoLink, NoPacing

# A rank whose real compute overran its pacing target in more than this share of measured
# steps did not run at its emulated speed: say so, with the fix.
OVERRUN_WARN_SHARE = 0.05


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
    """Per-rank pacing overruns (measured steps) and what was configured."""
    measured = [r for r in records if not r["warmup"]]
    overruns = []
    for info in ranks:
        mine = [r.get("overrun_ms", 0.0) for r in measured if r["rank"] == info["rank"]]
        late = [ms for ms in mine if ms > 0.5]  # sub-0.5 ms is sleep granularity, not overrun
        overruns.append({"rank": info["rank"], "steps_overrun": len(late),
                         "share": len(late) / len(mine) if mine else 0.0,
                         "overrun_ms_p50": float(np.median(late)) if late else 0.0})
    return {**pacer.describe(), **link.describe(), "overruns": overruns}


def warnings(summary: dict) -> list[str]:
    lines = []
    for row in summary.get("emulation", {}).get("overruns", []):
        if row["share"] > OVERRUN_WARN_SHARE:
            lines.append(
                f"rank {row['rank']}: real compute overran its pacing target in "
                f"{row['share']:.0%} of steps (median {row['overrun_ms_p50']:.1f} ms over), so it "
                "ran slower than the device it emulates. Fix: fewer ranks on this machine, a "
                "smaller model or batch, or a slower reference (emulation.reference_scale=1.5).")
    return lines
