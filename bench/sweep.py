"""`hetbench run -m ...` before and after Hydra runs the points: expand the sweep overrides the
way Hydra's basic sweeper does, compose and validate every point, agree on one time dilation D,
and keep the sweep table (bench.multirun runs the points through Hydra's own multirun).

  runs/<sweep_id>/<NNN_key=value,...>/   a full run directory per point
  runs/<sweep_id>/sweep.csv, sweep.json  one row per point, rewritten as each point ends

Rerunning with the same sweep_id skips points whose summary.json says status ok.
"""
from __future__ import annotations

import csv
import io
import itertools
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from bench import config as config_mod
from bench import device_times, driver, sinks
from bench.config import ConfigError

SWEEP_SCHEMA_VERSION = 1
HEADLINE = ("step_ms_p50", "tokens_per_s", "efficiency", "efficiency_overall",
            "slowdown_balance", "slowdown_network",
            "slowdown_total", "final_loss", "strategy", "inter_site_bytes_per_step",
            "ideal_share", "time_base", "time_scale")


@dataclass
class Choice:
    """One override key: the override lines to try (one unless swept) and their values."""
    lines: list[str]
    values: list[str]
    swept: bool


@dataclass
class Point:
    index: int
    overrides: list[str]
    swept: dict = field(default_factory=dict)  # key -> value, swept keys only
    name: str = ""


# ---------------------------------------------------------------------------------------------
# Expansion: Hydra's grammar, BasicSweeper's cartesian product.


def parse_choices(overrides: list[str]) -> dict[str, Choice]:
    """Key -> Choice, in first-seen order; a later override of the same key replaces the earlier
    one in place (as Hydra's BasicSweeper does, so command-line values beat preset params)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        raise ConfigError("overrides", " ".join(overrides), str(err).strip()) from None
    choices: dict[str, Choice] = {}
    for o in parsed:
        key = o.get_key_element()
        if not o.is_sweep_override():
            choices[key] = Choice([o.input_line], [_plain_value(o)], swept=False)
        elif not o.is_discrete_sweep():
            raise ConfigError(key, o.input_line, "interval() needs an optimizing sweeper; list "
                                                 "the values (a,b,c) or use range(start,stop,step)")
        else:
            values = list(o.sweep_string_iterator())
            choices[key] = Choice([f"{key}={v}" for v in values], values, swept=True)
    return choices


def _plain_value(override) -> str:
    return override.get_value_element_as_str() if override.value() is not None else ""


def experiment_params(name: str) -> dict:
    """`hydra.sweeper.params` of configs/experiment/<name>.yaml. Read from the file because the
    driver composes with Hydra's compose API, which drops the `hydra:` node."""
    path = config_mod.config_dir() / "experiment" / f"{name}.yaml"
    if not path.exists():
        return {}  # compose names the unknown experiment with Hydra's own message
    params = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params", default=None)
    return OmegaConf.to_container(params) if params else {}


def expand(overrides: list[str]) -> list[Point]:
    """All points, in Hydra's order. A chosen experiment's sweeper params come first; any key
    also given on the command line takes the command line's values."""
    choices = parse_choices(overrides)
    exp_key = next((k for k in choices if k.lstrip("+") == "experiment"), None)
    if exp_key is None:
        return _number(_product(choices))
    combos = []
    exp = choices[exp_key]
    for line, value in zip(exp.lines, exp.values):
        params = parse_choices([f"{k}={v}" for k, v in experiment_params(value).items()])
        fixed = Choice([line], [value], exp.swept)
        combos += _product({**params, **choices, exp_key: fixed})
    return _number(combos)


def _product(choices: dict[str, Choice]) -> list[Point]:
    keys = list(choices)
    points = []
    for picks in itertools.product(*(range(len(choices[k].lines)) for k in keys)):
        lines = [choices[k].lines[i] for k, i in zip(keys, picks)]
        swept = {k: choices[k].values[i] for k, i in zip(keys, picks) if choices[k].swept}
        points.append(Point(0, lines, swept))
    return points


def _number(points: list[Point]) -> list[Point]:
    for i, point in enumerate(points):
        point.index = i
        point.name = point_name(i, point.swept)
    return points


def point_name(index: int, swept: dict) -> str:
    """`003_latency_ms=5,cluster=b`: last key component, then anything unsafe in a path -> `_`."""
    parts = ",".join(f"{k.lstrip('+~').split('.')[-1]}={v}" for k, v in swept.items())
    safe = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", parts).strip("_")[:80]
    return f"{index:03d}_{safe}" if safe else f"{index:03d}"


# ---------------------------------------------------------------------------------------------
# Validation before anything starts.


@dataclass
class Plan:
    sweep_id: str
    sweep_dir: Path
    points: list[Point]
    configs: list  # composed config per point
    time_scale: Optional[float] = None  # the D every paced point shares (share_time_scale)


def plan(overrides: list[str]) -> Plan:
    """Expand and compose every point; any bad one raises ConfigError before any process starts."""
    if any(o.split("=", 1)[0].lstrip("+") == "run_id" for o in overrides):
        raise ConfigError("run_id", "...", "a sweep names each point's run <sweep_id>-NNN; "
                                           "set sweep_id=<name> instead")
    _check_swept_experiment(overrides)
    points = expand(overrides)
    first = config_mod.compose(points[0].overrides)
    sweep_id = first.sweep_id or driver.new_run_id()
    sweep_dir = Path(first.out_root) / sweep_id
    configs = []
    for point in points:
        point.overrides = _point_overrides(point, sweep_id)
        try:
            configs.append(config_mod.compose(point.overrides))
            config_mod.validate_devices(configs[-1])
        except ConfigError as err:
            fix = f"{err.fix}\n(in sweep point {point.name})"
            raise ConfigError(err.key, err.value, fix) from None
    return Plan(sweep_id, sweep_dir, points, configs)


def _check_swept_experiment(overrides: list[str]) -> None:
    """Hydra's sweeper takes `hydra.sweeper.params` from the config it composed before the sweep,
    which holds no experiment when the experiment itself is swept: such params would be lost."""
    choices = parse_choices(overrides)
    exp = next((c for k, c in choices.items() if k.lstrip("+") == "experiment"), None)
    if exp and exp.swept and any(experiment_params(v) for v in exp.values):
        raise ConfigError("experiment", ",".join(exp.values),
                          "an experiment with its own sweep (hydra.sweeper.params) cannot be "
                          "swept with others; run one `hetbench run -m experiment=<name>` each")


def _point_overrides(point: Point, sweep_id: str) -> list[str]:
    keys = {o.split("=", 1)[0].lstrip("+") for o in point.overrides}
    extra = [f"sweep_id={sweep_id}", f"run_id={run_id_of(sweep_id, point)}"]
    if "logger.wandb.group" not in keys:  # each point's W&B run joins the sweep's group
        extra.append(f"logger.wandb.group={sweep_id}")
    return [o for o in point.overrides if o.split("=", 1)[0].lstrip("+") != "sweep_id"] + extra


def run_id_of(sweep_id: str, point: Point) -> str:
    return f"{sweep_id}-{point.index:03d}"


# ---------------------------------------------------------------------------------------------
# One time dilation for the whole sweep.

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
    doc = sinks.read_json(path) if path.exists() else _calibrate_sweep(p, paced, concurrent)
    sinks.write_json_atomic(path, doc)
    for i in paced:
        p.points[i].overrides.append(f"emulation.time_scale={doc['time_scale']!r}")
        p.configs[i].emulation.time_scale = doc["time_scale"]
    p.time_scale = doc["time_scale"]
    print(f"hetbench: sweep {p.sweep_id}: every point runs at time_scale {doc['time_scale']:.2f} "
          f"(emulated device ms = host ms / {doc['time_scale']:.2f})", flush=True)


def paces(cfg) -> bool:
    """Whether this config's ranks are paced (emulated), as bench.emulate decides on the ranks."""
    import torch

    from bench.emulate import pacing_enabled

    cuda = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
    return pacing_enabled(cfg, "cuda" if cuda else "cpu")


def _load_key(cfg) -> tuple:
    """Points with the same key load this machine alike: one calibration serves them all. Of a
    strategy only its batch split matters: calibration times forward, backward, optimizer and
    a plain all-reduce, none of which the comm hook touches."""
    m, t = cfg.model, cfg.train
    return (config_mod.world_size(cfg), m.n_layer, m.n_head, m.n_embd, t.micro_batch, t.seq_len,
            config_mod.vocab_size(cfg), t.threads_per_rank, cfg.emulation.calibration_steps,
            tuple(device_times.micro_batches(cfg)))


def _calibrate_sweep(p: Plan, paced: list[int], concurrent: int) -> dict:
    calibrations, needs = {}, []
    for i in paced:
        cfg, key = p.configs[i], _load_key(p.configs[i])
        if key not in calibrations:
            print(f"hetbench: sweep {p.sweep_id}: timing this machine for "
                  f"{config_mod.world_size(cfg)} ranks (calibration {len(calibrations)})", flush=True)
            folder = p.sweep_dir / "calibration" / f"{len(calibrations):02d}"
            calibrations[key] = driver.calibrate(cfg, p.points[i].overrides, folder)
        needs.append(driver.needed_scale(cfg, calibrations[key]) * cfg.emulation.reference_scale
                     * concurrent)
    return {"time_scale": max(1.0, max(needs)), "concurrent_points": concurrent,
            "needed_by_point": dict(zip([p.points[i].name for i in paced], needs)),
            "calibrations": list(calibrations.values())}


# ---------------------------------------------------------------------------------------------
# Running: Hydra's multirun (bench.multirun).


def run_sweep(overrides: list[str]) -> int:
    from bench.multirun import run_sweep as run_with_hydra

    return run_with_hydra(overrides)


def finished_ok_row(point: Point, run_id: str, run_dir: Path) -> dict:
    return row_for(point, run_id, run_dir, "ok", None, reused=True)


def not_run(p: Plan, point: Point, reason: str) -> dict:
    row = row_for(point, run_id_of(p.sweep_id, point), p.sweep_dir / point.name, "failed", None,
                  reused=False)
    row["error"] = reason
    return row



def finished_ok(run_dir: Path) -> bool:
    path = run_dir / "summary.json"
    try:
        return path.exists() and sinks.read_json(path).get("status") == "ok"
    except ValueError:  # half a file cannot happen (atomic writes), but a hand-edited one can
        return False


# ---------------------------------------------------------------------------------------------
# sweep.csv and sweep.json.


def row_for(point: Point, run_id: str, run_dir: Path, status: str, elapsed, reused: bool) -> dict:
    summary = _read_summary(run_dir)
    row = {"index": point.index, "point": point.name, "run_id": run_id, "status": status,
           "overrides": " ".join(f"{k}={v}" for k, v in point.swept.items()),
           "swept": dict(point.swept), "elapsed_s": elapsed, "reused": reused,
           "run_dir": point.name}
    row.update(headline(summary))
    if status != "ok":
        row["error"] = summary.get("error") or f"no summary in {run_dir}"
    return row


def _read_summary(run_dir: Path) -> dict:
    try:
        return sinks.read_json(run_dir / "summary.json")
    except (OSError, ValueError):
        return {}


def headline(summary: dict) -> dict:
    step_ms, slowdown = summary.get("step_ms") or {}, summary.get("slowdown") or {}
    return {"step_ms_p50": step_ms.get("p50"), "tokens_per_s": summary.get("tokens_per_s"),
            "efficiency": summary.get("efficiency"),
            "efficiency_overall": summary.get("efficiency_overall"),
            "slowdown_balance": slowdown.get("balance"),
            "slowdown_network": slowdown.get("network"), "slowdown_total": slowdown.get("total"),
            "final_loss": summary.get("final_loss"),
            "strategy": (summary.get("strategy") or {}).get("name"),
            "inter_site_bytes_per_step": summary.get("inter_site_bytes_per_step"),
            "ideal_share": summary.get("ideal_share"),
            "time_base": summary.get("time_base"), "time_scale": summary.get("time_scale")}


def swept_keys(points: list[Point]) -> list[str]:
    return list(dict.fromkeys(k for p in points for k in p.swept))


def write_tables(p: Plan, rows: list[dict]) -> None:
    write_doc(p.sweep_dir, new_doc(p.sweep_id, swept_keys(p.points), len(p.points), p.time_scale,
                                   rows))


def new_doc(sweep_id: str, keys: list[str], total: int, time_scale, rows: list[dict]) -> dict:
    return {"schema_version": SWEEP_SCHEMA_VERSION, "sweep_id": sweep_id, "swept_keys": keys,
            "points_total": total, "time_scale": time_scale,
            "time_base": next((r["time_base"] for r in rows if r.get("time_base")), None),
            "points": rows}


def write_doc(sweep_dir: Path, doc: dict) -> None:
    sinks.write_json_atomic(sweep_dir / "sweep.json", doc)
    _write_text_atomic(sweep_dir / "sweep.csv", _csv_text(doc["points"], doc["swept_keys"]))


def upsert_row(sweep_dir: Path, row: dict) -> dict:
    """Put one point's row into sweep.json / sweep.csv (replacing an older row of the same
    point), under a lock: launchers may end points in parallel processes."""
    import fcntl

    with open(sweep_dir / ".sweep.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        doc = sinks.read_json(sweep_dir / "sweep.json")
        rows = [r for r in doc["points"] if r["index"] != row["index"]] + [row]
        doc["points"] = sorted(rows, key=lambda r: r["index"])
        doc["time_base"] = doc.get("time_base") or row.get("time_base")
        write_doc(sweep_dir, doc)
    return doc


def _csv_text(rows: list[dict], keys: list[str]) -> str:
    columns = ["index", "point", "run_id", "status", "overrides", *keys, *HEADLINE,
               "elapsed_s", "reused", "error"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **row["swept"]})
    return buf.getvalue()


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)
