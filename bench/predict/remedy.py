"""The one-line pointer a finished run prints under its headline: which remedy the predictor
expects to win back most of what this cluster lost, against the strategy the run used.

It is a prediction, said as one: every strategy preset is predicted on the run's own config
(its cluster, links, workload, stack) and compared with the prediction of the run's strategy,
so the ratio is model against model. Strategies that change the optimisation (compression, outer
syncs) trade loss per token for speed; the line says so and points to `hetbench advise`, which
searches their knobs too and ranks them at equal loss, from measured loss costs.
"""
from __future__ import annotations

from pathlib import Path

from bench.config.schema import STRATEGIES
from bench.costs import split as split_mod

# The same gradient in every step as DDP: only where the time goes changes.
SAME_MATHS = ("ddp", "balanced", "hierarchical")


def ranked(cfg) -> list[dict]:
    """[{strategy, overrides, tokens_per_s, speedup, same_maths}] for every preset and every
    exchange with the balanced split, fastest first; speedup is against the prediction of cfg's
    own strategy. Each is bench.predict.predict of cfg with that strategy and split and the run's
    own knobs (bench.predict.fast shares what does not depend on the strategy)."""
    from bench.predict.fast import Predictor, variant_of

    predictor = Predictor(cfg, fleet_job=False)
    own = predictor.predict(variant_of(cfg))["tokens_per_s"]
    rows = []
    for name, split in candidates():
        tps = predictor.predict(variant_of(cfg, name=name, split=split))["tokens_per_s"]
        rows.append({"strategy": split_mod.label_of(name, split),
                     "overrides": _overrides(name, split), "tokens_per_s": tps,
                     "speedup": tps / own, "same_maths": name in SAME_MATHS})
    return sorted(rows, key=lambda r: -r["tokens_per_s"])


def candidates() -> list[tuple[str, str]]:
    """(strategy, split): the seven presets, then each other exchange with the balanced split."""
    presets = [(n, split_mod.preset_split(n)) for n in STRATEGIES]
    return presets + [(n, "balanced") for n in STRATEGIES
                      if n not in ("ddp", split_mod.BALANCED_PRESET)]


def _overrides(name: str, split: str) -> str:
    if split == split_mod.preset_split(name):
        return f"strategy={name}"
    return f"strategy={name} strategy.split={split}"


def line(cfg) -> str | None:
    """One line, or None when no other preset is predicted to be faster than the run's own."""
    rows = ranked(cfg)
    own = split_mod.label(cfg.strategy)
    best = rows[0]
    if best["strategy"] == own or best["speedup"] <= 1.005:
        return None
    text = f"remedy: {best['overrides']} x{best['speedup']:.2f} tokens/s predicted"
    if not best["same_maths"]:
        text += " (changes the optimiser)"
        safe = next((r for r in rows if r["same_maths"] and r["strategy"] != own
                     and r["speedup"] > 1.005), None)
        if safe:
            text += f", {safe['overrides']} x{safe['speedup']:.2f} (same maths)"
    return text + "; ranked at equal loss, with the evidence: hetbench advise --from RUN_DIR"


def for_run(run_dir: Path) -> list[str]:
    """The remedy line for a finished run, from its own config; nothing where the prediction
    would not be comparable with the run (bench.predict.run.caveat) or cannot be made."""
    from bench.errors import ConfigError
    from bench.predict.run import caveat, load_config
    from bench.results import files

    try:
        cfg = load_config(Path(run_dir))
        if caveat(files.read_json(Path(run_dir) / "summary.json"), cfg):
            return []
        text = line(cfg)
    except ConfigError:
        return []
    return [text.replace("RUN_DIR", str(run_dir))] if text else []
