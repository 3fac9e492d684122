"""One time dilation D for a whole sweep, so that points differ only by what was swept, not
by calibration noise: one calibration job per distinct host load, the largest need over the
paced points, with headroom. Kept in the sweep directory (time_scale.json) for a resumed sweep."""
from __future__ import annotations

from bench.costs import cluster, device_times, placement
from bench.driver.calibrate import calibrate, needed_scale
from bench.results import files
from bench.sweeps.plan import Plan

TIME_SCALE_FILE = "time_scale.json"


def share_time_scale(p: Plan, concurrent: int = 1) -> None:
    """Give every point the same D (emulation.time_scale), so that points differ only by what
    was swept, not by calibration noise. D = headroom x the largest need over all points, from
    one calibration job per distinct host load (world size, model, batch), times the number of
    points that run at once (a launcher that starts them all shares this machine's cores among
    them). Kept in the sweep directory, so that a resumed sweep keeps its D."""
    paced = [i for i, cfg in enumerate(p.configs) if paces(cfg)]
    if not paced or any(p.configs[i].emulation.time_scale is not None for i in paced):
        return  # nothing paced, or the user pinned D
    path = p.sweep_dir / TIME_SCALE_FILE
    doc = files.read_json(path) if path.exists() else _calibrate_sweep(p, paced, concurrent)
    files.write_json_atomic(path, doc)
    for i in paced:
        p.points[i].overrides.append(f"emulation.time_scale={doc['time_scale']!r}")
        p.configs[i].emulation.time_scale = doc["time_scale"]
    p.time_scale = doc["time_scale"]
    print(f"hetbench: sweep {p.sweep_id}: every point runs at time_scale {doc['time_scale']:.2f} "
          f"(emulated device ms = host ms / {doc['time_scale']:.2f})", flush=True)


def paces(cfg, nodes: int = 1) -> bool:
    """Whether this config's ranks are paced where they run: all on this machine, or
    world // nodes of them on each node of a Slurm job."""
    return placement.paced_here(cfg, cluster.world_size(cfg) // nodes)


def _load_key(cfg) -> tuple:
    """Points with the same key load this machine alike: one calibration serves them all. Of a
    strategy only its batch split matters: calibration times forward, backward, optimizer and
    a plain all-reduce, none of which the comm hook touches."""
    m, t = cfg.model, cfg.train
    return (cluster.world_size(cfg), m.n_layer, m.n_head, m.n_embd, t.micro_batch, t.seq_len,
            cluster.vocab_size(cfg), t.threads_per_rank, cfg.emulation.calibration_steps,
            tuple(device_times.micro_batches(cfg)))


def _calibrate_sweep(p: Plan, paced: list[int], concurrent: int) -> dict:
    calibrations, needs = {}, []
    for i in paced:
        cfg, key = p.configs[i], _load_key(p.configs[i])
        if key not in calibrations:
            print(f"hetbench: sweep {p.sweep_id}: timing this machine for "
                  f"{cluster.world_size(cfg)} ranks (calibration {len(calibrations)})", flush=True)
            folder = p.sweep_dir / "calibration" / f"{len(calibrations):02d}"
            calibrations[key] = calibrate(cfg, p.points[i].overrides, folder)
        needs.append(needed_scale(cfg, calibrations[key]) * cfg.emulation.reference_scale
                     * concurrent)
    return {"time_scale": max(1.0, max(needs)), "concurrent_points": concurrent,
            "needed_by_point": dict(zip([p.points[i].name for i in paced], needs)),
            "calibrations": list(calibrations.values())}
