"""A sweep's plan, before anything runs: expand `hetbench run -m` overrides the way Hydra's
basic sweeper does (its grammar, the cartesian product, an experiment's hydra.sweeper.params),
name each point, compose and validate every point (bad input exits 2 before any process starts).

  runs/<sweep_id>/<NNN_key=value,...>/   a full run directory per point, run id <sweep_id>-NNN
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from bench import config as config_mod
from bench.driver.command import new_run_id
from bench.errors import ConfigError


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
    sweep_id = first.sweep_id or new_run_id()
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
