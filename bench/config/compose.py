"""Hydra compose: configs/ (where it lives), overrides into one validated config, and the
`hydra` node a multirun's overrides give. Hydra's own errors become one ConfigError line."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bench.config.schema import register_schema
from bench.config.validation import validate
from bench.errors import ConfigError


def config_dir() -> Path:
    """configs/ beside the package (a source checkout or an editable install)."""
    env = os.environ.get("HETBENCH_CONFIG_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "configs"
    if not (path / "config.yaml").exists():
        raise ConfigError("HETBENCH_CONFIG_DIR", str(path),
                          "point it at hetbench's configs/ folder, or install with `pip install -e .`")
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
