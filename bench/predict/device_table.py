"""`hetbench devices [overrides] [--json]`: what the device model thinks of the configured model
and batch on every catalog device: forward, backward and optimizer ms, MFU and regime."""
from __future__ import annotations

import json

from bench import hardware
from bench.costs import device_times, devices
from bench.results.console import percent


def rows(cfg) -> list[dict]:
    """One row per catalog device at the configured precision (a device without that precision
    natively gets a row that says so, with null times)."""
    work = device_times.workload(cfg)
    out = []
    for name in sorted(hardware.CATALOG):
        if devices.peak_tflops(name, work.precision) is None:
            out.append({"device": name, "precision": work.precision,
                        "error": f"no {work.precision} peak in the catalog"})
            continue
        t = devices.phase_times(name, work)
        step = t.compute_ms + t.opt_ms
        out.append({"device": name, "precision": work.precision, "stack": t.stack,
                    "fwd_ms": t.fwd_ms, "bwd_ms": t.bwd_ms, "opt_ms": t.opt_ms, "step_ms": step,
                    "mfu": work.flops / (step / 1e3) / (devices.peak_tflops(name, work.precision) * 1e12),
                    "regime": t.regime, "launch_ms_range": t.launch_ms_range})
    return out


def format_table(cfg, table: list[dict]) -> str:
    s = device_times.workload_shape(cfg)
    lines = [f"device model: GPT {s['n_layer']}x{s['n_embd']}, vocab {s['vocab_size']}, "
             f"micro-batch {s['micro_batch']} x seq {s['seq_len']}, "
             f"{table[0]['precision']}, {device_times.stack(cfg)} stack (device ms per step)",
             f"{'device':<10} {'fwd':>8} {'bwd':>8} {'opt':>7} {'step':>8} {'MFU':>7}  regime"]
    for r in table:
        if "error" in r:
            lines.append(f"{r['device']:<10} {r['error']}")
            continue
        regime = r["regime"]
        if regime == "launch-bound" and r["launch_ms_range"]:
            lo, hi = r["launch_ms_range"]
            regime += f" (host {lo:.1f}-{hi:.1f} ms fwd+bwd across hosts)"
        lines.append(f"{r['device']:<10} {r['fwd_ms']:>8.2f} {r['bwd_ms']:>8.2f} {r['opt_ms']:>7.2f} "
                     f"{r['step_ms']:>8.2f} {percent(r['mfu']):>6}  {regime}")
    lines.append("model: bench.costs.devices (docs/device_model.md); emulation.stack=eager|fused, "
                 "emulation.precision=, emulation.workload.*= change what it times")
    return "\n".join(lines)


def main(args) -> int:
    from bench import config as config_mod

    cfg = config_mod.compose(args.overrides)
    table = rows(cfg)
    print(json.dumps({"stack": device_times.stack(cfg), "workload": device_times.workload_shape(cfg),
                      "devices": table}) if args.json else format_table(cfg, table))
    return 0
