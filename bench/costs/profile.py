"""A real run directory as the device model (`emulation.profile=runs/<id>`).

A profile is a finished run of the same model, micro-batch and sequence length. For each device
it ran on, its measured per-rank medians (in that run's device milliseconds) replace the model;
every other device keeps the model, scaled per phase by the mean measured/modelled ratio of the
profiled devices (the profile calibrates the model to its stack)."""
from __future__ import annotations

import statistics
from pathlib import Path

from bench import hardware
from bench.costs import devices
from bench.errors import ConfigError
from bench.results import files, rundir, timebase

PROFILE_MATCH = (("model.n_layer",), ("model.n_head",), ("model.n_embd",), ("train.micro_batch",),
                 ("train.seq_len",), ("data.vocab_size",))


def load_profile(path: str, cfg, work: devices.Workload) -> dict:
    """{catalog device: measured PhaseTimes, '_ratios': (fwd, bwd, opt), '_name': run id}."""
    run_dir = Path(path)
    cfg_path, meta_path = run_dir / "config.yaml", run_dir / "metadata.json"
    if not (cfg_path.exists() and meta_path.exists()):
        raise ConfigError("emulation.profile", path, "not a run directory (config.yaml and "
                          "metadata.json missing); point it at a finished `hetbench run` directory")
    from omegaconf import OmegaConf

    _check_same_workload(path, OmegaConf.load(cfg_path), cfg)
    meta = files.read_json(meta_path)
    emu = meta.get("emulation") or {}
    if emu.get("compute") == "on" and timebase.base_of(meta) != timebase.DEVICE:
        raise ConfigError("emulation.profile", path, "that run was paced but reports wall time "
                          "(emulation.time=host); profile a real GPU run or a device-time run")
    theirs = emu.get("precision")
    if theirs and theirs != work.precision:
        raise ConfigError("emulation.profile", path,
                          f"that run computed in {theirs}, this one models {work.precision}; set "
                          f"emulation.precision={theirs} or profile a run at {work.precision}")
    measured = _measured_by_device(run_dir, meta)
    if not measured:
        raise ConfigError("emulation.profile", path, "no rank of that run names a catalog device "
                          "(real or emulated); profile a run on known GPUs")
    name = meta.get("run_id", run_dir.name)
    ratios = _model_ratios(measured, work)
    out = {key: devices.PhaseTimes(*vals, regime="profile", source=f"profile:{name}")
           for key, vals in measured.items()}
    out.update(_ratios=ratios, _name=name)
    return out


def _check_same_workload(path: str, theirs, ours) -> None:
    from omegaconf import OmegaConf

    for (key,) in PROFILE_MATCH:
        a, b = OmegaConf.select(theirs, key), OmegaConf.select(ours, key)
        if a != b:
            raise ConfigError("emulation.profile", path,
                              f"that run used {key}={a}, this one {key}={b}; a profile times one "
                              f"model and batch: set {key}={a} or profile a matching run")


def _measured_by_device(run_dir: Path, meta: dict) -> dict:
    """{catalog device: (fwd_ms, bwd_ms, opt_ms)}: medians over the device's ranks of each
    rank's median over measured steps, in the profile run's device time."""
    records = rundir.device_records(run_dir, meta)
    by_device: dict[str, list] = {}
    for info in meta.get("ranks") or []:
        key = hardware.canonical_name(info.get("emulated_device") or info.get("device") or "")
        mine = [r for r in records if r["rank"] == info["rank"] and not r["warmup"]]
        if key and mine:
            by_device.setdefault(key, []).append(
                tuple(statistics.median(r[k] for r in mine) for k in ("fwd_ms", "bwd_ms", "opt_ms")))
    return {key: tuple(statistics.median(v[i] for v in rows) for i in range(3))
            for key, rows in by_device.items()}


def _model_ratios(measured: dict, work) -> tuple:
    """Mean measured / modelled time per phase over the profiled devices."""
    ratios = []
    for key, vals in measured.items():
        model = devices.phase_times(key, work)
        ratios.append((vals[0] / model.fwd_ms, vals[1] / model.bwd_ms, vals[2] / model.opt_ms))
    return tuple(statistics.fmean(r[i] for r in ratios) for i in range(3))
