"""`hetbench predict --from runs/<id>`: re-predict a finished run from its own config (its
cluster, links, strategy, workload, profile) and put the prediction beside what it measured."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench import config as config_mod
from bench.errors import ConfigError
from bench.results import files, timebase

# summary.json key (dotted) -> label; the prediction carries the same names.
COMPARED = (("step_ms.p50", "step p50 (ms)"), ("step_ms.mean", "step mean (ms)"),
            ("tokens_per_s", "tokens/s"), ("efficiency", "efficiency"),
            ("slowdown.balance", "slowdown balance"), ("slowdown.network", "slowdown network"),
            ("slowdown.total", "slowdown total"), ("injected_ms_p50", "injected p50 (ms)"),
            ("inter_site_bytes_per_step", "inter-site bytes/step"))


def load_config(run_dir: Path):
    """The run's config.yaml on today's schema (keys added since then take their defaults)."""
    path = run_dir / "config.yaml"
    if not path.exists() or not (run_dir / "summary.json").exists():
        raise ConfigError("--from", str(run_dir), "not a finished run directory (config.yaml and "
                          "summary.json missing); point it at runs/<id> of `hetbench run`")
    config_mod.register_schema()
    schema = OmegaConf.structured(config_mod.HetbenchConfig)
    return OmegaConf.merge(schema, OmegaConf.load(path))


def predict_run(run_dir: Path, overrides: list[str] = ()) -> dict:
    """{"prediction", "measured", "rows": [(label, measured, predicted, error %)], "caveat"}."""
    from bench.predict import predict

    run_dir = Path(run_dir)
    cfg = _with_predict_overrides(load_config(run_dir), list(overrides))
    measured = files.read_json(run_dir / "summary.json")
    prediction = predict(cfg)
    rows = []
    for key, label in COMPARED:
        m, p = _get(measured, key), _get(prediction, key)
        err = (p - m) / m * 100.0 if m not in (None, 0) and p is not None else None
        rows.append({"key": key, "label": label, "measured": m, "predicted": p, "error_pct": err})
    return {"run_dir": str(run_dir), "prediction": prediction, "measured": _headline(measured),
            "rows": rows, "caveat": caveat(measured, cfg)}


def _with_predict_overrides(cfg, overrides: list[str]):
    """Only predict.* keys apply to a finished run: anything else would predict another run."""
    others = [o for o in overrides if not o.split("=", 1)[0].lstrip("+").startswith("predict.")]
    if others:
        raise ConfigError("--from", " ".join(others), "only predict.* overrides apply to a "
                          "finished run (its own config is what is predicted); to predict a "
                          "changed config, run `hetbench predict <overrides>` without --from")
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as err:
        raise ConfigError("overrides", " ".join(overrides), str(err).splitlines()[0]) from None
    config_mod.validate(cfg)
    return cfg


def caveat(summary: dict, cfg=None) -> str | None:
    """Why the two may not be comparable: the prediction is of the emulated devices' time, of
    the configured fleet, without faults."""
    if summary.get("status") == "degraded":
        return ("the run is degraded: its host fell behind the emulated timeline in many steps, "
                "which its numbers leave out (emulation.lagged_steps) or keep")
    if summary.get("status") != "ok":
        return f"the run's status is {summary.get('status')!r}: it may have stopped early"
    if summary.get("time_base") != timebase.DEVICE:
        return ("the run reports wall time (unpaced ranks or emulation.time=host); the prediction "
                "is in the modelled devices' time")
    if cfg is not None and cfg.faults:
        return "the run injected faults, which the prediction leaves out"
    if cfg is not None and cfg.predict.world_size not in (None, summary.get("world_size")):
        return f"predict.world_size={cfg.predict.world_size} predicts another fleet than the run's"
    return None


def _headline(summary: dict) -> dict:
    keep = ("run_id", "status", "time_base", "time_scale", "world_size", "step_ms", "tokens_per_s",
            "efficiency", "slowdown", "injected_ms_p50", "inter_site_bytes_per_step")
    return {k: summary.get(k) for k in keep}


def _get(obj: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def format_side_by_side(result: dict) -> str:
    lines = [f"{'':24} {'measured':>14} {'predicted':>14} {'error':>8}"]
    for row in result["rows"]:
        m, p, e = row["measured"], row["predicted"], row["error_pct"]
        lines.append(f"{row['label']:24} {_num(m):>14} {_num(p):>14} "
                     f"{'' if e is None else f'{e:+.2f}%':>8}")
    if result["caveat"]:
        lines.append(f"note: {result['caveat']}")
    return "\n".join(lines)


def _num(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3f}"
