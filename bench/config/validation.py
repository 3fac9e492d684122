"""Validation of a composed config: one ConfigError per bad value, naming the key, the value and
the fix, before any process starts."""
from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from bench import hardware
from bench.config import sections
from bench.costs import placement
from bench.costs.cluster import world_size
from bench.errors import ConfigError
from bench.results.outroot import LATEST


def validate(cfg: DictConfig, launched_world_size: Optional[int] = None) -> None:
    try:
        _validate_all(cfg, launched_world_size)
    except OmegaConfBaseException as err:  # a required field left out, a broken ${...}
        key = getattr(err, "full_key", None) or "config"
        value = "???" if isinstance(err, MissingMandatoryValue) else "${...}"
        raise ConfigError(key, value, f"{str(err).splitlines()[0]}; set {key} (see configs/ "
                          "for an example of every key)") from None


def _validate_all(cfg: DictConfig, launched_world_size: Optional[int]) -> None:
    _validate_known_keys(cfg, "")
    _validate_finite(cfg, "")
    _validate_ids(cfg)
    _validate_cluster(cfg, launched_world_size)
    _validate_network(cfg)
    sections.validate_train(cfg)
    sections.validate_choices(cfg)
    sections.validate_faults(cfg)
    sections.validate_emulation(cfg)
    sections.validate_kernel_link(cfg)
    sections.validate_strategy(cfg)
    sections.validate_predict(cfg)


def _validate_known_keys(node: Any, prefix: str) -> None:
    """A key added with `+key=...` that no schema declares is a typo: nothing would read it."""
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _validate_known_keys(item, f"{prefix}[{i}]")
        return
    if not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    known = [f.name for f in fields(schema)] if is_dataclass(schema) else None
    for key in node.keys():
        path = f"{prefix}.{key}" if prefix else str(key)
        if known is not None and key not in known:
            raise ConfigError(path, node[key],
                              "unknown key (misspelt?); known keys here: " + ", ".join(known))
        _validate_known_keys(node[key], path)


def _validate_finite(node: Any, prefix: str) -> None:
    """nan and inf pass every `< 0` test and then break a sleep, a timedelta or a division."""
    if isinstance(node, (DictConfig, ListConfig)):
        items = node.items() if isinstance(node, DictConfig) else enumerate(node)
        for key, _ in items:
            path = (f"{prefix}[{key}]" if isinstance(key, int)
                    else f"{prefix}.{key}" if prefix else str(key))
            if OmegaConf.is_missing(node, key):
                continue  # reported where the field is needed, with its own message
            _validate_finite(node[key], path)
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(prefix, node, "use a finite number (null where the key allows "
                                        "'no limit', e.g. bandwidth_gbps)")


def _validate_ids(cfg: DictConfig) -> None:
    """Ids name folders under out_root: no separators, no escaping it."""
    for key in ("run_id", "sweep_id"):
        value = cfg[key]
        if value is not None and (not str(value).strip() or any(c in str(value) for c in "/\\")
                                  or str(value) in (".", "..")):
            raise ConfigError(key, value, "use a plain folder name (letters, digits, - _ .), "
                                          "no path separators")
        if str(value) == LATEST:  # the run would be written into the run the link names
            raise ConfigError(key, value, f"'{LATEST}' names out_root's link to the newest run; "
                                          "pick another name")


def validate_devices(cfg: DictConfig) -> None:
    """Checks that need torch (the driver calls this before starting torchrun)."""
    if world_size(cfg) > MAX_LOCAL_RANKS:
        arithmetic = " + ".join(str(g.count) for g in cfg.cluster.groups)
        raise ConfigError("cluster.groups", f"{arithmetic} = {world_size(cfg)} ranks",
                          f"`hetbench run` starts every rank on this machine, at most "
                          f"{MAX_LOCAL_RANKS}; use fewer ranks, or launch torchrun on each node "
                          "(`hetbench predict` models large clusters without running them)")
    # `hetbench run` starts every rank here: each needs a GPU of its own (or all emulate).
    placed = placement.of_config(cfg, world_size(cfg))
    if cfg.dist.backend == "nccl" and placed.device != "cuda":
        raise ConfigError("dist.backend", "nccl", "NCCL needs CUDA devices; use dist.backend=gloo "
                          "(or auto) for CPU ranks")


def _validate_cluster(cfg: DictConfig, launched: Optional[int]) -> None:
    groups = cfg.cluster.groups
    if not groups:
        raise ConfigError("cluster.groups", [], "list at least one {device, count, site} group")
    for i, group in enumerate(groups):
        if hardware.canonical_name(group.device) is None:
            raise ConfigError(f"cluster.groups[{i}].device", group.device,
                              "unknown device; known: " + ", ".join(hardware.known_names()))
        if group.count < 1:
            raise ConfigError(f"cluster.groups[{i}].count", group.count, "use a count of 1 or more")
        for key in ("speed", "floor_ms"):
            if group[key] is not None and group[key] <= 0:
                raise ConfigError(f"cluster.groups[{i}].{key}", group[key], "use a positive number or null")
        if group.efficiency is not None and not 0 < group.efficiency <= 1:
            raise ConfigError(f"cluster.groups[{i}].efficiency", group.efficiency,
                              "use achieved / peak FLOP/s, in (0, 1], or null for the default")
    total = world_size(cfg)
    arithmetic = " + ".join(f"{g.count} ({g.device})" for g in groups) + f" = {total}"
    declared = cfg.cluster.world_size
    if declared is not None and declared != total:
        raise ConfigError("cluster.world_size", declared,
                          f"the groups add up to {arithmetic}; make them agree")
    if launched is not None and launched != total:
        raise ConfigError("cluster.groups", arithmetic,
                          f"torchrun started {launched} ranks (WORLD_SIZE); launch with "
                          f"--nproc-per-node/--nnodes giving {total} ranks, or change the groups")


def _validate_network(cfg: DictConfig) -> None:
    for link in ("intra_site", "inter_site"):
        spec = cfg.network[link]
        for key in ("latency_ms", "jitter_ms"):
            if spec[key] < 0:
                raise ConfigError(f"network.{link}.{key}", spec[key], "use 0 or a positive number")
        if spec.bandwidth_gbps is not None and spec.bandwidth_gbps <= 0:
            raise ConfigError(f"network.{link}.bandwidth_gbps", spec.bandwidth_gbps,
                              "use a positive number, or null for no limit")
    _validate_nccl(cfg)


def _validate_nccl(cfg: DictConfig) -> None:
    """network.nccl.* and network.node.* name things NCCL's model knows."""
    from bench.costs import nccl

    choices = {"network.nccl.algo": ("auto", *nccl.ALGOS), "network.nccl.proto": ("auto", *nccl.PROTOS),
               "network.node.generation": (None, *nccl.GENERATIONS),
               "network.node.interconnect": (None, "nvlink", "pci")}
    for key, allowed in choices.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(key, value, "use one of " + ", ".join(str(a) for a in allowed if a))
    calibration = OmegaConf.select(cfg, "network.calibration")
    if calibration:
        from bench.costs import topology

        topology.read_calibration(calibration)  # a ConfigError naming the key and the fix
    for group in cfg.cluster.groups:
        per_node = group.get("gpus_per_node")
        if per_node is not None and int(per_node) < 1:
            raise ConfigError("cluster.groups[].gpus_per_node", per_node, "use 1 or more (null: the catalog's node)")


MAX_LOCAL_RANKS = 256  # one process per rank on one machine


