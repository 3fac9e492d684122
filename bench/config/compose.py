"""Hydra compose: configs/ (where it lives: bench/configs/, inside the package), overrides into
one validated config, and the `hydra` node a multirun's overrides give. Hydra's own errors become
one ConfigError line."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.config.schema import register_schema
from bench.config.validation import validate
from bench.errors import ConfigError


def config_dir() -> Path:
    """The config folder: HETBENCH_CONFIG_DIR when set, else bench/configs/, which ships inside
    the package (a wheel carries it as package data), so an install outside the checkout finds
    it too; the checkout's top-level configs/ is a link to it. Hydra reads it as a plain folder
    (not pkg://bench.configs) because the sweep planner and the experiment check list its files."""
    env = os.environ.get("HETBENCH_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "configs"
    if not (path / "config.yaml").exists():
        fix = ("point it at a folder holding config.yaml (hetbench's configs/), or unset it"
               if env else "reinstall hetbench: its package data bench/configs/*.yaml is missing")
        raise ConfigError("HETBENCH_CONFIG_DIR" if env else "config_dir", str(path), fix)
    return path


def compose(overrides: list[str]) -> DictConfig:
    """Compose configs/config.yaml with Hydra overrides; raises ConfigError on bad input."""
    _check_experiment(overrides)
    cfg = _compose(overrides, with_hydra=False)
    validate(cfg)
    return cfg


def compose_hydra(overrides: list[str]) -> DictConfig:
    """The `hydra` node these overrides give (launcher, sweeper): `hetbench run -m` checks its
    hydra/... and hydra.* overrides with it before anything starts."""
    return _compose(overrides, with_hydra=True).hydra


def _compose(overrides: list[str], with_hydra: bool) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    register_schema()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides),
                                 return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError("overrides", " ".join(overrides), _hydra_fix(err)) from None


def _check_experiment(overrides: list[str]) -> None:
    """configs/config.yaml lists the experiment as optional (gpt2_small by default; none: none),
    and Hydra skips an optional config that does not exist: a misspelt experiment would run the
    plain config."""
    for o in overrides:
        key, _, name = o.partition("=")
        if key.lstrip("+") == "experiment" and name and "," not in name:
            known = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
            if name not in known:
                raise ConfigError("experiment", name, "no such experiment; known: " + ", ".join(known))


def _hydra_fix(err: Exception) -> str:
    text = str(err).strip().replace("\n\n", "\n")
    if err.__cause__ is not None:
        # Hydra's own line hides the reason ("Error merging override ...") or suggests `+key=...`,
        # which would add a misspelt key: show the first line of the underlying error instead.
        text = text.splitlines()[0] + "\n" + str(err.__cause__).strip().splitlines()[0]
    return text + "\n(see `hetbench run --help` and configs/ for the known groups and keys)"


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)
